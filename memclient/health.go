package memclient

import "time"

// wakeProber makes sure the prober goroutine runs: it brings down servers
// back once they answer. It runs only while some server is down.
func (c *Client) wakeProber() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if c.probing {
		select {
		case c.wake <- struct{}{}:
		default:
		}
		return
	}
	c.probing = true
	c.bg.Add(1) // under c.mu, not closed: as goBackground does
	go func() {
		defer c.bg.Done()
		c.probeLoop()
	}()
}

// probeLoop probes each down server when its retry time comes, until no
// server is down or the client closes.
func (c *Client) probeLoop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-c.life.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
		next, anyDown := c.probeDue()
		if !anyDown {
			c.mu.Lock()
			// A server may have gone down since probeDue looked.
			if !c.anyDown() {
				c.probing = false
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			next = c.now().Add(c.cfg.retryInterval())
		}
		timer.Reset(max(next.Sub(c.now()), time.Millisecond))
	}
}

func (c *Client) anyDown() bool {
	t := c.topo.Load()
	for _, s := range t.servers {
		if s.down.Load() {
			return true
		}
	}
	for _, s := range t.gutter {
		if s.down.Load() {
			return true
		}
	}
	return false
}

// probeDue probes the down servers whose time has come and returns when
// the next probe is due.
func (c *Client) probeDue() (next time.Time, anyDown bool) {
	ctx := c.life
	t := c.topo.Load()
	for _, s := range append(t.servers[:len(t.servers):len(t.servers)], t.gutter...) {
		if !s.down.Load() {
			continue
		}
		s.hmu.Lock()
		due := s.nextProbe
		s.hmu.Unlock()
		if !c.now().Before(due) {
			if s.recover(ctx) {
				continue
			}
			s.hmu.Lock()
			due = s.nextProbe
			s.hmu.Unlock()
		}
		if !anyDown || due.Before(next) {
			next = due
		}
		anyDown = true
	}
	return next, anyDown
}
