// Package faultproxy is a TCP proxy for tests that stands in for a hostile
// network between a memcached client and a real memcached server: latency,
// limited bandwidth, a partition (blackhole), connection resets, and
// replies that are dropped, duplicated or cut in the middle.
//
// The proxy listens on a free 127.0.0.1 port and forwards each connection
// it accepts to its upstream address. It splits the server's byte stream
// into whole replies (meta and text formats, see DropReply), so that faults
// hit one reply, not one TCP segment. Faults may be changed at any time from
// any goroutine and apply at once to open and new connections.
//
// Each connection costs two goroutines, one per direction, and the proxy
// one more to accept; Close ends them all before it returns.
package faultproxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// MaxDuplicate is the largest reply DuplicateReply and Chaos.Duplicate
// copy. A larger reply is forwarded once and counted as forwarded only; the
// fault is spent.
const MaxDuplicate = 8 << 20

// Proxy is a fault-injecting TCP proxy in front of one upstream address. Its
// methods are safe for concurrent use.
type Proxy struct {
	upstream string
	ln       net.Listener
	ctx      context.Context // canceled by Close
	cancel   context.CancelFunc
	wg       sync.WaitGroup // the accept loop and every connection's goroutines

	mu sync.Mutex // protects every field below
	// conns are the open connections.
	conns    map[*conn]struct{}
	accepted int // connections accepted so far; the next one's index
	closed   bool
	set      settings
	// changed is closed, and replaced, whenever set changes, to wake
	// goroutines that wait on a setting.
	changed chan struct{}
	// pending are one-shot faults armed by DropReply, DuplicateReply and
	// ResetMidReply, oldest first.
	pending []fault
	stats   Stats
}

// settings are the faults that last; a connection reads them before every
// write.
type settings struct {
	latency   time.Duration
	bandwidth int // bytes per second server->client; 0: unlimited
	blackhole bool
	chaos     Chaos
	chaosGen  int // bumped by SetChaos, so connections reseed
}

// fault is what happens to one reply.
type fault int

const (
	forward   fault = iota // pass it on
	drop                   // swallow it
	duplicate              // send it twice
	cut                    // send its first line (or half of it) and reset the connection
)

// Stats counts what the proxy did. A reply is counted when the proxy has
// read its last byte, before it sends that byte on: a client that has read
// a reply, or the reply after a dropped one, finds it counted.
type Stats struct {
	Accepted   int // client connections accepted
	Forwarded  int // replies sent whole, including the duplicated ones
	Dropped    int // replies swallowed
	Duplicated int // replies sent twice
	Cut        int // replies cut partway by a reset
	Resets     int // connections reset: by ResetAll, by a cut reply
}

