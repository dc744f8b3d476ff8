package main

import (
	"context"
	"math"
	"math/bits"
	"runtime"
	"sort"
	"sync"
	"time"
)

// op performs one operation for worker w (0 <= w < goroutines) whose i-th
// call this is. It returns an error when the operation failed or returned a
// wrong answer.
type op func(ctx context.Context, w, i int) error

// histogram records latencies in buckets of about 3% width without
// allocating: 32 sub-buckets per power of two of nanoseconds. It is not
// safe for concurrent use; each worker has its own.
type histogram struct {
	counts [64 * 32]uint64
	n      uint64
}

func bucketOf(ns int64) int {
	if ns < 32 {
		if ns < 0 {
			ns = 0
		}
		return int(ns)
	}
	e := bits.Len64(uint64(ns)) - 6 // ns >> e is in [32, 64)
	return (e+1)*32 + int(uint64(ns)>>e) - 32
}

// bucketValue is the lower bound of bucket b, in nanoseconds.
func bucketValue(b int) int64 {
	if b < 32 {
		return int64(b)
	}
	e := b/32 - 1
	return int64(32+b%32) << e
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(int64(d))]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the latency below which a fraction q of the samples
// fall.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q * float64(h.n))
	if rank >= h.n {
		rank = h.n - 1
	}
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen > rank {
			return time.Duration(bucketValue(b))
		}
	}
	return time.Duration(bucketValue(len(h.counts) - 1))
}

// sample is the outcome of one timed run of one implementation.
type sample struct {
	ops      int
	errs     int
	firstErr error
	elapsed  time.Duration
	p50, p99 time.Duration
	mallocs  uint64
	// reads and writes are the read and write system calls of the whole
	// process during the run; -1 if unknown.
	reads, writes int64
	// cpu and srvCPU are the CPU time used by this process and by the
	// memcached servers during the run; -1 if unknown. In the benchmarks
	// under an external load generator, cpu is the server process's.
	cpu, srvCPU time.Duration
	// genCPU is the external load generator's CPU time during the run (0
	// for the in-process benchmarks; -1 if unknown).
	genCPU time.Duration
}

func (s sample) opsPerSec() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ops) / s.elapsed.Seconds()
}

func (s sample) cpuPerOp(d time.Duration) float64 {
	if s.ops == 0 || d < 0 {
		return -1
	}
	return float64(d) / float64(s.ops)
}

func (s sample) perOp(n int64) float64 {
	if s.ops == 0 || n < 0 {
		return -1
	}
	return float64(n) / float64(s.ops)
}

func (s sample) allocsPerOp() float64 {
	if s.ops == 0 {
		return 0
	}
	return float64(s.mallocs) / float64(s.ops)
}

// runOp runs fn on goroutines workers until d has passed or maxOps
// operations are done (whichever comes first) or ctx is done, and reports
// throughput, latency percentiles, heap allocations, system calls and,
// with a probe, CPU time per operation. Each call of fn performs batch
// operations (1 for every client but the batched one); the latencies are
// those of a call. The harness itself allocates nothing per operation.
func runOp(ctx context.Context, goroutines, batch int, d time.Duration, maxOps int, fn op, probe cpuProbe) sample {
	perWorker := max(1, maxOps/(goroutines*batch))
	hists := make([]histogram, goroutines)
	errCounts := make([]int, goroutines)
	firstErrs := make([]error, goroutines)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < goroutines; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := &hists[w]
			<-start
			deadline := time.Now().Add(d)
			for i := 0; i < perWorker; i++ {
				t0 := time.Now()
				if t0.After(deadline) || ctx.Err() != nil {
					return
				}
				err := fn(ctx, w, i)
				h.record(time.Since(t0))
				if err != nil {
					if errCounts[w] == 0 {
						firstErrs[w] = err
					}
					errCounts[w]++
				}
			}
		}()
	}
	runtime.GC()
	var before, after runtime.MemStats
	r0, w0, sysOK := syscalls()
	var cpu0, srv0 time.Duration
	cpuOK := probe != nil
	if cpuOK {
		cpu0, srv0, cpuOK = probe()
	}
	// The allocation count brackets the run alone, not the probes.
	runtime.ReadMemStats(&before)
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	runtime.ReadMemStats(&after)
	var cpu1, srv1 time.Duration
	if cpuOK {
		cpu1, srv1, cpuOK = probe()
	}
	r1, w1, _ := syscalls()

	var total histogram
	s := sample{elapsed: elapsed, mallocs: after.Mallocs - before.Mallocs, reads: -1, writes: -1, cpu: -1, srvCPU: -1}
	if cpuOK {
		s.cpu, s.srvCPU = cpu1-cpu0, srv1-srv0
	}
	if sysOK {
		s.reads, s.writes = int64(r1-r0), int64(w1-w0)
	}
	for w := range hists {
		total.merge(&hists[w])
		s.errs += errCounts[w]
		if s.firstErr == nil {
			s.firstErr = firstErrs[w]
		}
	}
	s.ops = int(total.n) * batch
	s.p50, s.p99 = total.quantile(0.50), total.quantile(0.99)
	return s
}

