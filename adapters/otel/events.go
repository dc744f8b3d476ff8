package memkitotel

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

// numCacheKinds bounds the objcache.EventKinds this package records.
const numCacheKinds = int(objcache.EventBackgroundLoad) + 1

// cacheKind is how one objcache.EventKind is recorded.
type cacheKind struct {
	counter metric.Int64Counter // nil for EventBatchLoad
	event   string              // the span event's name
}

// cacheKinds names the counter of each objcache.EventKind but
// EventBatchLoad, which feeds memkit.objcache.batch_loads and
// memkit.objcache.batch_keys.
var cacheKinds = []struct {
	kind             objcache.EventKind
	name, unit, help string
}{
	{objcache.EventHit, "hits", "value", "Values served fresh from memcached."},
	{objcache.EventMiss, "misses", "lookup", "Lookups that found no usable value."},
	{objcache.EventLoad, "loads", "value", "Values loaded: loader runs, and keys asked of batch loaders."},
	{objcache.EventLoadError, "load_errors", "load", "Loads that failed or panicked (a not-found is not one)."},
	{objcache.EventNotFound, "not_found", "load", "Loads that answered not found, or keys a batch loader did not return."},
	{objcache.EventStaleServed, "stale_served", "value", "Out-of-date values served (fail-safe ones included)."},
	{objcache.EventFailSafeServed, "failsafe_served", "value", "Values served past their expiry because their reload failed or timed out."},
	{objcache.EventLeaseWait, "lease_waits", "lookup", "Lookups that waited for another caller's load."},
	{objcache.EventDecodeError, "decode_errors", "value", "Cached values that did not decode (treated as misses)."},
	{objcache.EventCoalesced, "coalesced", "lookup", "Lookups that shared another goroutine's lookup."},
	{objcache.EventRefresh, "refreshes", "refresh", "Early refreshes run."},
	{objcache.EventNegativeHit, "negative_hits", "lookup", "Cached not-found answers served."},
	{objcache.EventError, "errors", "error", "memcached errors that the loaders worked around."},
	{objcache.EventBackgroundLoad, "background_loads", "load", "Loads that went on in the background after the load timeout."},
}

// ObserveCache records one objcache event: a counter, and a span event
// on ctx's span when it is recording; part of objcache.Observer. Kinds
// this package does not know are ignored.
func (o *Observer) ObserveCache(ctx context.Context, ev objcache.Event) {
	if int(ev.Kind) >= numCacheKinds {
		return
	}
	k := o.cache[ev.Kind]
	if ev.Kind == objcache.EventBatchLoad {
		o.batchLoads.Add(ctx, 1)
		o.batchKeys.Record(ctx, int64(ev.Count))
	} else if k.counter != nil {
		k.counter.Add(ctx, int64(ev.Count))
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(k.event, eventTime(ev.Time),
			trace.WithAttributes(attribute.Int64("memkit.objcache.count", int64(ev.Count))))
	}
}

// numSessionKinds bounds the session.EventKinds this package records.
const numSessionKinds = int(session.EventRevocation) + 1

// sessionKind is how one session.EventKind is recorded.
type sessionKind struct {
	counter metric.Int64Counter
	event   string // the span event's name
}

// sessionAttrs are the measurement options of a load or a save.
type sessionAttrs struct {
	add    []metric.AddOption
	record []metric.RecordOption
}

// sessionKinds names the counter of each session.EventKind.
var sessionKinds = []struct {
	kind             session.EventKind
	name, unit, help string
}{
	{session.EventLoad, "loads", "load", "Session records read (a request's first read of its session, found or not)."},
	{session.EventSave, "saves", "save", "Session records written."},
	{session.EventConflict, "conflicts", "conflict", "Saves that lost a compare-and-swap to a concurrent request and merged their changes to try again."},
	{session.EventRevocation, "revocations", "revocation", "Revocations made: one session, a user's other sessions, or all of them."},
	{session.EventRevoked, "revoked", "request", "Requests whose session was found revoked and read as empty."},
}

// failedAttr marks the span event of a failed session store call.
var failedAttr = attribute.Bool("memkit.session.failed", true)

// ObserveSession records one session event: counters, the store call's
// duration, and a span event on ctx's span when it is recording; part of
// session.Observer. Kinds this package does not know are ignored.
func (o *Observer) ObserveSession(ctx context.Context, ev session.Event) {
	if int(ev.Kind) >= numSessionKinds {
		return
	}
	k := o.session[ev.Kind]
	k.counter.Add(ctx, 1)
	i := -1
	switch ev.Kind {
	case session.EventLoad:
		i = 0
	case session.EventSave:
		i = 1
	}
	if i >= 0 {
		if !ev.Start.IsZero() {
			o.sessionDuration.Record(ctx, ev.Duration.Seconds(), o.sessionAttrs[i].record...)
		}
		if ev.Failed {
			o.sessionFailures.Add(ctx, 1, o.sessionAttrs[i].add...)
		}
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		var at time.Time
		if !ev.Start.IsZero() {
			at = ev.Start.Add(ev.Duration)
		}
		if ev.Failed {
			span.AddEvent(k.event, eventTime(at), trace.WithAttributes(failedAttr))
		} else {
			span.AddEvent(k.event, eventTime(at))
		}
	}
}

// eventTime is the span event option for t; now when t is zero.
func eventTime(t time.Time) trace.EventOption {
	if t.IsZero() {
		t = time.Now()
	}
	return trace.WithTimestamp(t)
}
