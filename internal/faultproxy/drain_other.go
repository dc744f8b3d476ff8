//go:build !linux

package faultproxy

import "net"

// unsent cannot tell on this system how many bytes written to c are not
// acknowledged yet, so a reset may overtake the last bytes written.
func unsent(c *net.TCPConn) (n int, ok bool) { return 0, false }
