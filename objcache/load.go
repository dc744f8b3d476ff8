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
// with Invalidate is served (as stale) while one caller reloads it.
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
				v = refresh(ctx, c, k, l, out.refresh, v)
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

// refresh runs an early refresh won by the caller; on failure the current
// value stays in service.
func refresh[T any](ctx context.Context, c *Cache, k string, l *loader, r *refreshLease, cur T) T {
	c.sh.stats.refreshes.Add(1)
	out, err := c.load(ctx, k, l, r.mode, r.cas)
	if err != nil {
		return cur
	}
	if v, ok := out.val.(T); ok {
		return v
	}
	return cur
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
	refresh *refreshLease // leader only: it won an early refresh
}

type refreshLease struct {
	mode storeMode
	cas  uint64
}

// storeMode says how a loaded value is written back.
type storeMode uint8

const (
	storeNone    storeMode = iota // memcached is failing: do not write
	storeSet                      // unconditional Set
	storeLease                    // CAS over the placeholder we won; delete it if the load fails
	storeRecache                  // CAS over the value we won the right to refresh
	storeLocked                   // text protocol: CAS over the value read (Add if none), then release the lock key
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

// fetch looks k up and, as needed, waits for another loader or loads.
func (c *Cache) fetch(ctx context.Context, k string, l *loader) (outcome, error) {
	var waitStart time.Time
	backoff := pollMin
	invalidated := false
	for {
		st, err := c.lookup(ctx, k, l.ttl)
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
					if st.won {
						c.sh.stats.misses.Add(1)
						return c.load(ctx, k, l, st.mode, st.cas)
					}
					c.sh.stats.staleServed.Add(1)
					return outcome{data: st.data, flags: st.flags, src: srcStale, val: v}, nil
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
			if c.sh.text.Load() {
				won, err := c.lock(ctx, k)
				if err == nil && won {
					c.sh.stats.misses.Add(1)
					return c.load(ctx, k, l, storeLocked, st.cas)
				}
			} else if st.state == stHit && !invalidated {
				// Mark it stale: the next lookup (ours or another
				// process's) wins the right to replace it, once.
				invalidated = true
				if err := c.client.Invalidate(ctx, k, c.opts.LeaseTTL); err == nil {
					continue
				}
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

// lookup reads k with a lease (meta protocol) or a lock (text protocol).
func (c *Cache) lookup(ctx context.Context, k string, ttl time.Duration) (lookupResult, error) {
	if !c.sh.text.Load() {
		opts := memclient.LeaseOptions{VivifyTTL: c.opts.LeaseTTL}
		if ttl > c.opts.EarlyRefresh {
			opts.RecacheTTL = c.opts.EarlyRefresh
		}
		lease, err := c.client.GetLease(ctx, k, opts)
		switch {
		case err == nil:
			return metaResult(lease), nil
		case errors.Is(err, memclient.ErrNotSupported):
			c.sh.text.Store(true)
		default:
			return lookupResult{}, err
		}
	}
	return c.textLookup(ctx, k, ttl)
}

func metaResult(lease *memclient.Lease) lookupResult {
	it := lease.Item
	if it == nil {
		return lookupResult{state: stPending}
	}
	if lease.Placeholder() {
		if lease.Won {
			return lookupResult{state: stWon, won: true, mode: storeLease, cas: it.CAS}
		}
		return lookupResult{state: stPending}
	}
	r := lookupResult{state: stHit, data: it.Value, flags: it.Flags, won: lease.Won, mode: storeRecache, cas: it.CAS}
	if lease.Stale {
		r.state, r.mode = stStale, storeSet
	}
	return r
}

func (c *Cache) textLookup(ctx context.Context, k string, ttl time.Duration) (lookupResult, error) {
	it, fresh, err := c.textGet(ctx, k, ttl)
	if err != nil {
		return lookupResult{}, err
	}
	if it != nil && fresh {
		return lookupResult{state: stHit, data: it.Value, flags: it.Flags, cas: it.CAS}, nil
	}
	won, err := c.lock(ctx, k)
	if err != nil {
		return lookupResult{}, err
	}
	if won {
		// Read again under the lock: the previous holder may have stored
		// the value and released the lock between our read and our lock.
		it2, fresh2, err := c.textGet(ctx, k, ttl)
		if err != nil {
			c.unlock(ctx, k)
			return lookupResult{}, err
		}
		if it2 != nil && fresh2 {
			c.unlock(ctx, k)
			return lookupResult{state: stHit, data: it2.Value, flags: it2.Flags, cas: it2.CAS}, nil
		}
		it = it2
	}
	if it != nil { // in the early-refresh window
		return lookupResult{state: stHit, data: it.Value, flags: it.Flags, won: won, mode: storeLocked, cas: it.CAS}, nil
	}
	if won {
		return lookupResult{state: stWon, won: true, mode: storeLocked}, nil
	}
	return lookupResult{state: stPending}, nil
}

// textGet reads k and, with EarlyRefresh, whether it is still fresh (out
// of the refresh window); it is nil on a miss.
func (c *Cache) textGet(ctx context.Context, k string, ttl time.Duration) (it *memclient.Item, fresh bool, err error) {
	if w := c.opts.EarlyRefresh; w > 0 && ttl > w {
		fk := freshKey(k)
		items, err := c.client.GetMulti(ctx, []string{k, fk})
		if err != nil {
			return nil, false, err
		}
		return items[k], items[fk] != nil, nil
	}
	it, err = c.client.Get(ctx, k)
	if errors.Is(err, memclient.ErrCacheMiss) {
		return nil, true, nil
	}
	return it, true, err
}

// lock takes the text-protocol lock for k: an Add that only one caller in
// the cluster wins, expiring after LeaseTTL if its holder dies.
func (c *Cache) lock(ctx context.Context, k string) (bool, error) {
	err := c.client.Add(ctx, &memclient.Item{Key: lockKey(k), Value: []byte("1"), TTL: c.opts.LeaseTTL})
	if err == nil {
		return true, nil
	}
	if errors.Is(err, memclient.ErrNotStored) {
		return false, nil
	}
	return false, err
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
	case storeLease, storeRecache:
		it.CAS = cas
		err = c.client.CompareAndSwap(ctx, it)
		if errors.Is(err, memclient.ErrCASConflict) || errors.Is(err, memclient.ErrCacheMiss) {
			// Someone stored, deleted or invalidated the key while we
			// loaded: theirs is newer than what we started from.
			err = nil
		}
	case storeLocked:
		if cas != 0 {
			it.CAS = cas
			err = c.client.CompareAndSwap(ctx, it)
		} else {
			err = c.client.Add(ctx, it)
		}
		switch {
		case errors.Is(err, memclient.ErrCASConflict), errors.Is(err, memclient.ErrCacheMiss), errors.Is(err, memclient.ErrNotStored):
			err = nil // somebody wrote or deleted it while we loaded: theirs wins
		case err == nil:
			if w := c.opts.EarlyRefresh; w > 0 && ttl > w && !isNegative(data, flags) {
				err = c.client.Set(ctx, &memclient.Item{Key: freshKey(k), Value: []byte("1"), TTL: ttl - w})
			}
		}
		c.unlock(ctx, k)
	}
	if err != nil {
		c.sh.stats.errors.Add(1)
	}
}

// abandon releases a lease after a failed load, so waiters elsewhere take
// over at once instead of after LeaseTTL.
func (c *Cache) abandon(ctx context.Context, k string, mode storeMode) {
	ctx = context.WithoutCancel(ctx)
	switch mode {
	case storeLease:
		_ = c.client.Delete(ctx, k) // the placeholder
	case storeLocked:
		c.unlock(ctx, k)
	}
}

func (c *Cache) unlock(ctx context.Context, k string) {
	_ = c.client.Delete(context.WithoutCancel(ctx), lockKey(k))
}
