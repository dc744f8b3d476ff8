package objcache_test

import (
	"context"
	"errors"
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

const (
	processes  = 4  // independent clients, standing for processes
	goroutines = 50 // per process
)

// caches returns n caches over n independent clients.
func caches(t *testing.T, n int, addr string, proto memclient.Protocol, opts objcache.Options) []*objcache.Cache {
	out := make([]*objcache.Cache, n)
	for i := range out {
		out[i] = newCache(t, addr, proto, opts)
	}
	return out
}

// sum adds up the stats of several caches.
func sum(cs []*objcache.Cache) objcache.Stats {
	var s objcache.Stats
	for _, c := range cs {
		x := c.Stats()
		s.Hits += x.Hits
		s.Misses += x.Misses
		s.Loads += x.Loads
		s.LoadErrors += x.LoadErrors
		s.StaleServed += x.StaleServed
		s.LeaseWaits += x.LeaseWaits
		s.Coalesced += x.Coalesced
		s.Refreshes += x.Refreshes
	}
	return s
}

// waitUntil polls cond for up to 10s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGetOrLoad(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{Prefix: "app:"})
		var loads atomic.Int32
		load := func(context.Context) (product, error) {
			loads.Add(1)
			return product{ID: 5, Name: "lamp"}, nil
		}
		for range 3 {
			p, err := objcache.GetOrLoad(ctx, c, "p5", time.Minute, load)
			require.NoError(t, err)
			assert.Equal(t, product{ID: 5, Name: "lamp"}, p)
		}
		assert.Equal(t, int32(1), loads.Load())
		st := c.Stats()
		assert.Equal(t, uint64(1), st.Loads)
		assert.Equal(t, uint64(1), st.Misses)
		assert.Equal(t, uint64(2), st.Hits)

		got, err := objcache.Get[product](ctx, c, "p5")
		require.NoError(t, err, "the loaded value is in memcached")
		assert.Equal(t, "lamp", got.Name)
	})
}

// The proof: 4 processes x 50 goroutines ask for one cold key whose
// loader takes 100ms; the loader runs once.
func TestGetOrLoadStampedeAcrossProcesses(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		cs := caches(t, processes, srv.Addr, proto, objcache.Options{Prefix: "app:", LeaseWait: 10 * time.Second})
		var loads atomic.Int32
		load := func(context.Context) (string, error) {
			loads.Add(1)
			time.Sleep(100 * time.Millisecond) // the slow database call
			return "expensive", nil
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, processes*goroutines)
		for _, c := range cs {
			for range goroutines {
				wg.Go(func() {
					<-start
					v, err := objcache.GetOrLoad(ctx, c, "cold", time.Minute, load)
					if err == nil && v != "expensive" {
						err = fmt.Errorf("got %q", v)
					}
					errs <- err
				})
			}
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		assert.Equal(t, int32(1), loads.Load(), "the loader ran exactly once across all processes")
		st := sum(cs)
		assert.Equal(t, uint64(1), st.Loads)
		assert.Equal(t, uint64(0), st.LoadErrors)
		assert.GreaterOrEqual(t, st.LeaseWaits, uint64(1), "the other processes waited for the lease holder")
		assert.Greater(t, st.Coalesced, uint64(0), "goroutines of one process shared a lookup")
		t.Logf("%s: %+v", proto, st)
	})
}

