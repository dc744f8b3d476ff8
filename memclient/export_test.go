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

// DialsForTest returns how many connections the client has tried to open
// to each server, in configuration order.
func (c *Client) DialsForTest() []uint64 {
	var out []uint64
	for _, s := range c.topo.Load().servers {
		out = append(out, s.dials.Load())
	}
	return out
}

// PauseReadersForTest stands in for a paused process (a GC pause, a CPU
// quota): until release is called, nobody reads replies on the client's
// open connections, as if their reader had stopped running. Callers wait,
// and replies pile up in the sockets.
func (c *Client) PauseReadersForTest() (release func()) {
	c.mu.Lock()
	var held []*conn
	for cn := range c.conns {
		cn.mu.Lock()
		if !cn.reading {
			cn.reading = true
			held = append(held, cn)
		}
		cn.mu.Unlock()
	}
	c.mu.Unlock()
	return func() {
		for _, cn := range held {
			cn.handOff()
		}
	}
}
