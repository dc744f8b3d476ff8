package objcache

import (
	"context"
	"time"

	"github.com/memkit/memkit/internal/fanout"
)

// Observer is told what a Cache does: hits, misses, loads and the rest of
// what Stats counts, as it happens, for metrics and traces (exporters
// implement it). Its method is called synchronously on the goroutine that
// did the work, with the caller's context (whose span, if any, is the
// event's parent), so it must be quick and safe for concurrent use. Keys
// and values never reach it.
type Observer interface {
	ObserveCache(ctx context.Context, ev Event)
}

// EventKind is what an Event reports; each is one of Stats' counters.
type EventKind uint8

const (
	EventHit            EventKind = iota // values served fresh (Count of them)
	EventMiss                            // lookups that found no usable value
	EventLoad                            // values loaded (Count keys; Start: when the load began)
	EventLoadError                       // loads that failed or panicked; a "not found" is not one
	EventNotFound                        // loads that answered ErrNotFound, or keys a batch loader did not return
	EventStaleServed                     // out-of-date values served (FailSafeServed included)
	EventFailSafeServed                  // values served past their expiry because their reload failed or timed out
	EventLeaseWait                       // lookups that waited for another caller's load
	EventDecodeError                     // cached values that did not decode (treated as misses)
	EventCoalesced                       // lookups that shared another goroutine's lookup
	EventRefresh                         // early refreshes run
	EventNegativeHit                     // cached ErrNotFound answers served
	EventError                           // memcached errors that the loaders worked around
	EventBatchLoad                       // a batch loader call (Count: its keys)
	EventBackgroundLoad                  // loads that went on in the background after LoadTimeout
	EventLocalHit                        // values served by the local tier (also counted as EventHit)
)

var eventNames = [...]string{
	EventHit: "hit", EventMiss: "miss", EventLoad: "load", EventLoadError: "load_error",
	EventNotFound: "not_found", EventStaleServed: "stale_served", EventFailSafeServed: "failsafe_served",
	EventLeaseWait: "lease_wait", EventDecodeError: "decode_error", EventCoalesced: "coalesced",
	EventRefresh: "refresh", EventNegativeHit: "negative_hit", EventError: "error",
	EventBatchLoad: "batch_load", EventBackgroundLoad: "background_load", EventLocalHit: "local_hit",
}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one thing a Cache did, Count times (keys, for batches).
type Event struct {
	Kind  EventKind
	Count uint64
	Time  time.Time // when it happened
}

// count adds n to kind's counter and tells the Observer, if one is set.
func (c *Cache) count(ctx context.Context, kind EventKind, n uint64) {
	s := &c.sh.stats
	switch kind {
	case EventHit:
		s.hits.Add(n)
	case EventMiss:
		s.misses.Add(n)
	case EventLoad:
		s.loads.Add(n)
	case EventLoadError:
		s.loadErrors.Add(n)
	case EventNotFound:
		s.notFound.Add(n)
	case EventStaleServed:
		s.staleServed.Add(n)
	case EventFailSafeServed:
		s.failSafeServed.Add(n)
	case EventLeaseWait:
		s.leaseWaits.Add(n)
	case EventDecodeError:
		s.decodeErrors.Add(n)
	case EventCoalesced:
		s.coalesced.Add(n)
	case EventRefresh:
		s.refreshes.Add(n)
	case EventNegativeHit:
		s.negativeHits.Add(n)
	case EventError:
		s.errors.Add(n)
	case EventBatchLoad:
		s.batchLoads.Add(1)
		s.batchKeys.Add(n)
	case EventBackgroundLoad:
		s.backgroundLoads.Add(n)
	case EventLocalHit:
		s.localHits.Add(n)
	}
	if o := c.opts.Observer; o != nil && n > 0 {
		o.ObserveCache(ctx, Event{Kind: kind, Count: n, Time: c.sh.now()})
	}
}

// Observers returns an Observer that tells each of obs, in order (nil
// ones skipped). With none it returns nil, which costs nothing.
func Observers(obs ...Observer) Observer {
	return fanout.Combine(obs, func(list multiObserver) Observer { return list })
}

type multiObserver []Observer

func (m multiObserver) ObserveCache(ctx context.Context, ev Event) {
	for _, o := range m {
		o.ObserveCache(ctx, ev)
	}
}
