package objcache_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// recorder is a batch loader that records the keys of each call and
// answers "v:<key>" for every key but those in missing.
type recorder struct {
	mu      sync.Mutex // protects calls
	calls   [][]string
	missing map[string]bool
	err     error
}

func (r *recorder) load(_ context.Context, keys []string) (map[string]string, error) {
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(keys))
	r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		if !r.missing[k] {
			out[k] = "v:" + k
		}
	}
	return out, nil
}

func (r *recorder) Calls() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([][]string, len(r.calls))
	for i, c := range r.calls {
		out[i] = slices.Sorted(slices.Values(c))
	}
	return out
}

func values(keys ...string) map[string]string {
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		out[k] = "v:" + k
	}
	return out
}

func TestGetOrLoadMulti(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{Prefix: "app:"})
		require.NoError(t, c.Set(ctx, "b", "v:b", time.Minute))
		r := &recorder{missing: map[string]bool{"gone": true}}

		got, err := objcache.GetOrLoadMulti(ctx, c, []string{"a", "b", "c", "a", "gone", "c"}, time.Minute, r.load)
		require.NoError(t, err)
		assert.Equal(t, values("a", "b", "c"), got, "found and loaded keys; a key the loader does not return is absent")
		assert.Equal(t, [][]string{{"a", "c", "gone"}}, r.Calls(), "one call, with exactly the missing keys, each once")

		// Warm: no call at all.
		got, err = objcache.GetOrLoadMulti(ctx, c, []string{"c", "b", "a"}, time.Minute, r.load)
		require.NoError(t, err)
		assert.Equal(t, values("a", "b", "c"), got)
		assert.Len(t, r.Calls(), 1)

		// No keys: no call, an empty map.
		got, err = objcache.GetOrLoadMulti(ctx, c, nil, time.Minute, r.load)
		require.NoError(t, err)
		assert.Empty(t, got)
		assert.NotNil(t, got)
		assert.Len(t, r.Calls(), 1, "load is never called with an empty slice")

		// The values are where Get finds them.
		v, err := objcache.Get[string](ctx, c, "a")
		require.NoError(t, err)
		assert.Equal(t, "v:a", v)

		st := c.Stats()
		assert.Equal(t, uint64(1), st.BatchLoads)
		assert.Equal(t, uint64(3), st.BatchKeys)
		assert.Equal(t, uint64(3), st.Loads, "counted per key")
		assert.Equal(t, uint64(1), st.NotFound)
		assert.Zero(t, st.LoadErrors, "a key the loader does not return is not an error")
		assert.Equal(t, uint64(1+3+1), st.Hits, "b, then a b c warm, then Get")
		assert.Equal(t, uint64(3), st.Misses)
	})
}

func TestGetOrLoadMultiNegativeCaching(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{NegativeTTL: time.Minute})
		r := &recorder{missing: map[string]bool{"gone": true}}
		for range 2 {
			got, err := objcache.GetOrLoadMulti(ctx, c, []string{"a", "gone"}, time.Minute, r.load)
			require.NoError(t, err)
			assert.Equal(t, values("a"), got)
		}
		assert.Equal(t, [][]string{{"a", "gone"}}, r.Calls(), "the not-found answer is cached too")
		assert.Equal(t, uint64(1), c.Stats().NegativeHits)

		// The single-key loaders see the same "not found".
		_, err := objcache.GetOrLoad(ctx, c, "gone", time.Minute, func(context.Context) (string, error) {
			return "", errors.New("not called")
		})
		require.ErrorIs(t, err, objcache.ErrNotFound)
	})
}

var errDBDown = errors.New("database down")

// A load error fails only the keys of that call, in a MultiError keyed by
// the caller's keys that errors.Is sees through.
func TestGetOrLoadMultiLoadError(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{Prefix: "p:", LeaseWait: time.Minute})
		require.NoError(t, c.Set(ctx, "cached", "v:cached", time.Minute))
		r := &recorder{err: errDBDown}
		got, err := objcache.GetOrLoadMulti(ctx, c, []string{"cached", "x", "y"}, time.Minute, r.load)
		require.Error(t, err)
		assert.Equal(t, values("cached"), got, "the keys the load was not for are served")
		require.ErrorIs(t, err, errDBDown)
		var me memclient.MultiError
		require.ErrorAs(t, err, &me)
		assert.ElementsMatch(t, []string{"x", "y"}, slices.Collect(func(yield func(string) bool) {
			for k := range me {
				if !yield(k) {
					return
				}
			}
		}), "keyed by the caller's keys, without prefix")
		st := c.Stats()
		assert.Equal(t, uint64(2), st.LoadErrors)
		assert.Zero(t, st.NotFound)

		// The leases were released: another process loads at once.
		other := newCache(t, srv.Addr, proto, objcache.Options{Prefix: "p:", LeaseWait: time.Hour})
		got, err = objcache.GetOrLoadMulti(ctx, other, []string{"x", "y"}, time.Minute, (&recorder{}).load)
		require.NoError(t, err)
		assert.Equal(t, values("x", "y"), got)
		assert.Zero(t, other.Stats().LeaseWaits)

		// A malformed key fails alone.
		got, err = objcache.GetOrLoadMulti(ctx, c, []string{"x", "has space"}, time.Minute, (&recorder{}).load)
		require.ErrorAs(t, err, &me)
		require.ErrorIs(t, me["has space"], memclient.ErrMalformedKey)
		assert.Equal(t, values("x"), got)
	})
}

