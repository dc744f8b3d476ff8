package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

const (
	// readSize is the buffer each direction reads into.
	readSize = 64 << 10
	// maxHeld bounds what a cut reply holds back while it waits for the
	// end of its first line.
	maxHeld = 64 << 10
	// dialTimeout bounds the dial of the upstream for one connection.
	dialTimeout = 10 * time.Second
	// paceSlices is how many writes a second of bandwidth is cut into.
	paceSlices = 50
	// drainLimit bounds how long a cut reply waits for the client to
	// acknowledge its first bytes before the reset; a client that does not
	// read loses them, as it would to a real reset.
	drainLimit = time.Second
)

// conn is one proxied connection: a client connection accepted by the
// proxy and the proxy's own connection to the upstream. Its two goroutines
// each own one direction; close may be called from anywhere.
type conn struct {
	p      *Proxy
	index  int // order of acceptance, from 0
	client net.Conn
	dead   chan struct{} // closed by close
	once   sync.Once

	mu       sync.Mutex // protects upstream and closed
	upstream net.Conn
	closed   bool

	// Owned by the serverToClient goroutine (claim reads them under p.mu).
	dice     *dice
	chaosGen int
	next     time.Time // when the bandwidth limit lets the next byte go
}

func newConn(p *Proxy, client net.Conn, index int) *conn {
	return &conn{p: p, index: index, client: client, dead: make(chan struct{})}
}

// close closes both sides, with a reset of the client side when rst is
// set, and forgets the connection. Only the first call has an effect.
func (c *conn) close(rst bool) {
	c.once.Do(func() {
		c.p.removeConn(c) // first, so that Conns is right once the client sees the close
		if tc, ok := c.client.(*net.TCPConn); ok && rst {
			_ = tc.SetLinger(0) // close sends RST
		}
		_ = c.client.Close()
		c.mu.Lock()
		c.closed = true
		if c.upstream != nil {
			_ = c.upstream.Close()
		}
		c.mu.Unlock()
		close(c.dead)
	})
}

// drain waits, up to drainLimit, until the client has acknowledged every
// byte sent to it, so that a reset that follows does not discard them.
func (c *conn) drain() {
	tc, ok := c.client.(*net.TCPConn)
	if !ok {
		return
	}
	deadline := time.Now().Add(drainLimit)
	for {
		n, ok := unsent(tc)
		if !ok || n == 0 || time.Now().After(deadline) {
			return
		}
		t := time.NewTimer(time.Millisecond)
		select {
		case <-t.C:
		case <-c.dead:
			t.Stop()
			return
		}
	}
}

// setUpstream records the upstream connection; it reports false when the
// connection was closed during the dial.
func (c *conn) setUpstream(up net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.upstream = up
	return true
}

// serverToClient dials the upstream, starts clientToServer, and forwards
// the server's replies to the client, applying faults reply by reply.
func (c *conn) serverToClient() {
	defer c.p.wg.Done()
	defer c.close(false)
	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.DialContext(c.p.ctx, "tcp", c.p.upstream)
	if err != nil {
		return
	}
	if !c.setUpstream(up) {
		_ = up.Close()
		return
	}
	c.p.wg.Add(1) // this goroutine's count keeps the group above zero
	go c.clientToServer(up)

	buf := make([]byte, readSize)
	var fr framer
	var r reply
	for {
		n, err := up.Read(buf)
		at := time.Now()
		data := buf[:n]
		for len(data) > 0 {
			if fr.idle() {
				r.begin(c.p.claim(c))
			}
			k, ev := fr.next(data)
			if !c.pass(&r, data[:k], ev, at) {
				return
			}
			data = data[k:]
		}
		if err != nil {
			return
		}
	}
}

// reply is the state of the reply passing from the server to the client.
type reply struct {
	fate      fault
	notBefore time.Time // when chaos lets its first byte go
	dup       []byte    // the reply so far, to send again
	dupOK     bool      // dup holds all of it so far
	held      []byte    // its first bytes, held back for a cut
}

