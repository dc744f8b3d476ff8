//go:build unix

package memclient

import (
	"crypto/tls"
	"net"
	"syscall"
)

// peerClosed reports, without blocking, whether an idle connection has
// been closed by the server or has unread bytes (on an idle connection,
// only a close or a TLS close alert). It peeks at the socket with
// MSG_DONTWAIT: no byte is consumed.
func peerClosed(nc net.Conn) bool {
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
	closed := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n > 0 || (n == 0 && rerr == nil) || (rerr != nil && rerr != syscall.EAGAIN && rerr != syscall.EWOULDBLOCK && rerr != syscall.EINTR)
		return true // never wait for readiness
	})
	return closed || err != nil
}

// pendingBytes reports, without blocking or taking the read lock that a
// blocked reader holds, whether the server has sent bytes (or a close)
// that nobody has read yet.
func pendingBytes(nc net.Conn) bool {
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
	pending := false
	_ = rc.Control(func(fd uintptr) {
		var buf [1]byte
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		pending = n > 0 || (n == 0 && rerr == nil)
	})
	return pending
}