// The proof, for an expiring key: callers keep getting values while
// exactly one refresh runs.
func TestEarlyRefresh(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		opts := objcache.Options{EarlyRefresh: 20 * time.Second}
		cs := caches(t, processes, srv.Addr, proto, opts)
		// The current value has 10s left: inside the 20s window.
		require.NoError(t, cs[0].Set(ctx, "hot", "v1", 10*time.Second))

		var refreshes atomic.Int32
		started, release := make(chan struct{}), make(chan struct{})
		load := func(context.Context) (string, error) {
			if refreshes.Add(1) == 1 {
				close(started)
			}
			<-release
			return "v2", nil
		}

		// The first caller wins the refresh and blocks in the loader.
		refresher := make(chan string, 1)
		go func() {
			v, err := objcache.GetOrLoad(ctx, cs[0], "hot", time.Minute, load)
			if err != nil {
				v = err.Error()
			}
			refresher <- v
		}()
		<-started

		// While it runs, every caller of every process gets the current
		// value at once: none waits for the refresh (the loader is blocked,
		// so a caller that waited would never return before release).
		var wg sync.WaitGroup
		var served atomic.Int32
		errs := make(chan error, processes*goroutines)
		for _, c := range cs {
			for range goroutines {
				wg.Go(func() {
					v, err := objcache.GetOrLoad(ctx, c, "hot", time.Minute, load)
					if err == nil && v != "v1" {
						err = fmt.Errorf("got %q during the refresh", v)
					}
					if err == nil {
						served.Add(1)
					}
					errs <- err
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		assert.Equal(t, int32(processes*goroutines), served.Load())

		close(release)
		assert.Equal(t, "v2", <-refresher, "the refresher returns the new value")
		for _, c := range cs {
			v, err := objcache.GetOrLoad(ctx, c, "hot", time.Minute, load)
			require.NoError(t, err)
			assert.Equal(t, "v2", v)
		}
		assert.Equal(t, int32(1), refreshes.Load(), "exactly one refresh ran")
		st := sum(cs)
		assert.Equal(t, uint64(1), st.Refreshes)
		assert.Equal(t, uint64(1), st.Loads)
	})
}

func TestInvalidateServesStale(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	cs := caches(t, processes, srv.Addr, memclient.ProtocolMeta, objcache.Options{})
	require.NoError(t, cs[0].Set(ctx, "k", "old", time.Minute))
	require.NoError(t, cs[0].Invalidate(ctx, "k"))

	var loads atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	load := func(context.Context) (string, error) {
		loads.Add(1)
		close(started)
		<-release
		return "new", nil
	}
	done := make(chan string, 1)
	go func() {
		v, _ := objcache.GetOrLoad(ctx, cs[0], "k", time.Minute, load)
		done <- v
	}()
	<-started
	for _, c := range cs[1:] {
		v, err := objcache.GetOrLoad(ctx, c, "k", time.Minute, load)
		require.NoError(t, err)
		assert.Equal(t, "old", v, "the stale value is served while one caller reloads")
	}
	close(release)
	assert.Equal(t, "new", <-done)
	v, err := objcache.GetOrLoad(ctx, cs[1], "k", time.Minute, load)
	require.NoError(t, err)
	assert.Equal(t, "new", v)
	assert.Equal(t, int32(1), loads.Load())
	assert.Equal(t, uint64(processes-1), sum(cs).StaleServed)

	// Invalidating a missing key is fine.
	require.NoError(t, cs[0].Invalidate(ctx, "missing"))
}

func TestInvalidateText(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c := newCache(t, srv.Addr, memclient.ProtocolText, objcache.Options{})
	require.NoError(t, c.Set(ctx, "k", "old", time.Minute))
	require.NoError(t, c.Invalidate(ctx, "k"))
	_, err := objcache.Get[string](ctx, c, "k")
	require.ErrorIs(t, err, objcache.ErrCacheMiss, "the text protocol has no stale items: invalidate deletes")
}

// A loader that panics releases the goroutines waiting for it and the
// lease that other processes wait on; the panic goes on in the goroutine
// that ran it.
func TestLoaderPanic(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{})
		fullKey, err := c.Key(ctx, "boom")
		require.NoError(t, err)

		started, release := make(chan struct{}), make(chan struct{})
		panicky := func(context.Context) (int, error) {
			close(started)
			<-release
			panic("loader bug")
		}
		recovered := make(chan any, 1)
		go func() {
			defer func() { recovered <- recover() }()
			_, _ = objcache.GetOrLoad(ctx, c, "boom", 0, panicky)
		}()
		<-started

		const waiters = 5
		errs := make(chan error, waiters)
		for range waiters {
			go func() {
				_, err := objcache.GetOrLoad(ctx, c, "boom", 0, func(context.Context) (int, error) {
					return 0, errors.New("waiters must not load")
				})
				errs <- err
			}()
		}
		waitUntil(t, "the waiters joined the flight", func() bool { return objcache.Waiting(c, fullKey) == waiters })
		close(release)

		assert.Equal(t, "loader bug", <-recovered, "the panic propagates in the loader's goroutine")
		for range waiters {
			assert.ErrorIs(t, <-errs, objcache.ErrLoaderPanicked)
		}
		assert.Equal(t, uint64(1), c.Stats().LoadErrors)

		// The lease was released: another process loads at once, without
		// waiting for it to expire.
		other := newCache(t, srv.Addr, proto, objcache.Options{LeaseWait: time.Minute})
		v, err := objcache.GetOrLoad(ctx, other, "boom", 0, func(context.Context) (int, error) { return 9, nil })
		require.NoError(t, err)
		assert.Equal(t, 9, v)
		assert.Equal(t, uint64(0), other.Stats().LeaseWaits)
	})
}

