package objcache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/memkit/memkit/memclient"
)

// Polling bounds while waiting for another caller's load.
const (
	pollMin = 2 * time.Millisecond
	pollMax = 50 * time.Millisecond
)

// GetOrLoad returns the value cached under key, decoded into a T, or runs
// load, caches its result for ttl (0 means Options.TTL) and returns it.
//
// Across all goroutines of this process one lookup and at most one load
// run per key at a time (a singleflight; a caller whose ctx ends stops
// waiting, and if load panics the panic propagates in the goroutine that
// ran it while the others get ErrLoaderPanicked). Across processes sharing
// the cluster one caller wins the lease and loads; the others poll with
// backoff for up to Options.LeaseWait (bounded by their ctx) and then load
// themselves. With Options.EarlyRefresh, a value about to expire is
// reloaded by one caller while the others keep getting it. A value marked
// with Invalidate is served (as stale) while one caller reloads it: every
// other caller, in this process as in the others, gets it at once.
//
// A loader error is returned and not cached, except ErrNotFound when
// Options.NegativeTTL is set: later calls then return ErrNotFound without
// running load until that TTL passes. When memcached fails, GetOrLoad
// runs load and returns its result (counting Stats.Errors); it returns a
// memcached error only for a malformed key.
func GetOrLoad[T any](ctx context.Context, c *Cache, key string, ttl time.Duration, load func(ctx context.Context) (T, error)) (T, error) {
	return getOrLoad(ctx, c, key, ttl, func(ctx context.Context) (T, time.Duration, error) {
		v, err := load(ctx)
		return v, 0, err
	})
}

// GetOrLoadTTL is GetOrLoad for loaders that choose the TTL of each value
// they load (an HTTP max-age, a token's expiry): load returns it with the
// value, 0 meaning Options.TTL and NoExpiration never expire.
func GetOrLoadTTL[T any](ctx context.Context, c *Cache, key string, load func(ctx context.Context) (T, time.Duration, error)) (T, error) {
	return getOrLoad(ctx, c, key, 0, load)
}

func getOrLoad[T any](ctx context.Context, c *Cache, key string, ttl time.Duration, load func(ctx context.Context) (T, time.Duration, error)) (T, error) {
	var zero T
	k, err := c.Key(ctx, key)
	if err != nil {
		if errors.Is(err, memclient.ErrMalformedKey) || ctxEnded(ctx, err) {
			return zero, err
		}
		c.sh.stats.errors.Add(1) // namespace generation unreadable: no cache
		return loadDirect(ctx, c, load)
	}
	l := &loader{
		ttl: c.ttl(ttl),
		dec: func(data []byte, flags uint32) (any, bool) { return decode[T](c, data, flags) },
		load: func(ctx context.Context) (any, time.Duration, error) {
			return load(ctx)
		},
	}
	for attempt := 0; ; attempt++ {
		out, err, leader := c.sh.flight.do(ctx, k, func() (outcome, error) { return c.fetch(ctx, k, l) })
		if leader {
			if err != nil {
				return zero, err
			}
			v, _ := out.val.(T)
			if out.refresh != nil {
				return refresh(ctx, c, k, l, out.refresh, v)
			}
			return v, nil
		}
		c.sh.stats.coalesced.Add(1)
		if err != nil {
			if ctx.Err() == nil && attempt < 3 && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				continue // the leader's ctx ended, not ours: try again
			}
			return zero, err
		}
		switch out.src {
		case srcCache:
			c.sh.stats.hits.Add(1)
		case srcStale:
			c.sh.stats.staleServed.Add(1)
		}
		// Decode our own copy: waiters never share a value with the
		// leader, and may ask for another type.
		if v, ok := decode[T](c, out.data, out.flags); ok {
			return v, nil
		}
		return loadDirect(ctx, c, load)
	}
}

// loadDirect runs load without the cache.
func loadDirect[T any](ctx context.Context, c *Cache, load func(context.Context) (T, time.Duration, error)) (T, error) {
	c.sh.stats.loads.Add(1)
	ok := false
	defer func() {
		if !ok {
			c.sh.stats.loadErrors.Add(1)
		}
	}()
	v, _, err := load(ctx)
	ok = true
	if err != nil {
		c.sh.stats.loadErrors.Add(1)
	}
	return v, err
}

