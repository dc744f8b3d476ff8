//go:build linux

package faultproxy

import (
	"net"
	"syscall"
	"unsafe"
)

// unsent returns how many bytes written to c its peer has not acknowledged
// yet (ioctl TIOCOUTQ, alias SIOCOUTQ). ok is false when it cannot tell.
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
