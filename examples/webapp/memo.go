package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memkit/memkit/objcache"
)

// localMemoMax bounds how many results the local memo keeps; when full it
// starts over.
const localMemoMax = 4096

// localMemo is the object cache of the in-memory mode (no -memcached):
// objcache needs memcached, so without one the shop memoizes its queries
// in this small in-process cache instead. It has no stampede protection
// and is not shared between processes. It counts what objcache counts
// (a loader's objcache.ErrNotFound is a not-found, not a load error) and
// tells obs, as objcache tells its Observer. Safe for concurrent use.
type localMemo struct {
	ttl time.Duration
	now func() time.Time // clock seam
	obs objcache.Observer

	mu sync.Mutex // protects m
	m  map[string]localEntry

	hits, misses, loads, loadErrors, notFound atomic.Uint64
}

type localEntry struct {
	v   any
	exp time.Time
}

func newLocalMemo(ttl time.Duration, obs objcache.Observer) *localMemo {
	return &localMemo{ttl: ttl, now: time.Now, obs: obs, m: make(map[string]localEntry)}
}

// count adds n to kind's counter and tells the observer.
func (l *localMemo) count(ctx context.Context, kind objcache.EventKind, n uint64) {
	if n == 0 {
		return
	}
	switch kind {
	case objcache.EventHit:
		l.hits.Add(n)
	case objcache.EventMiss:
		l.misses.Add(n)
	case objcache.EventLoad:
		l.loads.Add(n)
	case objcache.EventLoadError:
		l.loadErrors.Add(n)
	case objcache.EventNotFound:
		l.notFound.Add(n)
	}
	if l.obs != nil {
		l.obs.ObserveCache(ctx, objcache.Event{Kind: kind, Count: n, Time: l.now()})
	}
}

// loaded counts the outcome of a load of n keys.
func (l *localMemo) loaded(ctx context.Context, n uint64, err error) {
	switch {
	case errors.Is(err, objcache.ErrNotFound):
		l.count(ctx, objcache.EventNotFound, n)
	case err != nil:
		l.count(ctx, objcache.EventLoadError, n)
	}
}

func (l *localMemo) get(key string) (any, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[key]
	if !ok || l.now().After(e.exp) {
		delete(l.m, key)
		return nil, false
	}
	return e.v, true
}

func (l *localMemo) put(key string, v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) >= localMemoMax {
		l.m = make(map[string]localEntry)
	}
	l.m[key] = localEntry{v: v, exp: l.now().Add(l.ttl)}
}

// localMemo0 and localMemo1 mirror objcache.Memoize0 and Memoize1.
func localMemo0[R any](l *localMemo, name string, fn func(context.Context) (R, error)) func(context.Context) (R, error) {
	m := localMemo1(l, name, func(ctx context.Context, _ struct{}) (R, error) { return fn(ctx) })
	return func(ctx context.Context) (R, error) { return m(ctx, struct{}{}) }
}

func localMemo1[A any, R any](l *localMemo, name string, fn func(context.Context, A) (R, error)) func(context.Context, A) (R, error) {
	return func(ctx context.Context, a A) (R, error) {
		key := fmt.Sprintf("%s:%v", name, a)
		if v, ok := l.get(key); ok {
			l.count(ctx, objcache.EventHit, 1)
			return v.(R), nil
		}
		l.count(ctx, objcache.EventMiss, 1)
		l.count(ctx, objcache.EventLoad, 1)
		v, err := fn(ctx, a)
		if err != nil {
			l.loaded(ctx, 1, err)
			return v, err
		}
		l.put(key, v)
		return v, nil
	}
}

// localMemoMulti mirrors objcache.MemoizeMulti: the results it has are
// served, fn is called once for the others, and keys fn does not return
// are not remembered.
func localMemoMulti[K comparable, V any](l *localMemo, name string, fn func(context.Context, []K) (map[K]V, error)) func(context.Context, []K) (map[K]V, error) {
	return func(ctx context.Context, keys []K) (map[K]V, error) {
		out := make(map[K]V, len(keys))
		var missing []K
		for _, k := range keys {
			if v, ok := l.get(fmt.Sprintf("%s:%v", name, k)); ok {
				l.count(ctx, objcache.EventHit, 1)
				out[k] = v.(V)
				continue
			}
			if _, dup := out[k]; !dup && !slices.Contains(missing, k) {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 {
			return out, nil
		}
		l.count(ctx, objcache.EventMiss, uint64(len(missing)))
		l.count(ctx, objcache.EventLoad, uint64(len(missing)))
		got, err := fn(ctx, missing)
		if err != nil {
			l.loaded(ctx, uint64(len(missing)), err)
			return out, err
		}
		var absent uint64
		for _, k := range missing {
			v, ok := got[k]
			if !ok {
				absent++
				continue
			}
			l.put(fmt.Sprintf("%s:%v", name, k), v)
			out[k] = v
		}
		l.count(ctx, objcache.EventNotFound, absent) // as objcache counts keys a batch loader did not return
		return out, nil
	}
}

// clear forgets everything.
func (l *localMemo) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m = make(map[string]localEntry)
}
