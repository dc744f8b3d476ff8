package memclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// errServerDown fails requests in flight on the connections of a
	// server being marked down; it matches ErrServerUnavailable.
	errServerDown    = fmt.Errorf("marked down after repeated failures: %w", ErrServerUnavailable)
	errClientClosing = errors.New("client closing")
	errProbeDone     = errors.New("probe done")
)

// Client is a memcached client for one or more servers. It is safe for
// concurrent use by multiple goroutines. Close it to release its
// connections and goroutines.
type Client struct {
	cfg  Config
	topo atomic.Pointer[topology]
	now  func() time.Time // clock seam

	mu     sync.Mutex // protects conns, closed, probing
	conns  map[*conn]struct{}
	closed bool
	// probing is true while the prober goroutine runs.
	probing bool
	probeWG sync.WaitGroup
	wake    chan struct{} // capacity 1: a server went down
	quit    chan struct{} // closed by Close
}

// topology is an immutable server list and its key distribution.
type topology struct {
	servers []*server
	sel     selector
}

// New returns a client for servers given as "host:port" or
// "host:port:weight", with keys spread by weighted ketama.
func New(servers ...string) (*Client, error) {
	cfg := Config{}
	for _, s := range servers {
		srv, err := ParseServer(s)
		if err != nil {
			return nil, err
		}
		cfg.Servers = append(cfg.Servers, srv)
	}
	return NewFromConfig(cfg)
}

// NewFromConfig returns a client for cfg. Connections are made on first
// use, so it does not fail for a server that is down.
func NewFromConfig(cfg Config) (*Client, error) {
	switch cfg.Protocol {
	case ProtocolMeta, ProtocolText:
	default:
		return nil, fmt.Errorf("memclient: unknown protocol %v", cfg.Protocol)
	}
	cfg.Servers = append([]Server(nil), cfg.Servers...)
	c := &Client{
		cfg:   cfg,
		now:   time.Now,
		conns: make(map[*conn]struct{}),
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
	}
	if err := c.SetServers(cfg.Servers...); err != nil {
		return nil, err
	}
	return c, nil
}

// SetServers replaces the server list. Connections to servers that stay
// are kept; those to removed servers are closed.
func (c *Client) SetServers(servers ...Server) error {
	for i, s := range servers {
		if _, err := ParseServer(s.Addr); err != nil {
			return err
		}
		if s.Weight < 0 {
			return fmt.Errorf("memclient: negative weight for %s", s.Addr)
		}
		for _, o := range servers[:i] {
			if o.Addr == s.Addr {
				return fmt.Errorf("memclient: server %s listed twice", s.Addr)
			}
		}
	}
	var sel selector
	if len(servers) > 0 {
		var err error
		if sel, err = newSelector(c.cfg.Distribution, servers); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	old := c.topo.Load()
	byAddr := make(map[string]*server)
	if old != nil {
		for _, s := range old.servers {
			byAddr[s.addr] = s
		}
	}
	t := &topology{sel: sel}
	for _, s := range servers {
		srv := byAddr[s.Addr]
		if srv != nil && srv.weight == s.weight() {
			delete(byAddr, s.Addr)
		} else {
			srv = newServer(c, s)
		}
		t.servers = append(t.servers, srv)
	}
	c.topo.Store(t)
	for _, gone := range byAddr {
		go gone.closeAll(errClientClosing) // not under c.mu: fail takes it via untrack
	}
	return nil
}

// ServerStatus returns the health and counters of every server, in
// configuration order.
func (c *Client) ServerStatus() []ServerStatus {
	t := c.topo.Load()
	out := make([]ServerStatus, len(t.servers))
	for i, s := range t.servers {
		out[i] = s.status()
	}
	return out
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *Client) track(cn *conn) {
	c.mu.Lock()
	c.conns[cn] = struct{}{}
	c.mu.Unlock()
}

func (c *Client) untrack(cn *conn) {
	c.mu.Lock()
	delete(c.conns, cn)
	c.mu.Unlock()
}

// Close closes every connection and waits for every goroutine the client
// started. Calls in flight fail; later calls return ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.quit)
	conns := make([]*conn, 0, len(c.conns))
	for cn := range c.conns {
		conns = append(conns, cn)
	}
	c.mu.Unlock()
	for _, cn := range conns {
		cn.fail(errClientClosing)
	}
	c.probeWG.Wait()
	return nil
}

