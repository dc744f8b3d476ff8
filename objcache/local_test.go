package objcache_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// mapLocal is a LocalCache that keeps everything it is offered, for its
// own TTL at most, on a clock of the test's: the core's side of the local
// tier (lookups, admission, invalidation) tested without a cache library.
// adapters/otterlocal tests the real one, hot-key admission included.
type mapLocal struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex // protects m
	m  map[string]mapEntry

	sets, deletes atomic.Int32
	lastTTL       atomic.Int64
	// beforeSet, when set, runs in Set before the value is kept, outside
	// the lock: a write racing with the read that offers it.
	beforeSet func(key string)
}

type mapEntry struct {
	v     objcache.LocalValue
	until time.Time
}

var _ objcache.LocalCache = (*mapLocal)(nil)

func newMapLocal(ttl time.Duration, now func() time.Time) *mapLocal {
	return &mapLocal{ttl: ttl, now: now, m: make(map[string]mapEntry)}
}

func (l *mapLocal) Get(key string) (objcache.LocalValue, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.m[key]
	if !ok || !l.now().Before(e.until) {
		return objcache.LocalValue{}, false
	}
	return e.v, true
}

func (l *mapLocal) Set(key string, v objcache.LocalValue, ttl time.Duration) {
	l.sets.Add(1)
	l.lastTTL.Store(int64(ttl))
	if f := l.beforeSet; f != nil {
		f(key)
	}
	if ttl <= 0 || ttl > l.ttl {
		ttl = l.ttl
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[key] = mapEntry{v: v, until: l.now().Add(ttl)}
}

func (l *mapLocal) Delete(key string) {
	l.deletes.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}

func (l *mapLocal) has(key string) bool {
	_, ok := l.Get(key)
	return ok
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// localCache returns a cache with a mapLocal tier of ttl on clock, and a
// raw client of the same server playing another process.
func localCache(t *testing.T, srv *memcachetest.Server, ttl time.Duration, opts objcache.Options) (*objcache.Cache, *mapLocal, *memclient.Client, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Now()}
	local := newMapLocal(ttl, clock.now)
	opts.Local = local
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, opts)
	objcache.SetClock(c, clock.now, nil)
	return c, local, newClient(t, srv.Addr, memclient.ProtocolMeta), clock
}

// A value read once is served by the local tier, without memcached, until
// the tier's TTL: another process's change is seen then, not before.
func TestLocalServesUntilItsTTL(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, local, raw, clock := localCache(t, srv, 2*time.Second, objcache.Options{Prefix: "app:"})
	var loads atomic.Int32
	load := func(context.Context) (string, error) { loads.Add(1); return "v1", nil }

	got, err := objcache.GetOrLoad(ctx, c, "k", time.Hour, load)
	require.NoError(t, err)
	assert.Equal(t, "v1", got)
	got, err = objcache.GetOrLoad(ctx, c, "k", time.Hour, load)
	require.NoError(t, err)
	assert.Equal(t, "v1", got)
	assert.True(t, local.has("app:k"), "a memcached hit is offered to the local tier")
	assert.LessOrEqual(t, time.Duration(local.lastTTL.Load()), time.Hour, "never longer than the value lives")

	// Another process replaces the value: still v1 here, from the tier.
	require.NoError(t, raw.Set(ctx, &memclient.Item{Key: "app:k", Value: []byte("v2"), Flags: 16}))
	before := c.Stats()
	for range 3 {
		got, err = objcache.GetOrLoad(ctx, c, "k", time.Hour, load)
		require.NoError(t, err)
		assert.Equal(t, "v1", got, "within the local TTL")
		g, err := objcache.Get[string](ctx, c, "k")
		require.NoError(t, err)
		assert.Equal(t, "v1", g)
	}
	st := c.Stats()
	assert.Equal(t, before.LocalHits+6, st.LocalHits)
	assert.Equal(t, before.Hits+6, st.Hits, "local hits are hits")

	clock.advance(2 * time.Second)
	got, err = objcache.GetOrLoad(ctx, c, "k", time.Hour, load)
	require.NoError(t, err)
	assert.Equal(t, "v2", got, "past the local TTL, memcached's value")
	assert.Equal(t, int32(1), loads.Load())
}

