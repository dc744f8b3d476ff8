//go:build linux

package serializer

import (
	"flag"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

var benchTable = flag.Bool("benchtable", false, "print the README benchmark table (thread CPU time)")

// threadCPU returns the CPU time the calling OS thread has used. Unlike
// wall time it does not count time spent waiting for a CPU, so the table
// stays meaningful on a shared, busy machine.
func threadCPU() time.Duration {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	_, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic(errno)
	}
	return time.Duration(ts.Nano())
}

// TestBenchTable prints the README table: encoded size and the best
// per-value CPU time of Marshal+Unmarshal over 15 rounds, and allocations, for the values of
// BenchmarkSerializer. Run: go test -run TestBenchTable -benchtable -v.
// Garbage collection done by background workers is not counted.
func TestBenchTable(t *testing.T) {
	if !*benchTable {
		t.Skip("pass -benchtable to print the README benchmark table")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	values := []struct {
		name   string
		v      any
		target func() any
	}{
		{"session", benchSession(), func() any { return new(map[string]any) }},
		{"50 rows", testRows(50), func() any { return new([]row) }},
	}
	fmt.Println("| value | codec | compressor | bytes | µs encode+decode | allocs |")
	fmt.Println("|---|---|---|---:|---:|---:|")
	for _, val := range values {
		for _, c := range allCodecs {
			for _, comp := range allCompressors {
				s := Serializer{Codec: c, Compressor: comp, MinCompressLen: 1}
				round := func(n int) (int, error) {
					var size int
					for i := 0; i < n; i++ {
						data, flags, err := s.Marshal(val.v)
						if err != nil {
							return 0, err
						}
						if err := s.Unmarshal(data, flags, val.target()); err != nil {
							return 0, err
						}
						size = len(data)
					}
					return size, nil
				}
				size, err := round(50) // warm up pools and caches
				if err != nil {
					t.Fatal(err)
				}
				const n = 200
				best := time.Duration(1 << 62)
				for r := 0; r < 15; r++ {
					start := threadCPU()
					if _, err := round(n); err != nil {
						t.Fatal(err)
					}
					best = min(best, (threadCPU()-start)/n)
				}
				allocs := testing.AllocsPerRun(20, func() { _, _ = round(1) })
				fmt.Printf("| %s | %s | %s | %d | %.1f | %.0f |\n", val.name, c.Name(), comp.Name(), size, float64(best)/float64(time.Microsecond), allocs)
			}
		}
	}
}
