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
type leases struct {
	client       *memclient.Client
	leaseTTL     time.Duration // the placeholder's lifetime
	staleTTL     time.Duration // how long an invalidated value stays readable
	earlyRefresh time.Duration // the recache window; 0: off
}

var _ coordinator = (*leases)(nil)

func (l *leases) lookup(ctx context.Context, k string, ttl time.Duration) (lookupResult, error) {
	opts := memclient.LeaseOptions{VivifyTTL: l.leaseTTL}
	if ttl > l.earlyRefresh {
		opts.RecacheTTL = l.earlyRefresh
	}
	lease, err := l.client.GetLease(ctx, k, opts)
	if err != nil {
		return lookupResult{}, err
	}
	it := lease.Item
	if it == nil {
		return lookupResult{state: stPending}, nil
	}
	if lease.Placeholder() {
		if lease.Won {
			return lookupResult{state: stWon, won: true, mode: storeLease, cas: it.CAS}, nil
		}
		return lookupResult{state: stPending}, nil
	}
	r := lookupResult{state: stHit, data: it.Value, flags: it.Flags, won: lease.Won, mode: storeRecache, cas: it.CAS}
	if lease.Stale {
		r.state, r.mode = stStale, storeSet
	}
	return r, nil
}

// reclaim marks a value that does not decode stale, once per fetch, so
// that the next lookup (this caller's or another process's) wins the
// right to replace it.
func (l *leases) reclaim(ctx context.Context, k string, st lookupResult, tried bool) (lookupResult, bool) {
	if st.state != stHit || tried {
		return lookupResult{}, false
	}
	return lookupResult{}, l.client.Invalidate(ctx, k, l.leaseTTL) == nil
}

func (l *leases) store(ctx context.Context, it *memclient.Item, mode storeMode) error {
	err := l.client.CompareAndSwap(ctx, it) // over the placeholder or the value won
	if errors.Is(err, memclient.ErrCASConflict) || errors.Is(err, memclient.ErrCacheMiss) {
		// Someone stored, deleted or invalidated the key while we
		// loaded: theirs is newer than what we started from.
		return nil
	}
	if err != nil {
		// The value was not stored (too large, a server error...): a
		// placeholder left behind would make every other caller wait
		// LeaseWait for a value that never comes.
		l.release(context.WithoutCancel(ctx), it.Key, mode)
	}
	return err
}

// release deletes the placeholder this caller won.
func (l *leases) release(ctx context.Context, k string, mode storeMode) {
	if mode == storeLease {
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