// When a server is down, its keys are loaded (and not stored), as
// GetOrLoad does; the others are served as usual.
func TestGetOrLoadMultiServerDown(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	for _, proto := range protocols {
		t.Run(proto.String(), func(t *testing.T) {
			ctx := context.Background()
			cl, err := memclient.NewFromConfig(memclient.Config{
				Servers:  []memclient.Server{{Addr: srvs[0].Addr}, {Addr: srvs[1].Addr}},
				Protocol: proto,
			})
			require.NoError(t, err)
			t.Cleanup(func() { _ = cl.Close() })
			c, err := objcache.New(cl, objcache.Options{Prefix: proto.String() + ":"})
			require.NoError(t, err)
			keys := make([]string, 20)
			for i := range keys {
				keys[i] = fmt.Sprintf("k%d", i)
			}
			r := &recorder{}
			_, err = objcache.GetOrLoadMulti(ctx, c, keys, time.Minute, r.load)
			require.NoError(t, err)
			if proto == memclient.ProtocolText {
				return // one server is killed once, by the meta run
			}
			srvs[1].Kill()
			got, err := objcache.GetOrLoadMulti(ctx, c, keys, time.Minute, r.load)
			require.NoError(t, err)
			assert.Equal(t, values(keys...), got)
			calls := r.Calls()
			require.Len(t, calls, 2)
			assert.NotEmpty(t, calls[1], "the dead server's keys were loaded")
			assert.Less(t, len(calls[1]), len(keys), "the live server's keys were served")
			assert.Equal(t, uint64(len(calls[1])), c.Stats().Errors)

			// When their load fails too, those keys fail, and the error
			// tells both causes.
			r.err = errDBDown
			got, err = objcache.GetOrLoadMulti(ctx, c, keys, time.Minute, r.load)
			var me memclient.MultiError
			require.ErrorAs(t, err, &me)
			assert.Len(t, me, len(calls[1]), "the dead server's keys")
			assert.Len(t, got, len(keys)-len(calls[1]), "the others are served")
			require.ErrorIs(t, err, errDBDown)
			for k, e := range me {
				assert.Contains(t, keys, k, "keyed by the caller's keys")
				var dial *net.OpError // refused, until the client marks the server down
				assert.True(t, errors.As(e, &dial) || errors.Is(e, memclient.ErrServerUnavailable),
					"the memcached error is there too: %v", e)
			}
		})
	}
}

// A key whose lease another process holds is waited for (LeaseWait), then
// loaded in one more call; the keys won are loaded first, at once.
func TestGetOrLoadMultiWaitsThenLoads(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c, raw := newCacheClient(t, srv.Addr, proto, objcache.Options{LeaseWait: 50 * time.Millisecond})
		takeLease(t, raw, proto, "stuck")
		r := &recorder{}
		got, err := objcache.GetOrLoadMulti(ctx, c, []string{"a", "stuck", "b"}, time.Minute, r.load)
		require.NoError(t, err)
		assert.Equal(t, values("a", "b", "stuck"), got)
		assert.Equal(t, [][]string{{"a", "b"}, {"stuck"}}, r.Calls())
		assert.Equal(t, uint64(1), c.Stats().LeaseWaits)
		assert.Equal(t, uint64(2), c.Stats().BatchLoads)
	})
}

// takeLease takes the lease (meta) or the lock (text) of full key k, as a
// process that then died would have.
func takeLease(t *testing.T, raw *memclient.Client, proto memclient.Protocol, k string) {
	t.Helper()
	ctx := context.Background()
	if proto == memclient.ProtocolMeta {
		l, err := raw.GetLease(ctx, k, memclient.LeaseOptions{VivifyTTL: time.Minute})
		require.NoError(t, err)
		require.True(t, l.Won)
		return
	}
	require.NoError(t, raw.Add(ctx, &memclient.Item{Key: k + ":lock", Value: []byte("1"), TTL: time.Minute}))
}

// Goroutines of one process asking for overlapping keys share lookups:
// each key is loaded once.
func TestGetOrLoadMultiCoalesces(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{LeaseWait: 10 * time.Second})
		var mu sync.Mutex
		loaded := map[string]int{}
		load := func(_ context.Context, keys []string) (map[string]string, error) {
			mu.Lock()
			for _, k := range keys {
				loaded[k]++
			}
			mu.Unlock()
			return values(keys...), nil
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, 20)
		for g := range 20 {
			wg.Go(func() {
				<-start
				keys := make([]string, 10)
				for i := range keys {
					keys[i] = fmt.Sprintf("k%d", (g+i)%25)
				}
				got, err := objcache.GetOrLoadMulti(ctx, c, keys, time.Minute, load)
				if err == nil && !assert.ObjectsAreEqual(values(keys...), got) {
					err = fmt.Errorf("goroutine %d got %v", g, got)
				}
				errs <- err
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		for k, n := range loaded {
			assert.Equal(t, 1, n, "key %s loaded %d times", k, n)
		}
		assert.Len(t, loaded, 25)
	})
}

