package memclient

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/memkit/memkit/internal/fanout"
)

// Observer is told what a Client does: every operation on every server,
// and every server marked down or up. Exporters (Prometheus,
// OpenTelemetry) implement it. Its methods are called synchronously, on
// the goroutine that did the work, so they must be quick and safe for
// concurrent use; an operation's call gets the caller's context, whose
// span, if any, is the operation's parent. Keys and values never reach an
// Observer.
type Observer interface {
	ObserveOp(ctx context.Context, op Op)
	ObserveServer(ctx context.Context, ev ServerEvent)
}

// Op is one operation on one server. A multi-key call makes one Op per
// server it used.
type Op struct {
	// Name is the operation: get, get_multi, set, add, replace, append,
	// prepend, cas, delete, incr, decr, touch, gat, lease, invalidate,
	// flush_all, stats or ping. SetMulti reports set, DeleteMulti delete,
	// GetLeaseMulti lease.
	Name string
	// Server is the server's address ("" for a call refused before one
	// was chosen: a malformed key); Gutter says it is a gutter server.
	Server string
	Gutter bool
	// Start is when the call began; Duration how long it took on this
	// server.
	Start    time.Time
	Duration time.Duration
	// Keys is how many keys the operation carried.
	Keys int
	// BytesIn and BytesOut are the value bytes received and sent.
	BytesIn, BytesOut int
	// Outcome is what happened; a miss, a not-stored and a CAS conflict
	// are outcomes, not failures.
	Outcome Outcome
	// Reason says why it failed (Outcome == OutcomeFailed): one of
	// timeout, network, server-error, malformed-key, too-large, protocol,
	// unavailable, other.
	Reason string
}

// Outcome is how an operation ended.
type Outcome uint8

const (
	OutcomeOK        Outcome = iota // done; for a read, found
	OutcomeMiss                     // a read found nothing
	OutcomeNotStored                // a conditional store did not apply
	OutcomeConflict                 // CompareAndSwap lost
	OutcomeFailed                   // an error: see Op.Reason
)

func (o Outcome) String() string {
	switch o {
	case OutcomeOK:
		return "ok"
	case OutcomeMiss:
		return "miss"
	case OutcomeNotStored:
		return "not_stored"
	case OutcomeConflict:
		return "conflict"
	}
	return "failed"
}

// ServerEvent is a server marked down or back up.
type ServerEvent struct {
	Server string
	Gutter bool
	Up     bool
	// Reason is why it went down (nil when up).
	Reason error
	Time   time.Time
}

// outcome sorts an operation's error into an Outcome and, for a failure,
// its reason.
func outcome(err error) (Outcome, string) {
	switch {
	case err == nil:
		return OutcomeOK, ""
	case errors.Is(err, ErrCacheMiss):
		return OutcomeMiss, ""
	case errors.Is(err, ErrNotStored):
		return OutcomeNotStored, ""
	case errors.Is(err, ErrCASConflict):
		return OutcomeConflict, ""
	}
	return OutcomeFailed, FailureReason(err)
}

// FailureReason sorts an error from the client into the reasons metrics
// count failures by: timeout, network, server-error, malformed-key,
// too-large, protocol, unavailable or other.
func FailureReason(err error) string {
	var se *ServerError
	var ne net.Error
	var ste *stuckError
	switch {
	case errors.Is(err, ErrServerUnavailable):
		return "unavailable"
	case errors.Is(err, ErrMalformedKey):
		return "malformed-key"
	case errors.Is(err, ErrValueTooLarge):
		return "too-large"
	case errors.Is(err, ErrProtocol):
		return "protocol"
	case errors.As(err, &se):
		return "server-error"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ste):
		return "timeout"
	case errors.As(err, &ne):
		if ne.Timeout() {
			return "timeout"
		}
		return "network"
	case errors.Is(err, errConnClosed):
		return "network"
	}
	return "other"
}

