//go:build !linux || 386

package hostile

import (
	"net"
	"runtime"
	"testing"
)

// ListenFull would return an address whose accept queue is full; it needs
// Linux (not 386), so here it skips the test.
func ListenFull(t testing.TB) string {
	t.Helper()
	t.Skipf("hostile: ListenFull needs Linux (this is %s/%s)", runtime.GOOS, runtime.GOARCH)
	return ""
}

// unsent cannot tell on this system how many bytes written to c are not
// acknowledged yet, so a reset may overtake the last bytes written.
func unsent(c *net.TCPConn) (n int, ok bool) { return 0, false }