func (r *reply) begin(f fault, delay time.Duration) {
	r.fate, r.notBefore = f, time.Time{}
	if delay > 0 {
		r.notBefore = time.Now().Add(delay)
	}
	if cap(r.dup) > 1<<20 {
		r.dup = nil // do not keep a big one for good
	}
	r.dup, r.dupOK, r.held = r.dup[:0], true, r.held[:0]
}

// pass deals with the next piece of the reply, read at at; ev says where
// the piece ends. It reports false when the connection is gone. A reply is
// counted before its last byte is sent on, so that a client that has it
// finds it in Stats.
func (c *conn) pass(r *reply, piece []byte, ev event, at time.Time) bool {
	if r.fate == cut {
		r.held = append(r.held, piece...)
		if ev == evNone && len(r.held) < maxHeld {
			return true
		}
		held := r.held // the first line, or what there is of a long one
		if ev == evEnd {
			held = held[:len(held)/2] // a single line: half of it
		}
		c.p.count(cut)
		if c.send(held, at, r.notBefore) {
			c.drain()
		}
		c.close(true)
		return false
	}
	if r.fate == duplicate {
		if r.dupOK && len(r.dup)+len(piece) <= MaxDuplicate {
			r.dup = append(r.dup, piece...)
		} else {
			r.dupOK, r.dup = false, nil // too big to copy: sent once
		}
	}
	if ev == evEnd {
		fate := r.fate
		if fate == duplicate && !r.dupOK {
			fate = forward
		}
		c.p.count(fate)
	}
	if r.fate == drop {
		return true
	}
	if !c.send(piece, at, r.notBefore) {
		return false
	}
	if ev == evEnd && r.fate == duplicate && r.dupOK {
		return c.send(r.dup, at, r.notBefore)
	}
	return true
}

// clientToServer forwards the client's requests to the server. When the
// client half-closes, it half-closes the upstream and leaves the replies to
// finish.
func (c *conn) clientToServer(up net.Conn) {
	defer c.p.wg.Done()
	buf := make([]byte, readSize)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			if _, ok := c.hold(time.Now(), time.Time{}, false); !ok {
				return
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				c.close(false)
				return
			}
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := up.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
				return
			}
		}
		if err != nil {
			c.close(false)
			return
		}
	}
}

// send writes b to the client as the faults allow: after the latency
// since at, not before notBefore, at the bandwidth limit, never during a
// blackhole. It reports false when the connection is gone.
func (c *conn) send(b []byte, at, notBefore time.Time) bool {
	for len(b) > 0 {
		s, ok := c.hold(at, notBefore, true)
		if !ok {
			return false
		}
		piece := b
		if s.bandwidth > 0 {
			piece = piece[:min(len(piece), max(s.bandwidth/paceSlices, 1))]
		}
		if _, err := c.client.Write(piece); err != nil {
			c.close(false)
			return false
		}
		b = b[len(piece):]
		if s.bandwidth > 0 {
			c.next = time.Now().Add(time.Duration(len(piece)) * time.Second / time.Duration(s.bandwidth))
		}
	}
	return true
}

// hold waits until bytes read at at may be written on: no blackhole, the
// latency since at passed, notBefore passed, and, when paced, the
// bandwidth limit allows. Changed settings take effect at once. It returns
// the settings it let the bytes go under, and false when the connection was
// closed first.
func (c *conn) hold(at, notBefore time.Time, paced bool) (settings, bool) {
	for {
		s, changed := c.p.current()
		var wait <-chan time.Time
		var timer *time.Timer
		if !s.blackhole {
			until := at.Add(s.latency)
			if notBefore.After(until) {
				until = notBefore
			}
			if paced && s.bandwidth > 0 && c.next.After(until) {
				until = c.next
			}
			d := time.Until(until)
			if d <= 0 {
				select {
				case <-c.dead:
					return s, false
				default:
					return s, true
				}
			}
			timer = time.NewTimer(d)
			wait = timer.C
		}
		select {
		case <-wait:
		case <-changed:
		case <-c.dead:
			if timer != nil {
				timer.Stop()
			}
			return s, false
		}
		if timer != nil {
			timer.Stop()
		}
	}
}