// observe reports one operation on s (nil: refused before a server was
// chosen, as a malformed key is), if an Observer is set.
func (c *Client) observe(ctx context.Context, s *server, name string, start time.Time, keys, in, out int, err error) {
	if c.cfg.Observer == nil {
		return
	}
	o, reason := outcome(err)
	var addr string
	var gutter bool
	if s != nil {
		addr, gutter = s.addr, s.gutter
	}
	c.cfg.Observer.ObserveOp(ctx, Op{
		Name: name, Server: addr, Gutter: gutter,
		Start: start, Duration: time.Since(start),
		Keys: keys, BytesIn: in, BytesOut: out,
		Outcome: o, Reason: reason,
	})
}

// stateChanged tells the Observer and the Logger that s went down or up.
func (s *server) stateChanged(up bool, reason error) {
	cfg := s.cfg
	if cfg.Observer != nil {
		cfg.Observer.ObserveServer(context.Background(), ServerEvent{Server: s.addr, Gutter: s.gutter, Up: up, Reason: reason, Time: s.client.now()})
	}
	if cfg.Logger != nil {
		if up {
			cfg.Logger.Info("memcached server up", slog.String("server", s.addr), slog.Bool("gutter", s.gutter))
		} else {
			msg := ""
			if reason != nil {
				msg = reason.Error()
			}
			cfg.Logger.Warn("memcached server down", slog.String("server", s.addr), slog.Bool("gutter", s.gutter), slog.String("reason", msg))
		}
	}
}

// PingResult is one server's answer to Ping.
type PingResult struct {
	Addr string
	RTT  time.Duration
	Err  error
}

// Ping checks every server (the gutter's included) in parallel with a
// no-op (mn on the meta protocol, version on the text one, a get behind a
// proxy), down servers too, and returns each one's round trip or error,
// in ServerStatus's order. The error is non-nil when any server failed.
func (c *Client) Ping(ctx context.Context) ([]PingResult, error) {
	t := c.topo.Load()
	servers := append(t.servers[:len(t.servers):len(t.servers)], t.gutter...)
	if len(servers) == 0 {
		return nil, ErrNoServers
	}
	now, deadline := c.times(ctx)
	batches := make(map[*server]*batch, len(servers))
	for _, s := range servers {
		r := getRequest(opNoop)
		if c.cfg.BehindProxy {
			r.op, r.key = opGet, probeKey
		}
		batches[s] = &batch{srv: s, reqs: []*request{r}}
	}
	c.runAll(ctx, batches, now, deadline)
	end := time.Now()
	out := make([]PingResult, len(servers))
	var errs []error
	for i, s := range servers {
		b := batches[s]
		var err error
		switch {
		case b.cn == nil || b.ab[0]:
			err = b.err
		default:
			if err = b.reqs[0].err; errors.Is(err, ErrCacheMiss) {
				err = nil
			}
		}
		if b.cn == nil || !b.ab[0] {
			putRequest(b.reqs[0])
		}
		out[i] = PingResult{Addr: s.addr, Err: err}
		if err != nil {
			errs = append(errs, err)
		} else if !b.done.IsZero() {
			out[i].RTT = b.done.Sub(now)
		} else {
			out[i].RTT = end.Sub(now) // batches finish in turn: an upper bound
		}
		c.observe(ctx, s, "ping", now, 0, 0, 0, err)
	}
	return out, errors.Join(errs...)
}

// Observers returns an Observer that tells each of obs, in order (nil
// ones skipped): for metrics and traces at once, say. With none it
// returns nil, which costs nothing.
func Observers(obs ...Observer) Observer {
	return fanout.Combine(obs, func(list multiObserver) Observer { return list })
}

type multiObserver []Observer

func (m multiObserver) ObserveOp(ctx context.Context, op Op) {
	for _, o := range m {
		o.ObserveOp(ctx, op)
	}
}

func (m multiObserver) ObserveServer(ctx context.Context, ev ServerEvent) {
	for _, o := range m {
		o.ObserveServer(ctx, ev)
	}
}
