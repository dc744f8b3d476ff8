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

	// life ends when the client closes: it bounds the background work
	// (dials, probes) that no caller's context does.
	life context.Context
	stop context.CancelFunc

	mu      sync.Mutex // protects conns, closed, probing, and bg.Add
	conns   map[*conn]struct{}
	closed  bool
	probing bool           // the prober goroutine runs
	bg      sync.WaitGroup // background goroutines: the prober, shared dials
	wake    chan struct{}  // capacity 1: a server went down
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
	if err := checkCredentials(cfg.Username, cfg.Password); err != nil {
		return nil, err
	}
	if err := checkServers(cfg.Gutter); err != nil {
		return nil, fmt.Errorf("memclient: Gutter: %w", err)
	}
	for _, g := range cfg.Gutter {
		for _, s := range cfg.Servers {
			if g.Addr == s.Addr {
				return nil, fmt.Errorf("memclient: %s is both a server and a gutter server", g.Addr)
			}
		}
	}
	if cfg.BehindProxy && cfg.Protocol != ProtocolText {
		return nil, errors.New("memclient: BehindProxy needs Protocol: ProtocolText (twemproxy speaks the text protocol only)")
	}
	if cfg.BehindProxy && cfg.Username != "" {
		return nil, errors.New("memclient: BehindProxy with Username: a proxy does not pass memcached's ASCII auth")
	}
	if cfg.Replicas < 0 {
		return nil, errors.New("memclient: negative Replicas")
	}
	cfg.Servers = append([]Server(nil), cfg.Servers...)
	c := &Client{
		cfg:   cfg,
		now:   time.Now,
		conns: make(map[*conn]struct{}),
		wake:  make(chan struct{}, 1),
	}
	c.life, c.stop = context.WithCancel(context.Background())
	if err := c.SetServers(cfg.Servers...); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// SetServers replaces the server list. Connections to servers that stay