func TestWaiterContextCancel(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{})
	fullKey, err := c.Key(context.Background(), "slow")
	require.NoError(t, err)

	started, release := make(chan struct{}), make(chan struct{})
	done := make(chan int, 1)
	go func() {
		v, _ := objcache.GetOrLoad(context.Background(), c, "slow", 0, func(context.Context) (int, error) {
			close(started)
			<-release
			return 1, nil
		})
		done <- v
	}()
	<-started

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := objcache.GetOrLoad(ctx, c, "slow", 0, func(context.Context) (int, error) { return 2, nil })
		errc <- err
	}()
	waitUntil(t, "the waiter joined", func() bool { return objcache.Waiting(c, fullKey) == 1 })
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled, "a waiter stops waiting when its ctx ends")
	close(release)
	assert.Equal(t, 1, <-done, "the leader is unaffected")
}

func TestLeaderContextCancelDoesNotFailWaiters(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{})
	fullKey, err := c.Key(context.Background(), "k")
	require.NoError(t, err)

	leaderCtx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	go func() {
		_, _ = objcache.GetOrLoad(leaderCtx, c, "k", 0, func(ctx context.Context) (int, error) {
			close(started)
			<-ctx.Done()
			return 0, ctx.Err()
		})
	}()
	<-started
	res := make(chan int, 1)
	go func() {
		v, err := objcache.GetOrLoad(context.Background(), c, "k", 0, func(context.Context) (int, error) { return 7, nil })
		if err != nil {
			v = -1
		}
		res <- v
	}()
	waitUntil(t, "the waiter joined", func() bool { return objcache.Waiting(c, fullKey) == 1 })
	cancel()
	assert.Equal(t, 7, <-res, "the waiter retried with its own ctx and loader")
}

// A lease holder that never finishes delays others by LeaseWait at most.
func TestLeaseWaitBounded(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c, raw := newCacheClient(t, srv.Addr, proto, objcache.Options{LeaseWait: 100 * time.Millisecond})
		k, err := c.Key(ctx, "stuck")
		require.NoError(t, err)

		// A process takes the lease and dies.
		if proto == memclient.ProtocolMeta {
			l, err := raw.GetLease(ctx, k, memclient.LeaseOptions{VivifyTTL: time.Minute})
			require.NoError(t, err)
			require.True(t, l.Won)
		} else {
			require.NoError(t, raw.Add(ctx, &memclient.Item{Key: k + ":lock", Value: []byte("1"), TTL: time.Minute}))
		}

		v, err := objcache.GetOrLoad(ctx, c, "stuck", 0, func(context.Context) (string, error) { return "mine", nil })
		require.NoError(t, err)
		assert.Equal(t, "mine", v)
		st := c.Stats()
		assert.Equal(t, uint64(1), st.LeaseWaits)
		assert.Equal(t, uint64(1), st.Loads)

		got, err := objcache.Get[string](ctx, c, "stuck")
		require.NoError(t, err, "the value loaded after waiting is stored")
		assert.Equal(t, "mine", got)

		// A waiting caller's ctx bounds the wait too.
		k2, err := c.Key(ctx, "stuck2")
		require.NoError(t, err)
		if proto == memclient.ProtocolMeta {
			_, err = raw.GetLease(ctx, k2, memclient.LeaseOptions{VivifyTTL: time.Minute})
		} else {
			err = raw.Add(ctx, &memclient.Item{Key: k2 + ":lock", Value: []byte("1"), TTL: time.Minute})
		}
		require.NoError(t, err)
		slow := newCache(t, srv.Addr, proto, objcache.Options{LeaseWait: time.Hour})
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err = objcache.GetOrLoad(cctx, slow, "stuck2", 0, func(context.Context) (string, error) { return "x", nil })
		require.ErrorIs(t, err, context.DeadlineExceeded, "stats: %+v", slow.Stats())
	})
}