// result is the median over rounds of one implementation's samples.
type result struct {
	opsPerSec   float64
	p50, p99    time.Duration
	allocsPerOp float64
	// readsPerOp and writesPerOp are the read and write system calls per
	// operation; -1 if unknown.
	readsPerOp, writesPerOp float64
	// cpuPerOp and srvCPUPerOp are the CPU time per operation of this
	// process and of the memcached servers; -1 if unknown.
	cpuPerOp, srvCPUPerOp time.Duration
	callsPerOp            float64 // memcached commands per operation; -1 when not counted
	ops, errs             int     // summed over rounds
	firstErr              error
}

// summarize takes the median of each measure independently (and of the
// memcached calls per operation, given per sample in calls) and adds up
// the operations and errors.
func summarize(samples []sample, calls []float64) result {
	var r result
	if len(samples) == 0 {
		return r
	}
	tput := make([]float64, len(samples))
	p50 := make([]float64, len(samples))
	p99 := make([]float64, len(samples))
	allocs := make([]float64, len(samples))
	reads := make([]float64, len(samples))
	writes := make([]float64, len(samples))
	cpu := make([]float64, len(samples))
	srv := make([]float64, len(samples))
	for i, s := range samples {
		tput[i], p50[i], p99[i], allocs[i] = s.opsPerSec(), float64(s.p50), float64(s.p99), s.allocsPerOp()
		reads[i], writes[i] = s.perOp(s.reads), s.perOp(s.writes)
		cpu[i], srv[i] = s.cpuPerOp(s.cpu), s.cpuPerOp(s.srvCPU)
		r.ops += s.ops
		r.errs += s.errs
		if r.firstErr == nil {
			r.firstErr = s.firstErr
		}
	}
	r.opsPerSec = medianOf(tput)
	r.p50 = time.Duration(medianOf(p50))
	r.p99 = time.Duration(medianOf(p99))
	r.allocsPerOp = medianOf(allocs)
	r.readsPerOp, r.writesPerOp = max(-1, medianOf(reads)), max(-1, medianOf(writes))
	r.cpuPerOp, r.srvCPUPerOp = time.Duration(max(-1, medianOf(cpu))), time.Duration(max(-1, medianOf(srv)))
	r.callsPerOp = -1
	if len(calls) > 0 {
		r.callsPerOp = medianOf(calls)
	}
	return r
}

// interval is the median of a measure over rounds with its 95 %
// confidence interval.
type interval struct {
	med, lo, hi float64
	n           int  // rounds
	ok          bool // lo and hi are known: at least 6 rounds
}

// medianInterval returns the median of v and a distribution-free 95 %
// confidence interval for it: the k-th smallest and k-th largest values,
// k the largest rank at which a Binomial(n, 1/2) count falls below k with
// probability at most 2.5 % (so the interval covers the true median with
// probability at least 95 %, whatever the distribution). Six values are
// the fewest that give one (then it spans them all).
func medianInterval(v []float64) interval {
	iv := interval{med: medianOf(v), n: len(v)}
	k := 0
	for j := 1; j <= len(v)/2; j++ {
		if binomialCDF(len(v), j-1) > 0.025 {
			break
		}
		k = j
	}
	if k == 0 {
		return iv
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	iv.lo, iv.hi, iv.ok = s[k-1], s[len(s)-k], true
	return iv
}

// binomialCDF is P(X <= k) for X ~ Binomial(n, 1/2).
func binomialCDF(n, k int) float64 {
	var p float64
	for i := 0; i <= k && i <= n; i++ {
		lc, _ := math.Lgamma(float64(n + 1))
		li, _ := math.Lgamma(float64(i + 1))
		lr, _ := math.Lgamma(float64(n - i + 1))
		p += math.Exp(lc - li - lr - float64(n)*math.Ln2)
	}
	return p
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
