package memclient

import "time"

// SetIdleSinceForTest makes every open connection look idle for d, so the
// next use checks it (a seam instead of sleeping past idleCheckAfter).
func (c *Client) SetIdleSinceForTest(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for cn := range c.conns {
		cn.lastSend.Store(time.Now().Add(-d).UnixNano())
	}
}
