//go:build linux && !386

package hostile

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// ListenFull returns a 127.0.0.1 address whose TCP accept queue is full,
// so that a connect to it hangs until the dialer gives up: the kernel
// drops the SYNs, as from a server too busy to accept or a host that has
// gone away. The listener and the connections that fill its queue are
// closed when the test ends. It needs Linux (and not linux/386, where
// syscall has no direct getsockopt); elsewhere it skips the test.
func ListenFull(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("hostile: socket: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("hostile: bind: %v", err)
	}
	// A backlog of 0 leaves room for one connection in the accept queue;
	// nothing ever accepts it.
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("hostile: listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("hostile: getsockname: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))

	// Fill the queue with connections of our own, each counted by the
	// kernel before the next, until it reports the queue full.
	for filled := 0; ; filled++ {
		queued, backlog, err := acceptQueue(fd)
		if err != nil {
			t.Fatalf("hostile: TCP_INFO: %v", err)
		}
		if queued > backlog {
			return addr
		}
		if filled == 4 {
			t.Fatalf("hostile: accept queue of %s not full after %d connections (%d queued, backlog %d)", addr, filled, queued, backlog)
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("hostile: filling the accept queue: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		// The kernel queues the connection when the handshake's last ACK
		// arrives, which may be just after the dial returns.
		for i := 0; i < 1000 && queued <= filled; i++ {
			time.Sleep(time.Millisecond)
			if queued, _, err = acceptQueue(fd); err != nil {
				t.Fatalf("hostile: TCP_INFO: %v", err)
			}
		}
	}
}

// acceptQueue returns how many connections wait in the accept queue of
// the listening socket fd, and its backlog. For a listener, Linux reports
// them in tcp_info's unacked and sacked fields, and counts the queue full
// when the first exceeds the second.
func acceptQueue(fd int) (queued, backlog int, err error) {
	var info syscall.TCPInfo
	size := uint32(syscall.SizeofTCPInfo)
	_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.IPPROTO_TCP, syscall.TCP_INFO,
		uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0, 0, errno
	}
	return int(info.Unacked), int(info.Sacked), nil
}

// unsent returns how many bytes written to c its peer has not acknowledged
// yet (ioctl TIOCOUTQ). ok is false when it cannot tell.
//
// A reset discards them: Linux may hold small writes back for a moment
// (tcp_autocorking), so an RST right after a write can overtake the data.
func unsent(c *net.TCPConn) (n int, ok bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var v int32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, uintptr(syscall.TIOCOUTQ), uintptr(unsafe.Pointer(&v)))
	}); err != nil || errno != 0 {
		return 0, false
	}
	return int(v), true
}