func TestNegativeCaching(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		tests := []struct {
			name      string
			opts      objcache.Options
			loaderErr error
			wantLoads int32
		}{
			{"not found, negative caching on", objcache.Options{NegativeTTL: time.Minute}, objcache.ErrNotFound, 1},
			{"wrapped not found", objcache.Options{NegativeTTL: time.Minute}, fmt.Errorf("product 4: %w", objcache.ErrNotFound), 1},
			{"not found, negative caching off", objcache.Options{}, objcache.ErrNotFound, 3},
			{"other errors are never cached", objcache.Options{NegativeTTL: time.Minute}, errors.New("db down"), 3},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c := newCache(t, srv.Addr, proto, tt.opts)
				key := fmt.Sprintf("neg%d", i)
				var loads atomic.Int32
				for range 3 {
					_, err := objcache.GetOrLoad(ctx, c, key, 0, func(context.Context) (int, error) {
						loads.Add(1)
						return 0, tt.loaderErr
					})
					require.Error(t, err)
					if errors.Is(tt.loaderErr, objcache.ErrNotFound) {
						require.ErrorIs(t, err, objcache.ErrNotFound)
					}
				}
				assert.Equal(t, tt.wantLoads, loads.Load())
				// The next successful load is served (and cached) as usual
				// once no negative entry stands in the way.
				if tt.wantLoads > 1 {
					v, err := objcache.GetOrLoad(ctx, c, key, 0, func(context.Context) (int, error) { return 4, nil })
					require.NoError(t, err)
					assert.Equal(t, 4, v)
				} else {
					assert.Equal(t, uint64(2), c.Stats().NegativeHits)
					_, err := objcache.Get[int](ctx, c, key)
					require.ErrorIs(t, err, objcache.ErrCacheMiss, "a negative entry is a miss for Get")
				}
			})
		}
	})
}

func TestNegativeEntryExpires(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, raw := newCacheClient(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{NegativeTTL: time.Second})
	_, err := objcache.GetOrLoad(ctx, c, "k", 0, func(context.Context) (int, error) { return 0, objcache.ErrNotFound })
	require.ErrorIs(t, err, objcache.ErrNotFound)
	l, err := raw.GetLease(ctx, "k", memclient.LeaseOptions{})
	require.NoError(t, err)
	assert.InDelta(t, 1, l.TTL.Seconds(), 1, "stored with NegativeTTL, not the value TTL")
}

// When memcached is down GetOrLoad degrades to calling the loader.
func TestGetOrLoadMemcachedDown(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{})
		ns := c.Namespace("n")
		srv.Kill()
		for _, cc := range []*objcache.Cache{c, ns} {
			v, err := objcache.GetOrLoad(ctx, cc, "k", 0, func(context.Context) (int, error) { return 3, nil })
			require.NoError(t, err)
			assert.Equal(t, 3, v)
		}
		assert.GreaterOrEqual(t, c.Stats().Errors, uint64(2))
		assert.Equal(t, uint64(2), c.Stats().Loads)
	})
}

// Two types asking for one key in one process: each gets its own type.
func TestGetOrLoadTypeMismatchInFlight(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{})
	fk, err := c.Key(ctx, "k")
	require.NoError(t, err)
	started, release := make(chan struct{}), make(chan struct{})
	go func() {
		_, _ = objcache.GetOrLoad(ctx, c, "k", 0, func(context.Context) (product, error) {
			close(started)
			<-release
			return product{ID: 1}, nil
		})
	}()
	<-started
	res := make(chan string, 1)
	go func() {
		v, err := objcache.GetOrLoad(ctx, c, "k", 0, func(context.Context) (string, error) { return "str", nil })
		if err != nil {
			v = err.Error()
		}
		res <- v
	}()
	waitUntil(t, "the waiter joined", func() bool { return objcache.Waiting(c, fk) == 1 })
	close(release)
	assert.Equal(t, "str", <-res)
}

