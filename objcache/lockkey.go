package objcache

import (
	"context"
	"errors"
	"time"

	"github.com/memkit/memkit/memclient"
)

// lockKeys coordinate loaders on the text protocol, which has no leases:
// the caller whose Add of "<key>:lock" succeeds loads, and releases the
// lock by deleting it once it stored the value (or gave up); the lock
// expires after leaseTTL if its holder dies. With EarlyRefresh a companion
// key "<key>:fresh", expiring when the refresh window opens, tells whether
// a value is due for a refresh.
type lockKeys struct {
	client       *memclient.Client
	leaseTTL     time.Duration // the lock's lifetime
	earlyRefresh time.Duration // the refresh window; 0: off
}

var _ coordinator = (*lockKeys)(nil)

// lockKey is the lock for full key k.
func lockKey(k string) string { return fitKey(k + ":lock") }

// freshKey marks, with EarlyRefresh, that k's value is not yet in its
// refresh window.
func freshKey(k string) string { return fitKey(k + ":fresh") }

func (l *lockKeys) lookup(ctx context.Context, k string, ttl time.Duration) (lookupResult, error) {
	it, fresh, err := l.get(ctx, k, ttl)
	if err != nil {
		return lookupResult{}, err
	}
	if it != nil && fresh {
		return lookupResult{state: stHit, data: it.Value, flags: it.Flags, cas: it.CAS}, nil
	}
	won, err := l.lock(ctx, k)
	if err != nil {
		return lookupResult{}, err
	}
	if won {
		// Read again under the lock: the previous holder may have stored
		// the value and released the lock between our read and our lock.
		it2, fresh2, err := l.get(ctx, k, ttl)
		if err != nil {
			l.unlock(ctx, k)
			return lookupResult{}, err
		}
		if it2 != nil && fresh2 {
			l.unlock(ctx, k)
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

// get reads k and, with EarlyRefresh, whether it is still fresh (out of
// the refresh window); it is nil on a miss.
func (l *lockKeys) get(ctx context.Context, k string, ttl time.Duration) (it *memclient.Item, fresh bool, err error) {
	if w := l.earlyRefresh; w > 0 && ttl > w {
		fk := freshKey(k)
		items, err := l.client.GetMulti(ctx, []string{k, fk})
		if err != nil {
			return nil, false, err
		}
		return items[k], items[fk] != nil, nil
	}
	it, err = l.client.Get(ctx, k)
	if errors.Is(err, memclient.ErrCacheMiss) {
		return nil, true, nil
	}
	return it, true, err
}

// reclaim takes the lock to replace a value that does not decode.
func (l *lockKeys) reclaim(ctx context.Context, k string, st lookupResult, tried bool) (lookupResult, bool) {
	if won, err := l.lock(ctx, k); err == nil && won {
		return lookupResult{state: stWon, won: true, mode: storeLocked, cas: st.cas}, false
	}
	return lookupResult{}, false
}

// lock takes the lock for k: an Add that only one caller in the cluster
// wins, expiring after leaseTTL if its holder dies.
func (l *lockKeys) lock(ctx context.Context, k string) (bool, error) {
	err := l.client.Add(ctx, &memclient.Item{Key: lockKey(k), Value: []byte("1"), TTL: l.leaseTTL})
	if err == nil {
		return true, nil
	}
	if errors.Is(err, memclient.ErrNotStored) {
		return false, nil
	}
	return false, err
}

func (l *lockKeys) unlock(ctx context.Context, k string) {
	_ = l.client.Delete(context.WithoutCancel(ctx), lockKey(k))
}

// store writes the value by compare-and-swap over the value read (Add if
// there was none), marks it fresh for EarlyRefresh, and releases the lock.
func (l *lockKeys) store(ctx context.Context, it *memclient.Item, mode storeMode) error {
	defer l.unlock(ctx, it.Key)
	var err error
	if it.CAS != 0 {
		err = l.client.CompareAndSwap(ctx, it)
	} else {
		err = l.client.Add(ctx, it)
	}
	switch {
	case errors.Is(err, memclient.ErrCASConflict), errors.Is(err, memclient.ErrCacheMiss), errors.Is(err, memclient.ErrNotStored):
		return nil // somebody wrote or deleted it while we loaded: theirs wins
	case err != nil:
		return err
	}
	if w := l.earlyRefresh; w > 0 && it.TTL > w && !isNegative(it.Value, it.Flags) {
		return l.client.Set(ctx, &memclient.Item{Key: freshKey(it.Key), Value: []byte("1"), TTL: it.TTL - w})
	}
	return nil
}

func (l *lockKeys) release(ctx context.Context, k string, mode storeMode) {
	if mode == storeLocked {
		l.unlock(ctx, k)
	}
}

// invalidate deletes k: the text protocol has no stale items.
func (l *lockKeys) invalidate(ctx context.Context, k string) error {
	err := l.client.Delete(ctx, k)
	if errors.Is(err, memclient.ErrCacheMiss) {
		return nil
	}
	return err
}
