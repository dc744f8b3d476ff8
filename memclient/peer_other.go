//go:build !unix

package memclient

import "net"

// peerClosed cannot peek without blocking here; a closed connection shows
// up as the failure of its next request.
func peerClosed(net.Conn) bool { return false }

// pendingBytes cannot peek here: stuck detection goes by the bytes the
// connection has received alone.
func pendingBytes(net.Conn) bool { return false }
