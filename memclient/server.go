package memclient

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// server is one memcached server: a fixed set of connection slots filled
// on demand, and its health.
type server struct {
	addr   string
	weight int
	cfg    *Config
	client *Client

	slots []slot

	// Health. failures counts consecutive failures; down is set once they
	// reach the threshold.
	failures atomic.Int32
	down     atomic.Bool
	requests atomic.Uint64
	errors   atomic.Uint64
	timeouts atomic.Uint64
	dials    atomic.Uint64 // connection attempts, probes included

	// valueSize is a running average of the sizes of the values the
	// server's Gets returned: a Get is charged it when a connection is
	// chosen (see spillWeight), since its reply is what it keeps in flight.
	valueSize atomic.Int64

	hmu       sync.Mutex // protects downSince, nextProbe, backoff, lastErr
	downSince time.Time
	nextProbe time.Time
	backoff   time.Duration
	lastErr   error

	gutter bool       // a gutter server
	omu    sync.Mutex // protects owed; taken before hmu
	owed   owed
}

type slot struct {
	c       atomic.Pointer[conn]
	mu      sync.Mutex   // protects attempt
	attempt *dialAttempt // the dial under way, if any
}

func newServer(c *Client, s Server) *server {
	return &server{
		addr:   s.Addr,
		weight: s.weight(),
		cfg:    &c.cfg,
		client: c,
		slots:  make([]slot, c.cfg.maxConns()),
	}
}

// spillWeight is the load (bytes of requests in flight, roughly) above
// which a connection is passed over for the next slot. Below it one
// connection carries every request: the deepest pipeline, the biggest
// batches, the fewest syscalls and server threads. Above it (large values,
// very many waiters) more connections keep a big transfer from delaying
// everything queued behind it. A Get counts as the values the server has
// been returning (valueSize): 64 callers of 100-byte values share one
// connection, a handful of 1 MB Gets spread over all of them.
const spillWeight = 64 << 10

// conn returns the first live connection whose load is under spillWeight,
// dialing the next slot when every open one is loaded, or the least loaded
// one when all slots are open and loaded. A dial is waited for until ctx
// ends or deadline.
func (s *server) conn(ctx context.Context, t, deadline time.Time, timer *time.Timer) (*conn, error) {
	now := t.UnixNano()
	var best *conn
	for i := range s.slots {
		sl := &s.slots[i]
		c := sl.c.Load()
		if c == nil || !c.usable(now) {
			return s.dialSlot(ctx, sl, now, deadline, timer)
		}
		w := c.weight.Load()
		if w < spillWeight {
			return c, nil
		}
		if best == nil || w < best.weight.Load() {
			best = c
		}
	}
	return best, nil
}

// dropConn forgets a failed connection so the next request dials anew.
func (s *server) dropConn(c *conn, err error) {
	for i := range s.slots {
		s.slots[i].c.CompareAndSwap(c, nil)
	}
	s.client.untrack(c)
	switch err {
	case ErrClosed, errClientClosing, errProbeDone, errServerDown, errIdleClosed:
		return // closed on purpose, not a failure of the server
	}
	var cut *cutError
	if errors.Is(err, ErrValueTooLarge) || errors.As(err, &cut) {
		return // a value bigger than we take, a deadline of ours: the server is fine
	}
	if !s.client.isClosed() {
		s.noteFailure(err)
	}
}

// closeAll closes every connection.
func (s *server) closeAll(err error) {
	for i := range s.slots {
		if c := s.slots[i].c.Load(); c != nil {
			c.fail(err)
		}
	}
}

func (s *server) noteSuccess() {
	if s.failures.Load() != 0 {
		s.failures.Store(0)
	}
}

// noteFailure counts a failure; at the threshold the server goes down.
func (s *server) noteFailure(err error) {
	s.errors.Add(1)
	s.hmu.Lock()
	s.lastErr = err
	s.hmu.Unlock()
	if int(s.failures.Add(1)) >= s.cfg.failureThreshold() {
		s.markDown(err)
	}
}

func (s *server) markDown(err error) {
	s.hmu.Lock()
	if s.down.Load() {
		s.hmu.Unlock()
		return
	}
	s.down.Store(true)
	s.downSince = s.client.now()
	s.backoff = s.cfg.retryInterval()
	s.nextProbe = s.downSince.Add(s.backoff)
	s.lastErr = err
	s.hmu.Unlock()
	s.stateChanged(false, err)
	// Connections to a dead server only make callers wait: close them.
	s.closeAll(errServerDown)
	s.client.wakeProber()
}

func (s *server) markUp() {
	s.hmu.Lock()
	s.down.Store(false)
	s.failures.Store(0)
	s.downSince = time.Time{}
	s.lastErr = nil
	s.hmu.Unlock()
}

func (s *server) unavailable() error {
	s.hmu.Lock()
	defer s.hmu.Unlock()
	return &unavailableError{addr: s.addr, cause: s.lastErr}
}

// ServerStatus is a snapshot of one server's health and counters.
type ServerStatus struct {
	Addr      string
	Weight    int
	Up        bool
	DownSince time.Time // zero when up
	LastError string    // the last failure, if any
	Conns     int       // open connections
	Requests  uint64    // requests sent
	Errors    uint64    // connection failures and error replies
	Timeouts  uint64    // requests that timed out
	Gutter    bool      // a gutter server (Config.Gutter)
	// PendingDeletes is how many deletes the server is owed (see
	// Config.MaxPendingDeletes); while any are, it is not Up.
	PendingDeletes int
	// OverflowedDeletes counts owed deletes past MaxPendingDeletes, each
	// covered by flushing the server instead.
	OverflowedDeletes uint64
}

func (s *server) status() ServerStatus {
	pending, dropped := s.pendingDeletes()
	s.hmu.Lock()
	defer s.hmu.Unlock()
	st := ServerStatus{
		Addr:      s.addr,
		Weight:    s.weight,
		Up:        !s.down.Load(),
		DownSince: s.downSince,
		Requests:  s.requests.Load(),
		Errors:    s.errors.Load(),
		Timeouts:  s.timeouts.Load(),
		Gutter:    s.gutter,
	}
	st.PendingDeletes, st.OverflowedDeletes = pending, dropped
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	for i := range s.slots {
		if c := s.slots[i].c.Load(); c != nil && !c.isClosed() {
			st.Conns++
		}
	}
	return st
}
