package memkitprom

import (
	"context"

	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

// numCacheKinds bounds the objcache.EventKinds this package counts.
const numCacheKinds = int(objcache.EventBackgroundLoad) + 1

// cacheKinds names the counter of each objcache.EventKind but
// EventBatchLoad, which feeds memkit_objcache_batch_loads_total and
// memkit_objcache_batch_keys.
var cacheKinds = []struct {
	kind       objcache.EventKind
	name, help string
}{
	{objcache.EventHit, "memkit_objcache_hits_total", "Values served fresh from memcached."},
	{objcache.EventMiss, "memkit_objcache_misses_total", "Lookups that found no usable value."},
	{objcache.EventLoad, "memkit_objcache_loads_total", "Values loaded: loader runs, and keys asked of batch loaders."},
	{objcache.EventLoadError, "memkit_objcache_load_errors_total", "Loads that failed or panicked (a not-found is not one)."},
	{objcache.EventNotFound, "memkit_objcache_not_found_total", "Loads that answered not found, or keys a batch loader did not return."},
	{objcache.EventStaleServed, "memkit_objcache_stale_served_total", "Out-of-date values served (fail-safe ones included)."},
	{objcache.EventFailSafeServed, "memkit_objcache_failsafe_served_total", "Values served past their expiry because their reload failed or timed out."},
	{objcache.EventLeaseWait, "memkit_objcache_lease_waits_total", "Lookups that waited for another caller's load."},
	{objcache.EventDecodeError, "memkit_objcache_decode_errors_total", "Cached values that did not decode (treated as misses)."},
	{objcache.EventCoalesced, "memkit_objcache_coalesced_total", "Lookups that shared another goroutine's lookup."},
	{objcache.EventRefresh, "memkit_objcache_refreshes_total", "Early refreshes run."},
	{objcache.EventNegativeHit, "memkit_objcache_negative_hits_total", "Cached not-found answers served."},
	{objcache.EventError, "memkit_objcache_errors_total", "memcached errors that the loaders worked around."},
	{objcache.EventBackgroundLoad, "memkit_objcache_background_loads_total", "Loads that went on in the background after the load timeout."},
}

// ObserveCache counts one objcache event; part of objcache.Observer.
// Kinds this package does not know are ignored.
func (c *Collector) ObserveCache(_ context.Context, ev objcache.Event) {
	if ev.Kind == objcache.EventBatchLoad {
		c.batchLoads.Inc()
		c.batchKeys.Observe(float64(ev.Count))
		return
	}
	if int(ev.Kind) < numCacheKinds {
		if m := c.cache[ev.Kind]; m != nil {
			m.Add(float64(ev.Count))
		}
	}
}

// numSessionKinds bounds the session.EventKinds this package counts.
const numSessionKinds = int(session.EventRevocation) + 1

// sessionKinds names the counter of each session.EventKind.
var sessionKinds = []struct {
	kind       session.EventKind
	name, help string
}{
	{session.EventLoad, "memkit_session_loads_total", "Session records read (a request's first read of its session, found or not)."},
	{session.EventSave, "memkit_session_saves_total", "Session records written."},
	{session.EventConflict, "memkit_session_conflicts_total", "Saves that lost a compare-and-swap to a concurrent request and merged their changes to try again."},
	{session.EventRevocation, "memkit_session_revocations_total", "Revocations made: one session, a user's other sessions, or all of them."},
	{session.EventRevoked, "memkit_session_revoked_total", "Requests whose session was found revoked and read as empty."},
}

// ObserveSession counts one session event; part of session.Observer.
// Kinds this package does not know are ignored.
func (c *Collector) ObserveSession(_ context.Context, ev session.Event) {
	if int(ev.Kind) >= numSessionKinds {
		return
	}
	c.sessionCounts[ev.Kind].Inc()
	i := -1
	switch ev.Kind {
	case session.EventLoad:
		i = 0
	case session.EventSave:
		i = 1
	}
	if i < 0 {
		return
	}
	if !ev.Start.IsZero() {
		c.sessionDuration[i].Observe(ev.Duration.Seconds())
	}
	if ev.Failed {
		c.sessionFailures[i].Inc()
	}
}