// Start starts a proxy to upstream on a free 127.0.0.1 port; it is closed
// when the test ends.
func Start(t testing.TB, upstream string) *Proxy {
	t.Helper()
	p, err := New(upstream)
	if err != nil {
		t.Fatalf("faultproxy: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// New starts a proxy to upstream on a free 127.0.0.1 port, for TestMain and
// examples. The caller must Close it. The upstream is dialed for each
// connection the proxy accepts; when it cannot be reached the client
// connection is closed.
func New(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		upstream: upstream,
		ln:       ln,
		ctx:      ctx,
		cancel:   cancel,
		conns:    make(map[*conn]struct{}),
		changed:  make(chan struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the "127.0.0.1:port" clients should dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Upstream returns the address the proxy forwards to.
func (p *Proxy) Upstream() string { return p.upstream }

// Close stops accepting, closes every connection and waits until every
// goroutine of the proxy has ended. Calling it again does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := p.openConns()
	p.mu.Unlock()
	p.cancel()
	err := p.ln.Close()
	for _, c := range conns {
		c.close(false)
	}
	p.wg.Wait()
	return err
}

// Conns returns the number of open client connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Stats returns what the proxy has done so far.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// SetLatency holds every chunk read, in either direction, for d before
// writing it on (0: none). Lowering it releases chunks already waiting.
// Each direction reads its next chunk only once the last is written, so
// a stream of many chunks is held back more than d; a request and its
// reply take at least 2*d.
func (p *Proxy) SetLatency(d time.Duration) {
	p.update(func(s *settings) { s.latency = d })
}

// SetBandwidth limits what the proxy sends to each client to bytesPerSec
// per connection (0: unlimited), in slices of a fiftieth of a second's
// worth. Requests to the server are not limited. A new limit applies from
// the next slice; lifting it releases bytes already waiting.
func (p *Proxy) SetBandwidth(bytesPerSec int) {
	p.update(func(s *settings) { s.bandwidth = max(bytesPerSec, 0) })
}

// SetBlackhole, when on, makes the proxy forward nothing in either
// direction while keeping every connection open, like a network partition
// or a peer gone half-open. New connections are accepted and forward
// nothing either. Bytes are held, not lost: when the blackhole is turned
// off they flow on, late, as after a healed partition when TCP
// retransmits. A client that gave up on them must drop the connection.
func (p *Proxy) SetBlackhole(on bool) {
	p.update(func(s *settings) { s.blackhole = on })
}

// SetChaos sets random faults, for invariant tests; the zero Chaos turns
// them off. One-shot faults (DropReply ...) go first when armed. Each call
// restarts every connection's random sequence from c.Seed.
func (p *Proxy) SetChaos(c Chaos) {
	p.update(func(s *settings) {
		s.chaos = c
		s.chaosGen++
	})
}

// ResetAll resets every open connection now: the client reads
// ECONNRESET (the proxy closes with SO_LINGER 0, so the kernel sends RST),
// and the connection to the server is closed. New connections work as
// before.
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	conns := p.openConns()
	p.stats.Resets += len(conns)
	p.mu.Unlock()
	for _, c := range conns {
		c.close(true)
	}
}

// DropReply swallows the next whole reply from the server, on whichever
// connection it comes: a VA and its data, a text get's VALUE blocks up to
// END, a STAT list up to END, or any other single line. Each call arms one
// more fault; armed faults hit replies in the order they were armed.
func (p *Proxy) DropReply() { p.arm(drop) }

// DuplicateReply sends the next whole reply from the server twice, back to
// back (see DropReply for what a reply is, and MaxDuplicate).
func (p *Proxy) DuplicateReply() { p.arm(duplicate) }

// ResetMidReply cuts the next reply from the server partway and resets its
// connection: the client receives the reply's first line when more
// follows it (a VA or VALUE header, the first STAT line), or the first half
// of its bytes when it is a single line, and then ECONNRESET. Before the
// reset the proxy waits (up to a second, on Linux) until the client's
// kernel has acknowledged those bytes, so that the reset cannot overtake
// them.
func (p *Proxy) ResetMidReply() { p.arm(cut) }

func (p *Proxy) arm(f fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, f)
}

// update changes the settings and wakes goroutines waiting on them.
func (p *Proxy) update(change func(*settings)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	change(&p.set)
	close(p.changed)
	p.changed = make(chan struct{})
}

// current returns the settings and a channel closed when they change.
func (p *Proxy) current() (settings, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.set, p.changed
}

// openConns returns the open connections. p.mu must be held.
func (p *Proxy) openConns() []*conn {
	out := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	return out
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	var tempDelay time.Duration
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.ctx.Err() != nil {
				return
			}
			// Out of file descriptors and the like: back off as net/http does.
			tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(tempDelay):
			case <-p.ctx.Done():
				return
			}
			continue
		}
		tempDelay = 0
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = nc.Close()
			return
		}
		c := newConn(p, nc, p.accepted)
		p.accepted++
		p.stats.Accepted++
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go c.serverToClient()
	}
}

// removeConn forgets a connection that has been closed.
func (p *Proxy) removeConn(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// claim picks the fault for a reply that starts on c: the oldest armed
// fault, else chaos, else none, and a delay to add before it.
func (p *Proxy) claim(c *conn) (fault, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) > 0 {
		f := p.pending[0]
		p.pending = p.pending[1:]
		return f, 0
	}
	if !p.set.chaos.on() {
		return forward, 0
	}
	if c.chaosGen != p.set.chaosGen || c.dice == nil {
		c.chaosGen = p.set.chaosGen
		c.dice = newDice(p.set.chaos.Seed, c.index)
	}
	return c.dice.roll(p.set.chaos)
}

// count records the fate of one reply.
func (p *Proxy) count(f fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch f {
	case forward:
		p.stats.Forwarded++
	case drop:
		p.stats.Dropped++
	case duplicate:
		p.stats.Forwarded++
		p.stats.Duplicated++
	case cut:
		p.stats.Cut++
		p.stats.Resets++
	}
}