func TestGetOrLoadTTL(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, raw := newCacheClient(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{TTL: time.Hour})
	tests := []struct {
		name    string
		ttl     time.Duration
		wantTTL float64 // seconds; -1 none
	}{
		{"chosen by the loader", 5 * time.Second, 5},
		{"zero means Options.TTL", 0, 3600},
		{"never expires", objcache.NoExpiration, -1},
		{"any negative never expires", -time.Minute, -1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("ttl%d", i)
			v, err := objcache.GetOrLoadTTL(ctx, c, key, func(context.Context) (string, time.Duration, error) {
				return "v", tt.ttl, nil
			})
			require.NoError(t, err)
			assert.Equal(t, "v", v)
			l, err := raw.GetLease(ctx, key, memclient.LeaseOptions{})
			require.NoError(t, err)
			assert.InDelta(t, tt.wantTTL, l.TTL.Seconds(), 2)
		})
	}
}

// A write that lands while the loader runs is newer than what the loader
// read: it is kept, not overwritten by the loaded value.
func TestWriteDuringLoadWins(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{})
		writer := newCache(t, srv.Addr, proto, objcache.Options{})
		v, err := objcache.GetOrLoad(ctx, c, "k", 0, func(ctx context.Context) (string, error) {
			require.NoError(t, writer.Set(ctx, "k", "written meanwhile", 0))
			return "loaded", nil
		})
		require.NoError(t, err)
		assert.Equal(t, "loaded", v, "the caller gets what it loaded")
		got, err := objcache.Get[string](ctx, c, "k")
		require.NoError(t, err)
		assert.Equal(t, "written meanwhile", got)
	})
}

// On the meta protocol a Delete while loading voids the lease: the loaded
// value, read before the delete, is not stored.
func TestDeleteDuringLoadVoidsLease(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{})
	v, err := objcache.GetOrLoad(ctx, c, "k", 0, func(ctx context.Context) (string, error) {
		require.NoError(t, c.Delete(ctx, "k"))
		return "loaded before the delete", nil
	})
	require.NoError(t, err)
	assert.Equal(t, "loaded before the delete", v)
	_, err = objcache.Get[string](ctx, c, "k")
	require.ErrorIs(t, err, objcache.ErrCacheMiss)
}

// A failed early refresh keeps the current value in service.
func TestEarlyRefreshFailureKeepsValue(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{EarlyRefresh: 20 * time.Second})
		require.NoError(t, c.Set(ctx, "k", "current", 10*time.Second))
		v, err := objcache.GetOrLoad(ctx, c, "k", time.Minute, func(context.Context) (string, error) {
			return "", errors.New("db down")
		})
		require.NoError(t, err)
		assert.Equal(t, "current", v)
		st := c.Stats()
		assert.Equal(t, uint64(1), st.Refreshes)
		assert.Equal(t, uint64(1), st.LoadErrors)
		got, err := objcache.Get[string](ctx, c, "k")
		require.NoError(t, err)
		assert.Equal(t, "current", got)
	})
}

// On the text protocol with EarlyRefresh, a cached "not found" (which has
// no fresh key) is served without taking the lock.
func TestNegativeHitTextEarlyRefresh(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, raw := newCacheClient(t, srv.Addr, memclient.ProtocolText, objcache.Options{NegativeTTL: time.Minute, EarlyRefresh: 30 * time.Second})
	_, err := objcache.GetOrLoad(ctx, c, "gone", time.Hour, func(context.Context) (int, error) { return 0, objcache.ErrNotFound })
	require.ErrorIs(t, err, objcache.ErrNotFound)
	before := commands(raw)
	_, err = objcache.GetOrLoad(ctx, c, "gone", time.Hour, func(context.Context) (int, error) { return 0, errors.New("not called") })
	require.ErrorIs(t, err, objcache.ErrNotFound)
	assert.Equal(t, uint64(1), commands(raw)-before, "one gets (the value and its fresh key), no lock")
	assert.Equal(t, uint64(1), c.Stats().NegativeHits)
}