// serverFor returns the server for key, honouring down servers and
// failover.
func (c *Client) serverFor(key string) (*server, error) {
	t := c.topo.Load()
	switch len(t.servers) {
	case 0:
		return nil, ErrNoServers
	case 1:
		s := t.servers[0]
		if s.down.Load() {
			return nil, s.unavailable()
		}
		return s, nil
	}
	s := t.servers[t.sel.pick(key)]
	if !s.down.Load() {
		return s, nil
	}
	if !c.cfg.Failover {
		return nil, s.unavailable()
	}
	i := t.sel.pickLive(key, func(i int) bool { return t.servers[i].down.Load() })
	if i < 0 {
		return nil, s.unavailable()
	}
	return t.servers[i], nil
}

// times returns the time now and the call's deadline: the earlier of
// ctx's deadline and now + Config.Timeout. One clock read serves the call.
func (c *Client) times(ctx context.Context) (now, deadline time.Time) {
	now = time.Now()
	deadline = now.Add(c.cfg.timeout())
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	return now, deadline
}

// roundTrip sends reqs to s on one connection and waits for all replies.
// On return the caller owns every request that is not reported abandoned
// (abandoned requests are recycled by the reader); the returned error is
// a transport error (timeout, closed connection, down server) common to
// all of them, or nil, in which case each request's err holds its result.
func (c *Client) roundTrip(ctx context.Context, s *server, now, deadline time.Time, reqs []*request, abandoned []bool) error {
	cn, err := c.start(ctx, s, now, deadline, reqs)
	if err != nil {
		return err
	}
	return c.finish(ctx, s, cn, deadline, reqs, abandoned)
}

// start writes reqs to a connection of s.
func (c *Client) start(ctx context.Context, s *server, now, deadline time.Time, reqs []*request) (*conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxError(s.addr, err)
	}
	cn, err := s.conn(ctx, now)
	if err != nil {
		return nil, err
	}
	s.requests.Add(uint64(len(reqs)))
	if err := cn.send(ctx, now, deadline, reqs[0].timer, reqs...); err != nil {
		if isTimeout(err) {
			s.timeouts.Add(1)
		}
		return nil, err
	}
	return cn, nil
}

// finish waits for the replies to reqs, sent on cn by start.
func (c *Client) finish(ctx context.Context, s *server, cn *conn, deadline time.Time, reqs []*request, abandoned []bool) error {
	sentAt, seen := reqs[0].sentAt, reqs[0].seen // ours to read until we wait
	var firstErr error
	// Replies come in order: whoever reads for the last request completes
	// the earlier ones on the way.
	for i := len(reqs) - 1; i >= 0; i-- {
		ab, err := cn.await(ctx, deadline, reqs[i])
		abandoned[i] = ab
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		if isTimeout(firstErr) || errors.Is(firstErr, context.DeadlineExceeded) {
			s.timeouts.Add(1)
			// A connection that answered nothing for a while since our
			// request went out is stuck (a frozen or unreachable server):
			// replace it, which counts against the server. A short caller
			// deadline on a busy server is not evidence of that.
			waited := time.Duration(time.Now().UnixNano() - sentAt)
			if cn.replies.Load() == seen && waited >= min(c.cfg.timeout(), stuckAfter) {
				cn.fail(&stuckError{waited: waited})
			}
		}
		return firstErr
	}
	return nil
}

// stuckError fails the requests on a connection found stuck. It reports
// Timeout() true, but does not match context.DeadlineExceeded: their own
// deadlines have not passed.
type stuckError struct{ waited time.Duration }

func (e *stuckError) Error() string {
	return "connection stuck: no reply for " + e.waited.Round(time.Millisecond).String()
}
func (e *stuckError) Timeout() bool   { return true }
func (e *stuckError) Temporary() bool { return true }

// stuckAfter is how long a connection may answer nothing while a request
// waits on it before it counts as stuck (or Config.Timeout, if shorter).
const stuckAfter = 100 * time.Millisecond

func isTimeout(err error) bool {
	var te *timeoutError
	return errors.As(err, &te)
}

