//go:build unix

package memclient

import (
	"crypto/tls"
	"net"
	"syscall"
)

// unreadOrClosed reports, without blocking, whether the server has sent
// bytes nobody has read yet, or closed the connection. It peeks at the
// socket with MSG_DONTWAIT, consuming nothing, and through Control, so it
// takes no lock a reader blocked on the socket holds. On an idle
// connection a true means a close (or a TLS close alert, or bytes nobody
// asked for); on a busy one, that the server is not silent.
func unreadOrClosed(nc net.Conn) bool {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	seen := false
	err = rc.Control(func(fd uintptr) {
		var buf [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		seen = n > 0 || (n == 0 && rerr == nil) || (rerr != nil && rerr != syscall.EAGAIN && rerr != syscall.EWOULDBLOCK && rerr != syscall.EINTR)
	})
	return seen || err != nil
}