// refresh runs, after the flight, a reload won by the caller: an early
// refresh, whose failure keeps the current value in service and returns
// it, or the reload of an invalidated value, whose failure is returned.
func refresh[T any](ctx context.Context, c *Cache, k string, l *loader, r *refreshLease, cur T) (T, error) {
	if !r.stale {
		c.sh.stats.refreshes.Add(1)
	}
	out, err := c.load(ctx, k, l, r.mode, r.cas)
	if err != nil {
		if r.stale {
			var zero T
			return zero, err
		}
		return cur, nil
	}
	if v, ok := out.val.(T); ok {
		return v, nil
	}
	return cur, nil
}

// loader is the untyped face of a GetOrLoad call.
type loader struct {
	ttl  time.Duration // resolved: 0 never expires
	dec  func(data []byte, flags uint32) (any, bool)
	load func(ctx context.Context) (any, time.Duration, error) // ttl as a per-call ttl
}

// source says where an outcome's value came from.
type source uint8

const (
	srcCache  source = iota // a fresh cached value
	srcStale                // an invalidated value, served while another caller reloads
	srcLoaded               // the loader's result
)

// outcome is the shared result of one fetch.
type outcome struct {
	data    []byte // encoded value, for waiters to decode
	flags   uint32
	src     source
	val     any           // the value decoded or loaded by the leader
	refresh *refreshLease // leader only: it won the reload of the value served
}

// refreshLease is the right to reload a value that is served meanwhile.
type refreshLease struct {
	mode  storeMode
	cas   uint64
	stale bool // the value was invalidated, not early-refreshed
}

// storeMode says how a loaded value is written back.
type storeMode uint8

const (
	storeNone    storeMode = iota // memcached is failing: do not write
	storeSet                      // unconditional Set
	storeLease                    // leases: CAS over the placeholder won; delete it if the load fails
	storeRecache                  // leases: CAS over the value won the right to refresh
	storeLocked                   // lockKeys: CAS over the value read (Add if none), then release the lock key
)

type state uint8

const (
	stHit     state = iota // a value (maybe with the right to refresh it)
	stStale                // an invalidated value (maybe with the right to reload it)
	stWon                  // no value; this caller holds the lease and must load
	stPending              // no value; another caller is loading
)

type lookupResult struct {
	state state
	data  []byte
	flags uint32
	won   bool      // this caller must (re)load
	mode  storeMode // how to store what it loads
	cas   uint64
}

// coordinator is how the loaders of one key take turns across every
// process sharing the cluster. New picks one from the client's protocol:
// memcached leases on the meta protocol (leases, lease.go), lock keys on
// the text protocol (lockKeys, lockkey.go).
type coordinator interface {
	// lookup reads full key k and, when it holds no fresh value, tries to
	// win the right to (re)load it; ttl is the TTL the loaded value will
	// get.
	lookup(ctx context.Context, k string, ttl time.Duration) (lookupResult, error)
	// reclaim is called when k holds a value that does not decode and
	// this caller did not win it (st is what lookup returned; tried says
	// reclaim already ran in this fetch). It returns a won result when
	// this caller may now replace the value, or retry when the next
	// lookup should win it.
	reclaim(ctx context.Context, k string, st lookupResult, tried bool) (won lookupResult, retry bool)
	// store writes a value loaded under what lookup or reclaim won: it.CAS
	// is the result's cas, mode its mode.
	store(ctx context.Context, it *memclient.Item, mode storeMode) error
	// release gives up what was won after a failed load.
	release(ctx context.Context, k string, mode storeMode)
	// invalidate marks k's value stale, or deletes it where values
	// cannot be stale.
	invalidate(ctx context.Context, k string) error
}