// are kept; those to removed servers are closed (with Config.WarmUp, when
// the warm-up ends).
func (c *Client) SetServers(servers ...Server) error {
	if err := checkServers(servers); err != nil {
		return err
	}
	var sel selector
	if len(servers) > 0 {
		var err error
		if sel, err = newSelector(c.cfg.Distribution, c.cfg.Hash, servers); err != nil {
			return err
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	old := c.topo.Load()
	byAddr := make(map[string]*server)
	if old != nil {
		for _, s := range old.servers {
			byAddr[s.addr] = s
		}
	}
	t := &topology{sel: sel, replicas: c.cfg.replicas()}
	for _, s := range servers {
		srv := byAddr[s.Addr]
		if srv != nil && srv.weight == s.weight() {
			delete(byAddr, s.Addr)
		} else {
			srv = newServer(c, s)
		}
		t.servers = append(t.servers, srv)
	}
	if old != nil {
		t.gutter, t.gsel = old.gutter, old.gsel
	} else if len(c.cfg.Gutter) > 0 {
		for _, s := range c.cfg.Gutter {
			g := newServer(c, s)
			g.gutter = true
			t.gutter = append(t.gutter, g)
		}
		gsel, err := newSelector(DistributionKetama, HashDefault, c.cfg.Gutter)
		if err != nil {
			c.mu.Unlock()
			return err
		}
		t.gsel = gsel
	}
	var retired []*server
	for _, gone := range byAddr {
		retired = append(retired, gone)
	}
	warm := c.cfg.WarmUp > 0 && old != nil && len(old.servers) > 0
	if warm {
		t.prev = &topology{servers: old.servers, sel: old.sel, replicas: old.replicas, simple: true}
		t.warmUntil = c.now().Add(c.cfg.WarmUp).UnixNano()
	}
	t.simple = t.replicas == 1 && len(t.gutter) == 0 && t.prev == nil
	c.topo.Store(t)
	c.mu.Unlock()

	if !warm {
		closeServers(retired)
		return nil
	}
	// After the warm-up, forget the previous servers and close the removed
	// ones.
	c.goBackground(func() {
		timer := time.NewTimer(c.cfg.WarmUp)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-c.life.Done():
			return // Close closes every connection
		}
		c.mu.Lock()
		if c.topo.Load() == t {
			done := *t
			done.prev, done.warmUntil = nil, 0
			done.simple = done.replicas == 1 && len(done.gutter) == 0
			c.topo.Store(&done)
		}
		c.mu.Unlock()
		closeServers(retired)
	})
	return nil
}

// checkServers refuses a server list that cannot be used.
func checkServers(servers []Server) error {
	for i, s := range servers {
		if p, err := ParseServer(s.Addr); err != nil {
			return err
		} else if p.Addr != s.Addr {
			return fmt.Errorf("memclient: bad server address %q (a weight or name goes in its own field)", s.Addr)
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
	return nil
}

// closeServers closes the connections of servers no longer in use.
func closeServers(servers []*server) {
	for _, s := range servers {
		s.closeAll(errClientClosing)
	}
}

// ServerStatus returns the health and counters of every server, in
// configuration order, then of the gutter servers (Gutter set).
func (c *Client) ServerStatus() []ServerStatus {
	t := c.topo.Load()
	out := make([]ServerStatus, 0, len(t.servers)+len(t.gutter))
	for _, s := range t.servers {
		out = append(out, s.status())
	}
	for _, s := range t.gutter {
		out = append(out, s.status())
	}
	return out
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// track records an open connection so that Close can close it; it
// reports false, tracking nothing, once the client is closed.
func (c *Client) track(cn *conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.conns[cn] = struct{}{}
	return true
}

func (c *Client) untrack(cn *conn) {
	c.mu.Lock()
	delete(c.conns, cn)
	c.mu.Unlock()
}

// goBackground runs f in a goroutine that Close waits for, unless the
// client is closed, in which case it reports false.
func (c *Client) goBackground(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		f()
	}()
	return true
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
	c.stop()
	conns := make([]*conn, 0, len(c.conns))
	for cn := range c.conns {
		conns = append(conns, cn)
	}
	c.mu.Unlock()
	for _, cn := range conns {
		cn.fail(errClientClosing)
	}
	c.bg.Wait()
	return nil
}

// Item is a value stored under a key.
type Item struct {
	Key   string
	Value []byte
	// Flags are opaque to the server and returned with the value.
	Flags uint32
	// TTL is the time to live: 0 means never expires; sub-second values
	// round up to a second; values over 30 days are sent as an absolute
	// Unix time, as memcached requires.
	TTL time.Duration
	// CAS is filled by Get, GetMulti and GetAndTouch and used by
	// CompareAndSwap.
	CAS uint64

	from *server // with replicas, the one that served it: its CAS is that server's
}

// Get returns the item for key, or ErrCacheMiss.
func (c *Client) Get(ctx context.Context, key string) (*Item, error) {
	return c.getItem(ctx, opGet, key, 0)
}

// GetAndTouch returns the item for key and sets its TTL in the same round
// trip, or ErrCacheMiss.
func (c *Client) GetAndTouch(ctx context.Context, key string, ttl time.Duration) (*Item, error) {
	return c.getItem(ctx, opGAT, key, ttl)
}

// Touch sets the TTL of key's item, or returns ErrCacheMiss.
func (c *Client) Touch(ctx context.Context, key string, ttl time.Duration) error {
	_, err := c.getItem(ctx, opTouch, key, ttl)
	return err
}

// Set stores item unconditionally.
func (c *Client) Set(ctx context.Context, item *Item) error {
	return c.store(ctx, opSet, item)
}

// Add stores item only if its key has no item; otherwise ErrNotStored.
func (c *Client) Add(ctx context.Context, item *Item) error {
	return c.store(ctx, opAdd, item)
}

// Replace stores item only if its key has an item; otherwise ErrNotStored.
func (c *Client) Replace(ctx context.Context, item *Item) error {
	return c.store(ctx, opReplace, item)
}

// Append adds item.Value after the existing value, keeping its flags and
// TTL; ErrNotStored if the key has no item.
func (c *Client) Append(ctx context.Context, item *Item) error {
	return c.store(ctx, opAppend, item)
}

// Prepend adds item.Value before the existing value, keeping its flags and
// TTL; ErrNotStored if the key has no item.
func (c *Client) Prepend(ctx context.Context, item *Item) error {
	return c.store(ctx, opPrepend, item)
}

// CompareAndSwap stores item only if the key's item is unchanged since
// item.CAS was read: ErrCASConflict if it changed, ErrCacheMiss if it is
// gone.
func (c *Client) CompareAndSwap(ctx context.Context, item *Item) error {
	return c.store(ctx, opCAS, item)
}

// Delete removes key's item, or returns ErrCacheMiss.
func (c *Client) Delete(ctx context.Context, key string) error {
	_, err := c.getItem(ctx, opDelete, key, 0)
	return err
}

// Increment adds delta to the decimal number stored at key and returns the
// new value (wrapping at 2^64), or ErrCacheMiss. A value that is not a
// number fails with a *ServerError.
func (c *Client) Increment(ctx context.Context, key string, delta uint64) (uint64, error) {
	return c.arith(ctx, opIncr, key, delta)
}

// Decrement subtracts delta from the decimal number stored at key, stopping
// at 0, and returns the new value, or ErrCacheMiss.
func (c *Client) Decrement(ctx context.Context, key string, delta uint64) (uint64, error) {
	return c.arith(ctx, opDecr, key, delta)
}

// Protocol returns the wire protocol the client speaks (Config.Protocol):
// with ProtocolText, GetLease and Invalidate return ErrNotSupported.
func (c *Client) Protocol() Protocol { return c.cfg.Protocol }
