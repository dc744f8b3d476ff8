package memclient

import "time"

// SetIdleSinceForTest makes every open connection look idle for d, so the
// next use checks it (a seam instead of sleeping past idleCheckAfter), and
// leaves it with an expired read deadline, as a real idle spell longer
// than the last request's timeout does.
func (c *Client) SetIdleSinceForTest(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for cn := range c.conns {
		cn.lastSend.Store(time.Now().Add(-d).UnixNano())
		_ = cn.nc.SetReadDeadline(time.Unix(1, 0))
	}
}