// fetch looks k up and, as needed, waits for another loader or loads.
func (c *Cache) fetch(ctx context.Context, k string, l *loader) (outcome, error) {
	var waitStart time.Time
	backoff := pollMin
	reclaimed := false // reclaim ran for a value that does not decode
	for {
		st, err := c.co.lookup(ctx, k, l.ttl)
		if err != nil {
			if ctxEnded(ctx, err) {
				return outcome{}, err
			}
			c.sh.stats.errors.Add(1)
			c.sh.stats.misses.Add(1)
			return c.load(ctx, k, l, storeNone, 0)
		}
		switch st.state {
		case stHit, stStale:
			if isNegative(st.data, st.flags) {
				if st.won {
					c.sh.stats.misses.Add(1)
					return c.load(ctx, k, l, st.mode, st.cas)
				}
				c.sh.stats.negativeHits.Add(1)
				return outcome{}, ErrNotFound
			}
			if v, ok := l.dec(st.data, st.flags); ok {
				if st.state == stStale {
					out := outcome{data: st.data, flags: st.flags, src: srcStale, val: v}
					if st.won {
						// Reload after the flight, as an early refresh:
						// the goroutines sharing this lookup get the
						// stale value at once, like every other process.
						c.sh.stats.misses.Add(1)
						out.refresh = &refreshLease{mode: st.mode, cas: st.cas, stale: true}
						return out, nil
					}
					c.sh.stats.staleServed.Add(1)
					return out, nil
				}
				c.sh.stats.hits.Add(1)
				out := outcome{data: st.data, flags: st.flags, src: srcCache, val: v}
				if st.won {
					out.refresh = &refreshLease{mode: st.mode, cas: st.cas}
				}
				return out, nil
			}
			// The value does not decode: a miss.
			if st.won {
				c.sh.stats.misses.Add(1)
				return c.load(ctx, k, l, st.mode, st.cas)
			}
			won, retry := c.co.reclaim(ctx, k, st, reclaimed)
			reclaimed = true
			if won.won {
				c.sh.stats.misses.Add(1)
				return c.load(ctx, k, l, won.mode, won.cas)
			}
			if retry {
				continue
			}
		case stWon:
			c.sh.stats.misses.Add(1)
			return c.load(ctx, k, l, st.mode, st.cas)
		case stPending:
		}
		// Another caller is loading: wait for it, a bounded time.
		now := c.sh.now()
		if waitStart.IsZero() {
			waitStart = now
			c.sh.stats.leaseWaits.Add(1)
		}
		if now.Sub(waitStart) >= c.opts.LeaseWait {
			c.sh.stats.misses.Add(1)
			return c.load(ctx, k, l, storeSet, 0)
		}
		if err := c.sh.sleep(ctx, backoff); err != nil {
			return outcome{}, err
		}
		backoff = min(2*backoff, pollMax)
	}
}

// ctxEnded reports whether err comes from the end of ctx rather than from
// memcached: ctx is done, or err is a deadline error and ctx's deadline
// has passed (a timer at that deadline may fire a moment before ctx.Err
// is set).
func ctxEnded(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// load runs the loader and stores its result as mode says.
func (c *Cache) load(ctx context.Context, k string, l *loader, mode storeMode, cas uint64) (outcome, error) {
	c.sh.stats.loads.Add(1)
	finished := false
	defer func() {
		if !finished { // the loader panicked
			c.sh.stats.loadErrors.Add(1)
			c.abandon(ctx, k, mode)
		}
	}()
	v, ttl, err := l.load(ctx)
	finished = true
	if err != nil {
		c.sh.stats.loadErrors.Add(1)
		if errors.Is(err, ErrNotFound) && c.opts.NegativeTTL > 0 && mode != storeNone {
			c.store(ctx, k, negativeValue, 0, c.opts.NegativeTTL, mode, cas)
		} else {
			c.abandon(ctx, k, mode)
		}
		return outcome{}, err
	}
	data, flags, err := c.ser.Marshal(v)
	if err != nil {
		c.abandon(ctx, k, mode)
		return outcome{}, fmt.Errorf("objcache: encoding loaded value: %w", err)
	}
	if ttl != 0 {
		ttl = c.ttl(ttl)
	} else {
		ttl = l.ttl
	}
	c.store(ctx, k, data, flags, ttl, mode, cas)
	return outcome{data: data, flags: flags, src: srcLoaded, val: v}, nil
}

// store writes a loaded value back; failures are counted, not returned:
// the caller has its value either way.
func (c *Cache) store(ctx context.Context, k string, data []byte, flags uint32, ttl time.Duration, mode storeMode, cas uint64) {
	it := &memclient.Item{Key: k, Value: data, Flags: flags, TTL: ttl}
	var err error
	switch mode {
	case storeNone:
		return
	case storeSet:
		err = c.client.Set(ctx, it)
	default: // a lease or a lock won from the coordinator
		it.CAS = cas
		err = c.co.store(ctx, it, mode)
	}
	if err != nil {
		c.sh.stats.errors.Add(1)
	}
}

// abandon releases a lease or lock after a failed load, so that waiters
// elsewhere take over at once instead of after LeaseTTL.
func (c *Cache) abandon(ctx context.Context, k string, mode storeMode) {
	c.co.release(context.WithoutCancel(ctx), k, mode)
}