// do runs one single-key request and returns its result error. The
// request is consumed unless keep is true and the request was answered.
func (c *Client) do(ctx context.Context, r *request) (owned bool, err error) {
	s, err := c.serverFor(r.key)
	if err != nil {
		return true, err
	}
	var ab [1]bool
	reqs := [1]*request{r}
	now, deadline := c.times(ctx)
	if err := c.roundTrip(ctx, s, now, deadline, reqs[:], ab[:]); err != nil {
		return !ab[0], err
	}
	if r.err != nil {
		if se := (*ServerError)(nil); errors.As(r.err, &se) {
			s.errors.Add(1)
		}
	}
	return true, r.err
}

func (c *Client) getItem(ctx context.Context, op opcode, key string, ttl time.Duration) (*Item, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r := getRequest(op)
	r.key = key
	r.exp = expiration(ttl, c.now)
	owned, err := c.do(ctx, r)
	if !owned {
		return nil, err
	}
	item := r.resItem
	putRequest(r)
	if err != nil {
		return nil, err
	}
	return item, nil
}

func (c *Client) store(ctx context.Context, op opcode, item *Item) error {
	if item == nil {
		return errors.New("memclient: nil item")
	}
	if err := checkKey(item.Key); err != nil {
		return err
	}
	if len(item.Value) > c.cfg.maxItemSize() {
		return fmt.Errorf("%w: %d bytes for %q (MaxItemSize %d)", ErrValueTooLarge, len(item.Value), item.Key, c.cfg.maxItemSize())
	}
	r := getRequest(op)
	r.key = item.Key
	r.item = item
	r.exp = expiration(item.TTL, c.now)
	owned, err := c.do(ctx, r)
	if owned {
		putRequest(r)
	}
	return err
}

func (c *Client) arith(ctx context.Context, op opcode, key string, delta uint64) (uint64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	r := getRequest(op)
	r.key = key
	r.delta = delta
	owned, err := c.do(ctx, r)
	if !owned {
		return 0, err
	}
	n := r.num
	putRequest(r)
	return n, err
}

func (c *Client) getLease(ctx context.Context, key string, opts LeaseOptions) (*Lease, error) {
	if c.cfg.Protocol != ProtocolMeta {
		return nil, ErrNotSupported
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r := getRequest(opLease)
	r.key = key
	r.lease = opts
	owned, err := c.do(ctx, r)
	if !owned {
		return nil, err
	}
	lease := r.resLease
	putRequest(r)
	if err != nil {
		return nil, err
	}
	return &lease, nil
}

func (c *Client) invalidate(ctx context.Context, key string, ttl time.Duration) error {
	if c.cfg.Protocol != ProtocolMeta {
		return ErrNotSupported
	}
	if err := checkKey(key); err != nil {
		return err
	}
	r := getRequest(opInvalidate)
	r.key = key
	if ttl > 0 {
		r.exp = expiration(ttl, c.now)
	}
	owned, err := c.do(ctx, r)
	if owned {
		putRequest(r)
	}
	return err
}

// checkKey refuses keys that could break the protocol.
func checkKey(key string) error {
	if len(key) == 0 || len(key) > 250 {
		return fmt.Errorf("%w: length %d (want 1 to 250 bytes)", ErrMalformedKey, len(key))
	}
	for i := 0; i < len(key); i++ {
		if b := key[i]; b <= ' ' || b == 0x7f {
			return fmt.Errorf("%w: byte %#x at %d in %q", ErrMalformedKey, b, i, key)
		}
	}
	return nil
}

// maxRelativeTTL is the longest TTL memcached takes as relative seconds;
// longer ones must be absolute Unix times.
const maxRelativeTTL = 30 * 24 * 60 * 60

// expiration converts a TTL to memcached's exptime: 0 never expires,
// sub-second rounds up, over 30 days becomes an absolute time.
func expiration(ttl time.Duration, now func() time.Time) int64 {
	switch {
	case ttl == 0:
		return 0
	case ttl < 0:
		return -1
	}
	secs := int64((ttl + time.Second - 1) / time.Second)
	if secs > maxRelativeTTL {
		return now().Add(ttl).Unix()
	}
	return secs
}

func wrapAddr(addr string, err error) error {
	if err == ErrClosed {
		return err
	}
	if err == context.Canceled || err == context.DeadlineExceeded {
		return ctxError(addr, err)
	}
	return fmt.Errorf("memclient: %s: %w", addr, err)
}

// ctxError names the server a call was waiting on when its context ended;
// it still matches the context's error with errors.Is.
func ctxError(addr string, err error) error {
	return fmt.Errorf("memclient: %s: %w", addr, err)
}
