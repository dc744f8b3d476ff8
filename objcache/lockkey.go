package objcache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/memkit/memkit/memclient"
)

// lockKeys coordinate loaders on the text protocol, which has no leases:
// the caller whose Add of "<key>:lock" succeeds loads, and releases the
// lock by deleting it once it stored the value (or gave up); the lock
// expires after leaseTTL if its holder dies. With EarlyRefresh a companion
// key "<key>:fresh", expiring when the refresh window opens, tells whether
// a value is due for a refresh. Values past their expiry (FailSafe) are
// told by their header; the reader that finds one takes the lock.
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

func (l *lockKeys) lookupOne(ctx context.Context, k string, ttl time.Duration) lookupResult {
	res, _, err := l.lookup(ctx, []string{k}, ttl, nil)
	if err != nil {
		return lookupResult{err: err}
	}
	return res[0]
}

func (l *lockKeys) lookup(ctx context.Context, ks []string, ttl time.Duration, extra []string) ([]lookupResult, map[string]*memclient.Item, error) {
	withFresh := l.earlyRefresh > 0 && ttl > l.earlyRefresh
	items, errs, err := l.get(ctx, ks, withFresh, extra)
	if err != nil {
		return nil, nil, err
	}
	res := make([]lookupResult, len(ks))
	var needLock []int
	for i, k := range ks {
		if e := errs[k]; e != nil {
			res[i].err = e
			continue
		}
		it := items[k]
		if it != nil && (!withFresh || items[freshKey(k)] != nil || notFound(it)) {
			res[i] = lookupResult{state: stHit, data: it.Value, flags: it.Flags, cas: it.CAS}
			continue
		}
		needLock = append(needLock, i)
	}
	if len(needLock) == 0 {
		return res, items, nil
	}
	// Missing, or in the early-refresh window: take the locks.
	won := make([]bool, len(needLock))
	var (
		mu      sync.Mutex // protects lockErr
		lockErr = make(map[int]error)
	)
	parallel(len(needLock), func(n int) {
		w, err := l.lock(ctx, ks[needLock[n]])
		won[n] = w
		if err != nil {
			mu.Lock()
			lockErr[needLock[n]] = err
			mu.Unlock()
		}
	})
	// Read again under the locks won: the previous holder may have
	// stored the value and released the lock between our read and our
	// lock.
	var again []string
	for n, i := range needLock {
		if won[n] {
			again = append(again, ks[i])
		}
	}
	var items2 map[string]*memclient.Item
	var errs2 memclient.MultiError
	if len(again) > 0 {
		items2, errs2, err = l.get(ctx, again, withFresh, nil)
		if err != nil {
			for _, k := range again {
				l.unlock(ctx, k)
			}
			return nil, nil, err
		}
	}
	for n, i := range needLock {
		k := ks[i]
		if e := lockErr[i]; e != nil {
			res[i].err = e
			continue
		}
		it := items[k]
		if won[n] {
			if e := errs2[k]; e != nil {
				l.unlock(ctx, k)
				res[i].err = e
				continue
			}
			it = items2[k]
			if it != nil && (!withFresh || items2[freshKey(k)] != nil) {
				l.unlock(ctx, k)
				res[i] = lookupResult{state: stHit, data: it.Value, flags: it.Flags, cas: it.CAS}
				continue
			}
		}
		switch {
		case it != nil: // in the early-refresh window
			res[i] = lookupResult{state: stHit, data: it.Value, flags: it.Flags, won: won[n], mode: storeLocked, cas: it.CAS, pending: !won[n]}
		case won[n]:
			res[i] = lookupResult{state: stWon, won: true, mode: storeLocked}
		default:
			res[i] = lookupResult{state: stPending}
		}
	}
	return res, items, nil
}

// notFound reports whether it is a cached "not found", which is never
// refreshed early: it has no fresh key, and needs no lock.
func notFound(it *memclient.Item) bool {
	s, k := parseStored(it.Value, it.Flags)
	return k == itemValue && s.kind == kindNotFound
}

// get reads ks, with EarlyRefresh their fresh keys, and extra, in one
// round trip. errs names the keys of ks that failed; a failed fresh key
// reads as missing (the value is then refreshed early, no harm).
func (l *lockKeys) get(ctx context.Context, ks []string, withFresh bool, extra []string) (map[string]*memclient.Item, memclient.MultiError, error) {
	if len(ks) == 1 && !withFresh && len(extra) == 0 {
		it, err := l.client.Get(ctx, ks[0])
		switch {
		case err == nil:
			return map[string]*memclient.Item{ks[0]: it}, nil, nil
		case errors.Is(err, memclient.ErrCacheMiss):
			return nil, nil, nil
		default:
			return nil, memclient.MultiError{ks[0]: err}, nil
		}
	}
	keys := make([]string, 0, 2*len(ks)+len(extra))
	keys = append(keys, ks...)
	if withFresh {
		for _, k := range ks {
			keys = append(keys, freshKey(k))
		}
	}
	keys = append(keys, extra...)
	items, err := l.client.GetMulti(ctx, keys)
	var me memclient.MultiError
	if err != nil && !errors.As(err, &me) {
		return nil, nil, err
	}
	return items, me, nil
}

// reclaim takes the lock to replace a value that this caller did not win
// (one that does not decode, expired or was invalidated by a tag). It
// reads the value again under the lock: when it changed, another caller
// replaced it meanwhile, and the lookup is to be done again.
func (l *lockKeys) reclaim(ctx context.Context, k string, st lookupResult, _ bool) (lookupResult, bool) {
	won, err := l.lock(ctx, k)
	if err != nil || !won {
		return lookupResult{}, false
	}
	it, err := l.client.Get(ctx, k)
	if err != nil || it.CAS != st.cas {
		l.unlock(ctx, k)
		return lookupResult{}, err == nil || errors.Is(err, memclient.ErrCacheMiss)
	}
	st.won, st.mode, st.pending = true, storeLocked, false
	return st, false
}

// claim takes the lock to refresh k's value early.
func (l *lockKeys) claim(ctx context.Context, k string, st lookupResult) (lookupResult, bool) {
	return l.reclaim(ctx, k, st, true)
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
// there was none), marks it fresh for EarlyRefresh (fresh is how long
// until its refresh window closes: its logical TTL; 0 for none), and
// releases the lock.
func (l *lockKeys) store(ctx context.Context, it *memclient.Item, mode storeMode, fresh time.Duration) error {
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
	if w := l.earlyRefresh; w > 0 && fresh > w {
		return l.client.Set(ctx, &memclient.Item{Key: freshKey(it.Key), Value: []byte("1"), TTL: fresh - w})
	}
	return nil
}

func (l *lockKeys) release(ctx context.Context, k string, mode storeMode, _ bool) {
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
