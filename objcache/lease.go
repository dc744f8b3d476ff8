package objcache

import (
	"context"
	"errors"
	"time"

	"github.com/memkit/memkit/memclient"
)

// leases coordinate loaders on the meta protocol with memcached's own
// leases: a lookup that misses vivifies an empty placeholder (mg with the
// N flag) and exactly one caller in the cluster wins it (W); a value near
// expiry (R) or marked stale by Invalidate hands out one win to refresh
// it. The winner stores its value by compare-and-swap over what it won.
//
// With FailSafe a value outlives its expiry by FailSafe in memcached, so
// the R window is widened by FailSafe: the win it hands out when the
// value's own expiry comes is the right to reload it.
type leases struct {
	client       *memclient.Client
	leaseTTL     time.Duration // the placeholder's lifetime
	staleTTL     time.Duration // how long an invalidated value stays readable
	earlyRefresh time.Duration // the recache window; 0: off
	failSafe     time.Duration // how long values outlive their expiry; 0: off
}

var _ coordinator = (*leases)(nil)

// options are the lease options of a lookup for values of the given ttl.
func (l *leases) options(ttl time.Duration) memclient.LeaseOptions {
	opts := memclient.LeaseOptions{VivifyTTL: l.leaseTTL}
	if l.earlyRefresh > 0 && ttl > l.earlyRefresh {
		opts.RecacheTTL = l.earlyRefresh
	}
	if l.failSafe > 0 && ttl > 0 {
		opts.RecacheTTL += l.failSafe
	}
	return opts
}

func (l *leases) lookupOne(ctx context.Context, k string, ttl time.Duration) lookupResult {
	var lease memclient.Lease
	if err := l.client.GetLeaseInto(ctx, k, l.options(ttl), &lease); err != nil {
		return lookupResult{err: err}
	}
	return fromLease(&lease)
}

func (l *leases) lookup(ctx context.Context, ks []string, ttl time.Duration, extra []string) ([]lookupResult, map[string]*memclient.Item, error) {
	opts := l.options(ttl)
	reqs := make([]memclient.LeaseRequest, 0, len(ks)+len(extra))
	for _, k := range ks {
		reqs = append(reqs, memclient.LeaseRequest{Key: k, LeaseOptions: opts})
	}
	for _, k := range extra {
		reqs = append(reqs, memclient.LeaseRequest{Key: k})
	}
	got, err := l.client.GetLeaseMulti(ctx, reqs)
	var me memclient.MultiError
	if err != nil && !errors.As(err, &me) {
		return nil, nil, err
	}
	res := make([]lookupResult, len(ks))
	for i, k := range ks {
		if e := me[k]; e != nil {
			res[i].err = e
		} else if lease := got[k]; lease != nil {
			res[i] = fromLease(lease)
		} else {
			res[i].state = stPending // vivified keys are never absent; be safe
		}
	}
	var items map[string]*memclient.Item
	if len(extra) > 0 {
		items = make(map[string]*memclient.Item, len(extra))
		for _, k := range extra {
			if lease := got[k]; lease != nil && lease.Item != nil {
				items[k] = lease.Item
			}
		}
	}
	return res, items, nil
}

func fromLease(lease *memclient.Lease) lookupResult {
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
	r := lookupResult{state: stHit, data: it.Value, flags: it.Flags, won: lease.Won, mode: storeRecache,
		cas: it.CAS, ttl: lease.TTL, pending: lease.Pending}
	if lease.Stale {
		r.state, r.mode = stStale, storeSet
	}
	return r
}

// reclaim wins the right to replace k's value for exactly one caller in
// the cluster. A value with a TTL is claimed as for an early refresh (an
// R window wider than its TTL): the item stays as it is, one caller wins
// it, the others see it taken (Pending) and wait. A value without one
// cannot be claimed so: it is marked stale, so that the next lookup (this
// caller's or another process's) wins it; keep leaves its TTL alone (it
// is a fallback), otherwise it lives LeaseTTL more.
func (l *leases) reclaim(ctx context.Context, k string, st lookupResult, keep bool) (lookupResult, bool) {
	if st.state != stHit {
		return lookupResult{}, false
	}
	if st.ttl > 0 {
		return l.claim(ctx, k, st)
	}
	ttl := l.leaseTTL
	if keep {
		ttl = 0
	}
	return lookupResult{}, l.client.Invalidate(ctx, k, ttl) == nil
}

// claim asks for the right to refresh k's value now, whatever its
// remaining TTL: an R window wider than that TTL wins it unless another
// caller already has it. When the value is not the one st saw (another
// caller replaced it meanwhile), nothing is won and retry asks for a new
// lookup.
func (l *leases) claim(ctx context.Context, k string, st lookupResult) (won lookupResult, retry bool) {
	if st.ttl <= 0 {
		return lookupResult{}, false
	}
	lease, err := l.client.GetLease(ctx, k, memclient.LeaseOptions{RecacheTTL: st.ttl + 2*time.Second})
	switch {
	case err != nil:
		return lookupResult{}, errors.Is(err, memclient.ErrCacheMiss)
	case lease.Item == nil || lease.Item.CAS != st.cas:
		return lookupResult{}, true
	case !lease.Won:
		return lookupResult{}, false
	}
	return fromLease(lease), false
}

func (l *leases) store(ctx context.Context, it *memclient.Item, mode storeMode, _ time.Duration) error {
	err := l.client.CompareAndSwap(ctx, it) // over the placeholder or the value won
	if errors.Is(err, memclient.ErrServerUnavailable) {
		// The key's server is down: the lease came from the client's
		// gutter, where CompareAndSwap never goes (memclient.Config.Gutter).
		// Fill it with a set, which the gutter takes, its TTL clamped.
		err = l.client.Set(ctx, it)
	}
	if errors.Is(err, memclient.ErrCASConflict) || errors.Is(err, memclient.ErrCacheMiss) {
		// Someone stored, deleted or invalidated the key while we
		// loaded: theirs is newer than what we started from.
		return nil
	}
	if err != nil {
		// The value was not stored (too large, a server error...): a
		// placeholder left behind would make every other caller wait
		// LeaseWait for a value that never comes.
		l.release(context.WithoutCancel(ctx), it.Key, mode, false)
	}
	return err
}

// release deletes the placeholder this caller won, or with drop the
// expired value whose reload failed, so that the next caller vivifies
// the key and loads instead of waiting.
func (l *leases) release(ctx context.Context, k string, mode storeMode, drop bool) {
	if mode == storeLease || drop {
		_ = l.client.Delete(ctx, k)
	}
}

// invalidate marks k stale for staleTTL: it keeps being served, flagged
// stale, while one caller reloads it.
func (l *leases) invalidate(ctx context.Context, k string) error {
	err := l.client.Invalidate(ctx, k, l.staleTTL)
	if errors.Is(err, memclient.ErrCacheMiss) {
		return nil
	}
	return err
}