// Every write of the Cache and its views drops the key from the local
// tier at once: the next read gets what was written.
func TestLocalDroppedByOwnWrites(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, local, _, _ := localCache(t, srv, time.Minute, objcache.Options{Prefix: "app:"})
	load := func(context.Context) (string, error) { return "loaded", nil }
	// warm reads k twice, so that its current value is in the tier.
	warm := func(t *testing.T, key, want string) {
		t.Helper()
		for range 2 {
			got, err := objcache.GetOrLoad(ctx, c, key, 0, load)
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
		require.True(t, local.has("app:"+key))
	}
	read := func(t *testing.T, key string) (string, error) {
		t.Helper()
		return objcache.Get[string](ctx, c, key)
	}

	tests := []struct {
		name  string
		write func(t *testing.T)
		want  string // "" for a miss
	}{
		{"Set", func(t *testing.T) { require.NoError(t, c.Set(ctx, "k", "set", 0)) }, "set"},
		{"Set through a view", func(t *testing.T) { require.NoError(t, c.WithTags().Set(ctx, "k", "view", 0)) }, "view"},
		{"Delete", func(t *testing.T) { require.NoError(t, c.Delete(ctx, "k")) }, ""},
		{"Add after Delete", func(t *testing.T) {
			require.NoError(t, c.Delete(ctx, "k"))
			require.NoError(t, c.Add(ctx, "k", "added", 0))
		}, "added"},
		{"SetMulti", func(t *testing.T) {
			require.NoError(t, objcache.SetMulti(ctx, c, "", map[string]string{"k": "multi"}, 0))
		}, "multi"},
		{"DeleteMulti", func(t *testing.T) { require.NoError(t, c.DeleteMulti(ctx, "", []string{"k"})) }, ""},
		{"Update", func(t *testing.T) {
			_, err := objcache.Update(ctx, c, "k", 0, func(old string, _ bool) (string, error) { return old + "+1", nil })
			require.NoError(t, err)
		}, "loaded+1"},
		{"Invalidate", func(t *testing.T) { require.NoError(t, c.Invalidate(ctx, "k")) }, "loaded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, c.Delete(ctx, "k"))
			warm(t, "k", "loaded")
			tt.write(t)
			assert.False(t, local.has("app:k"), "dropped from the local tier")
			got, err := read(t, "k")
			if tt.want == "" {
				require.ErrorIs(t, err, objcache.ErrCacheMiss)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}

	t.Run("reload after Invalidate", func(t *testing.T) {
		require.NoError(t, c.Delete(ctx, "k"))
		warm(t, "k", "loaded")
		require.NoError(t, c.Invalidate(ctx, "k"))
		got, err := objcache.GetOrLoad(ctx, c, "k", 0, func(context.Context) (string, error) { return "reloaded", nil })
		require.NoError(t, err)
		assert.Equal(t, "reloaded", got, "the stale value's reload, not the local copy")
		assert.False(t, local.has("app:k"), "the loader's store dropped it")
	})
}

// A read that raced with a write of the same key does not put the old
// value back into the tier after the write dropped it.
func TestLocalReadRacingWrite(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, local, _, _ := localCache(t, srv, time.Minute, objcache.Options{})
	require.NoError(t, c.Set(ctx, "k", "old", 0))
	var once sync.Once
	local.beforeSet = func(string) {
		// The read has "old" in hand; a write lands before it is kept.
		once.Do(func() { require.NoError(t, c.Set(ctx, "k", "new", 0)) })
	}
	got, err := objcache.Get[string](ctx, c, "k")
	require.NoError(t, err)
	assert.Equal(t, "old", got, "read before the write")
	assert.False(t, local.has("k"), "the offer saw the write and took the old value back")
	local.beforeSet = nil
	got, err = objcache.Get[string](ctx, c, "k")
	require.NoError(t, err)
	assert.Equal(t, "new", got)
}

// InvalidateNamespace gives the namespace's keys new names, so what the
// tier holds under the old ones is never read again; values that carry
// tags are never kept locally, so InvalidateTags is seen at once too.
func TestLocalNamespacesAndTags(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	for i, nsTTL := range []time.Duration{0, time.Minute} {
		c, local, _, _ := localCache(t, srv, time.Minute, objcache.Options{NamespaceTTL: nsTTL, Prefix: fmt.Sprint(i, ":")})
		ns := c.Namespace("shop")
		n := 0
		load := func(context.Context) (int, error) { n++; return n, nil }
		for range 3 { // loaded, kept locally, served locally
			got, err := objcache.GetOrLoad(ctx, ns, "k", 0, load)
			require.NoError(t, err)
			assert.Equal(t, 1, got)
		}
		assert.Positive(t, c.Stats().LocalHits)
		require.NoError(t, c.Namespace("shop").InvalidateNamespace(ctx))
		got, err := objcache.GetOrLoad(ctx, ns, "k", 0, load)
		require.NoError(t, err)
		if nsTTL == 0 {
			assert.Equal(t, 2, got, "another view's invalidation, seen at once")
		}
		require.NoError(t, ns.InvalidateNamespace(ctx))
		got, err = objcache.GetOrLoad(ctx, ns, "k", 0, load)
		require.NoError(t, err)
		assert.Equal(t, n, got, "the view's own invalidation, seen at once")

		tagged := c.WithTags("products")
		sets := local.sets.Load()
		for range 3 {
			_, err = objcache.GetOrLoad(ctx, tagged, "t", 0, load)
			require.NoError(t, err)
			_, err = objcache.Get[int](ctx, c, "t")
			require.NoError(t, err)
		}
		assert.Equal(t, sets, local.sets.Load(), "tagged values are not offered")
		require.NoError(t, c.InvalidateTags(ctx, "products"))
		_, err = objcache.Get[int](ctx, c, "t")
		require.ErrorIs(t, err, objcache.ErrCacheMiss, "invalidated at once")
	}
}

// The aliasing rule: a []byte served by the local tier is the tier's
// bytes, shared by every caller (they must not modify it); every other
// type is decoded anew for each caller.
func TestLocalAliasing(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, _, _, _ := localCache(t, srv, time.Minute, objcache.Options{})
	loadBytes := func(context.Context) ([]byte, error) { return []byte("shared bytes"), nil }
	_, err := objcache.GetOrLoad(ctx, c, "b", 0, loadBytes)
	require.NoError(t, err)
	b1, err := objcache.GetOrLoad(ctx, c, "b", 0, loadBytes)
	require.NoError(t, err)
	b2, err := objcache.GetOrLoad(ctx, c, "b", 0, loadBytes)
	require.NoError(t, err)
	assert.Equal(t, "shared bytes", string(b2))
	assert.Same(t, &b1[0], &b2[0], "one array, shared: callers must not modify it")

	loadProduct := func(context.Context) (product, error) { return product{ID: 1, Tags: []string{"a"}}, nil }
	_, err = objcache.GetOrLoad(ctx, c, "p", 0, loadProduct)
	require.NoError(t, err)
	p1, err := objcache.GetOrLoad(ctx, c, "p", 0, loadProduct)
	require.NoError(t, err)
	p1.Tags[0] = "changed by a caller"
	p2, err := objcache.GetOrLoad(ctx, c, "p", 0, loadProduct)
	require.NoError(t, err)
	assert.Equal(t, []string{"a"}, p2.Tags, "decoded anew for each caller")
	assert.Positive(t, c.Stats().LocalHits)
}

// What the tier is offered never outlives the value: its expiry (the
// loader's TTL) bounds the TTL it is offered with.
func TestLocalOfferedTTL(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, local, _, clock := localCache(t, srv, time.Minute, objcache.Options{})
	load := func(context.Context) (string, error) { return "v", nil }
	_, err := objcache.GetOrLoad(ctx, c, "k", 5*time.Second, load)
	require.NoError(t, err)
	clock.advance(2 * time.Second)
	_, err = objcache.GetOrLoad(ctx, c, "k", 5*time.Second, load)
	require.NoError(t, err)
	ttl := time.Duration(local.lastTTL.Load())
	assert.Greater(t, ttl, time.Duration(0))
	assert.LessOrEqual(t, ttl, 3*time.Second, "what is left of the value's 5 s")

	// Memoize and Get use the tier too, Memoize without building its key.
	var calls atomic.Int32
	double := objcache.Memoize1(c, "double", 0, func(_ context.Context, n int) (int, error) { calls.Add(1); return 2 * n, nil })
	for range 3 {
		got, err := double(ctx, 21)
		require.NoError(t, err)
		assert.Equal(t, 42, got)
	}
	assert.Equal(t, int32(1), calls.Load())
	assert.True(t, local.has("double:21"))
}
