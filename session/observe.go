package session

import (
	"context"
	"time"

	"github.com/memkit/memkit/internal/fanout"
)

// Observer is told what a Manager does with the store, for metrics and
// traces: exporters (Prometheus, OpenTelemetry) implement it. Its method
// is called synchronously on the goroutine that did the work, with the
// request's context (whose span, if any, is the event's parent), so it
// must be quick and safe for concurrent use. Session IDs, user IDs and
// values never reach it.
type Observer interface {
	ObserveSession(ctx context.Context, ev Event)
}

// EventKind is what an Event reports.
type EventKind uint8

const (
	// EventLoad is a session record read: a request's first read of its
	// session, found or not.
	EventLoad EventKind = iota
	// EventSave is a session record written.
	EventSave
	// EventConflict is a save (or a per-user record's update) that lost a
	// compare-and-swap to a concurrent request and merged its changes to
	// try again.
	EventConflict
	// EventRevoked is a request whose session was found revoked (its
	// user's epoch moved on, or was evicted) and read as empty.
	EventRevoked
	// EventRevocation is a revocation made: one session, a user's other
	// sessions, or all of them.
	EventRevocation
)

func (k EventKind) String() string {
	switch k {
	case EventLoad:
		return "load"
	case EventSave:
		return "save"
	case EventConflict:
		return "conflict"
	case EventRevoked:
		return "revoked"
	case EventRevocation:
		return "revocation"
	}
	return "unknown"
}

// Event is one thing a Manager did.
type Event struct {
	Kind EventKind
	// Start is when the store call began; Duration how long it took (0
	// for events that are not a store call of their own).
	Start    time.Time
	Duration time.Duration
	// Failed says the store call failed.
	Failed bool
}

// observe counts the event and tells the Observer, if one is set.
func (m *Manager) observe(ctx context.Context, kind EventKind, start time.Time, failed bool) {
	switch kind {
	case EventLoad:
		m.stats.loads.Add(1)
	case EventSave:
		m.stats.saves.Add(1)
	case EventConflict:
		m.stats.conflicts.Add(1)
	case EventRevoked:
		m.stats.revoked.Add(1)
	case EventRevocation:
		m.stats.revocations.Add(1)
	}
	if m.Observer == nil {
		return
	}
	ev := Event{Kind: kind, Start: start, Failed: failed}
	if !start.IsZero() {
		ev.Duration = time.Since(start)
	}
	m.Observer.ObserveSession(ctx, ev)
}

// Observers returns an Observer that tells each of obs, in order (nil
// ones skipped). With none it returns nil, which costs nothing.
func Observers(obs ...Observer) Observer {
	return fanout.Combine(obs, func(list multiObserver) Observer { return list })
}

type multiObserver []Observer

func (m multiObserver) ObserveSession(ctx context.Context, ev Event) {
	for _, o := range m {
		o.ObserveSession(ctx, ev)
	}
}