// A panicking batch loader releases the goroutines waiting for its keys
// and their leases; the panic goes on in its own goroutine.
func TestGetOrLoadMultiPanic(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{})
		fk, err := c.Key(ctx, "b")
		require.NoError(t, err)
		started, release := make(chan struct{}), make(chan struct{})
		recovered := make(chan any, 1)
		go func() {
			defer func() { recovered <- recover() }()
			_, _ = objcache.GetOrLoadMulti(ctx, c, []string{"a", "b"}, 0, func(context.Context, []string) (map[string]int, error) {
				close(started)
				<-release
				panic("loader bug")
			})
		}()
		<-started
		errc := make(chan error, 1)
		go func() {
			_, err := objcache.GetOrLoad(ctx, c, "b", 0, func(context.Context) (int, error) { return 0, errors.New("waiters must not load") })
			errc <- err
		}()
		waitUntil(t, "the waiter joined", func() bool { return objcache.Waiting(c, fk) == 1 })
		close(release)
		assert.Equal(t, "loader bug", <-recovered)
		require.ErrorIs(t, <-errc, objcache.ErrLoaderPanicked)
		assert.Equal(t, uint64(2), c.Stats().LoadErrors)

		other := newCache(t, srv.Addr, proto, objcache.Options{LeaseWait: time.Hour})
		got, err := objcache.GetOrLoadMulti(ctx, other, []string{"a", "b"}, 0, func(_ context.Context, keys []string) (map[string]int, error) {
			return map[string]int{"a": 1, "b": 2}, nil
		})
		require.NoError(t, err)
		assert.Equal(t, map[string]int{"a": 1, "b": 2}, got)
		assert.Zero(t, other.Stats().LeaseWaits, "the leases were released")
	})
}

func TestMemoizeMulti(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{})
		db := openProductDB(t)
		var calls [][]int
		byIDs := objcache.MemoizeMulti(c, "product", time.Minute, func(ctx context.Context, ids []int) (map[int]dbProduct, error) {
			calls = append(calls, slices.Sorted(slices.Values(ids)))
			out := map[int]dbProduct{}
			for _, id := range ids {
				if p, err := db.byID(ctx, id); err == nil {
					out[id] = p
				}
			}
			return out, nil
		})
		got, err := byIDs(ctx, []int{3, 1, 3, 99})
		require.NoError(t, err)
		assert.Equal(t, map[int]dbProduct{1: db.rows[0], 3: db.rows[2]}, got)
		assert.Equal(t, [][]int{{1, 3, 99}}, calls)

		// Memoize1 under the same name shares the values.
		byID := objcache.Memoize1(c, "product", time.Minute, db.byID)
		before := db.queries.Load()
		p, err := byID(ctx, 3)
		require.NoError(t, err)
		assert.Equal(t, db.rows[2], p)
		assert.Equal(t, before, db.queries.Load(), "served from what MemoizeMulti cached")
		p, err = byID(ctx, 2)
		require.NoError(t, err)
		got, err = byIDs(ctx, []int{1, 2, 3})
		require.NoError(t, err)
		assert.Len(t, got, 3)
		assert.Len(t, calls, 1, "and the other way round")

		// A failed call fails its keys, named as the caller wrote them.
		failing := objcache.MemoizeMulti(c, "product", time.Minute, func(context.Context, []int) (map[int]dbProduct, error) {
			return nil, errDBDown
		})
		got, err = failing(ctx, []int{1, 4})
		require.ErrorIs(t, err, errDBDown)
		var me memclient.MultiError
		require.ErrorAs(t, err, &me)
		assert.Equal(t, []string{"4"}, slices.Collect(mapsKeys(me)))
		assert.Equal(t, map[int]dbProduct{1: db.rows[0]}, got)
	})
}

func mapsKeys(m memclient.MultiError) func(func(string) bool) {
	return func(yield func(string) bool) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !yield(k) {
				return
			}
		}
	}
}

func TestMemoizeMultiUnencodable(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{})
	fn := objcache.MemoizeMulti(c, "f", time.Minute, func(_ context.Context, xs []float64) (map[float64]string, error) {
		out := map[float64]string{}
		for _, x := range xs {
			out[x] = fmt.Sprint(x)
		}
		return out, nil
	})
	nan := func() float64 { var z float64; return z / z }()
	got, err := fn(context.Background(), []float64{1.5, nan})
	var me memclient.MultiError
	require.ErrorAs(t, err, &me)
	require.ErrorIs(t, me["NaN"], objcache.ErrUnencodableArgs)
	assert.Equal(t, map[float64]string{1.5: "1.5"}, got)
	assert.True(t, strings.Contains(err.Error(), "1 key(s) failed"), err.Error())
}
