// Package leakcheck fails a test that leaves memkit goroutines running.
package leakcheck

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check registers a cleanup that fails t if, after the test and its other
// cleanups, goroutines running memkit code (outside the test harness) are
// still alive. Call it first in a test so its cleanup runs last.
// It must not be used in parallel tests of the same package.
func Check(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		var leaked []string
		for i := 0; i < 200; i++ { // up to 2s for goroutines already on their way out
			leaked = Leaked()
			if len(leaked) == 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("leakcheck: %d goroutine(s) left running:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	})
}

// Leaked returns the stacks of live goroutines that run memkit code, other
// than the caller's and the test harness's.
func Leaked() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	stacks := strings.Split(string(buf), "\n\n")
	var out []string
	for _, g := range stacks[1:] { // stacks[0] is the caller
		if !strings.Contains(g, "github.com/memkit/memkit/") {
			continue
		}
		if strings.Contains(g, "memkit/internal/memcachetest") || strings.Contains(g, "testing.tRunner") ||
			strings.Contains(g, "testing.(*T).Run") || strings.Contains(g, "testing.runFuzz") {
			continue
		}
		out = append(out, g)
	}
	return out
}
