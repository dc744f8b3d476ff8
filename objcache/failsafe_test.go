package objcache_test

import (
	"context"
	"errors"
	"fmt"
	"math"
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

// clock is a settable clock for SetClock.
type clock struct {
	mu  sync.Mutex // protects now
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// loader counts its calls and returns what its current answer says.
type loader struct {
	calls atomic.Int32
	mu    sync.Mutex // protects v and err
	v     string
	err   error
}

func (l *loader) set(v string, err error) {
	l.mu.Lock()
	l.v, l.err = v, err
	l.mu.Unlock()
}

func (l *loader) load(context.Context) (string, error) {
	l.calls.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.v, l.err
}

func TestFailSafe(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		clk := newClock()
		c := newCache(t, srv.Addr, proto, objcache.Options{FailSafe: time.Hour, FailSafeBackoff: 30 * time.Second})
		objcache.SetClock(c, clk.Now, nil)
		l := &loader{v: "v1"}
		get := func() (string, error) { return objcache.GetOrLoad(ctx, c, "k", time.Minute, l.load) }

		v, err := get()
		require.NoError(t, err)
		require.Equal(t, "v1", v)

		clk.Add(2 * time.Minute) // expired a minute ago
		_, err = objcache.Get[string](ctx, c, "k")
		require.ErrorIs(t, err, objcache.ErrCacheMiss, "Get sees an expired value as expired")
		l.set("", errDBDown)
		v, err = get()
		require.NoError(t, err, "the reload failed: the fail-safe value is served instead of the error")
		assert.Equal(t, "v1", v)
		assert.Equal(t, int32(2), l.calls.Load())
		st := c.Stats()
		assert.Equal(t, uint64(1), st.FailSafeServed)
		assert.Equal(t, uint64(1), st.StaleServed)
		assert.Equal(t, uint64(1), st.LoadErrors)

		// The value stays in service for the back-off, in every process:
		// no load attempt meanwhile.
		other := newCache(t, srv.Addr, proto, objcache.Options{FailSafe: time.Hour})
		objcache.SetClock(other, clk.Now, nil)
		for _, cc := range []*objcache.Cache{c, other} {
			v, err = objcache.GetOrLoad(ctx, cc, "k", time.Minute, l.load)
			require.NoError(t, err)
			assert.Equal(t, "v1", v)
			got, err := objcache.Get[string](ctx, cc, "k")
			require.NoError(t, err, "in service: Get serves it too")
			assert.Equal(t, "v1", got)
		}
		assert.Equal(t, int32(2), l.calls.Load(), "the dead database is left alone during the back-off")
		assert.Equal(t, uint64(1), other.Stats().FailSafeServed)

		// After the back-off the next caller tries again, and succeeds.
		clk.Add(31 * time.Second)
		l.set("v2", nil)
		v, err = get()
		require.NoError(t, err)
		assert.Equal(t, "v2", v)
		assert.Equal(t, int32(3), l.calls.Load())

		// Past FailSafe, a failed reload is an error, and the expired
		// value does not stand in the way of the next caller.
		clk.Add(2 * time.Hour)
		l.set("", errDBDown)
		_, err = get()
		require.ErrorIs(t, err, errDBDown)
		l.set("v3", nil)
		patient := newCache(t, srv.Addr, proto, objcache.Options{FailSafe: time.Hour, LeaseWait: time.Hour})
		objcache.SetClock(patient, clk.Now, nil)
		v, err = objcache.GetOrLoad(ctx, patient, "k", time.Minute, l.load)
		require.NoError(t, err)
		assert.Equal(t, "v3", v)
		assert.Zero(t, patient.Stats().LeaseWaits)
	})
}

// Values are stored with FailSafe more memcached TTL than their own.
func TestFailSafeStoredTTL(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, raw := newCacheClient(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{FailSafe: time.Hour})
	_, err := objcache.GetOrLoad(ctx, c, "loaded", time.Minute, func(context.Context) (int, error) { return 1, nil })
	require.NoError(t, err)
	require.NoError(t, c.Set(ctx, "set", 1, time.Minute))
	for _, k := range []string{"loaded", "set"} {
		l, err := raw.GetLease(ctx, k, memclient.LeaseOptions{})
		require.NoError(t, err)
		assert.InDelta(t, (time.Hour + time.Minute).Seconds(), l.TTL.Seconds(), 2, k)
	}
}

// With FailSafe, the reloader of an invalidated value falls back on it;
// without, it gets the error.
func TestFailSafeInvalidated(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	for _, fs := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprint("FailSafe=", fs), func(t *testing.T) {
			c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{FailSafe: fs, Prefix: fmt.Sprint(fs)})
			require.NoError(t, c.Set(ctx, "k", "old", time.Minute))
			require.NoError(t, c.Invalidate(ctx, "k"))
			v, err := objcache.GetOrLoad(ctx, c, "k", time.Minute, func(context.Context) (string, error) { return "", errDBDown })
			if fs == 0 {
				require.ErrorIs(t, err, errDBDown)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "old", v)
			assert.Equal(t, uint64(1), c.Stats().FailSafeServed)
		})
	}
}

// In a batch, the keys whose reload failed fall back on their fail-safe
// values; keys with none fail.
func TestFailSafeMulti(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		clk := newClock()
		c := newCache(t, srv.Addr, proto, objcache.Options{FailSafe: time.Hour})
		objcache.SetClock(c, clk.Now, nil)
		_, err := objcache.GetOrLoadMulti(ctx, c, []string{"a", "b"}, time.Minute, (&recorder{}).load)
		require.NoError(t, err)
		clk.Add(2 * time.Minute)
		r := &recorder{err: errDBDown}
		got, err := objcache.GetOrLoadMulti(ctx, c, []string{"a", "b", "new"}, time.Minute, r.load)
		assert.Equal(t, values("a", "b"), got)
		var me memclient.MultiError
		require.ErrorAs(t, err, &me)
		assert.Equal(t, []string{"new"}, collectKeys(me))
		assert.Equal(t, [][]string{{"a", "b", "new"}}, r.Calls(), "one call for the reloads and the miss")
		assert.Equal(t, uint64(2), c.Stats().FailSafeServed)
	})
}

func collectKeys(me memclient.MultiError) []string {
	var out []string
	for k := range mapsKeys(me) {
		out = append(out, k)
	}
	return out
}

// blocking is a loader held until released; it reports each start.
type blocking struct {
	started chan string // the key, each time a load starts
	release chan struct{}
	once    sync.Once
	v       string
}

func newBlocking(t *testing.T, v string) *blocking {
	b := &blocking{started: make(chan string, 100), release: make(chan struct{}), v: v}
	t.Cleanup(b.unblock)
	return b
}

func (b *blocking) unblock() { b.once.Do(func() { close(b.release) }) }

func (b *blocking) loadKey(key string) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		b.started <- key
		select {
		case <-b.release:
			return b.v, nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// LoadTimeout: a reload slower than it leaves the caller with the
// fail-safe value; it goes on in the background and its value is stored.
func TestLoadTimeout(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		clk := newClock()
		c := newCache(t, srv.Addr, proto, objcache.Options{FailSafe: time.Hour, LoadTimeout: 10 * time.Millisecond})
		t.Cleanup(func() { _ = c.Close() })
		objcache.SetClock(c, clk.Now, nil)
		_, err := objcache.GetOrLoad(ctx, c, "k", time.Minute, func(context.Context) (string, error) { return "old", nil })
		require.NoError(t, err)
		clk.Add(2 * time.Minute)

		slow := newBlocking(t, "new")
		v, err := objcache.GetOrLoad(ctx, c, "k", time.Minute, slow.loadKey("k"))
		require.NoError(t, err)
		assert.Equal(t, "old", v, "the caller did not wait for the slow load")
		assert.Equal(t, "k", <-slow.started)
		st := c.Stats()
		assert.Equal(t, uint64(1), st.BackgroundLoads)
		assert.Equal(t, uint64(1), st.FailSafeServed)

		slow.unblock()
		waitUntil(t, "the background load stored its value", func() bool {
			v, err := objcache.Get[string](ctx, c, "k")
			return err == nil && v == "new"
		})

		// A load with nothing to fall back on is waited for.
		cold := newBlocking(t, "cold")
		cold.unblock()
		v, err = objcache.GetOrLoad(ctx, c, "cold", time.Minute, cold.loadKey("cold"))
		require.NoError(t, err)
		assert.Equal(t, "cold", v)
		assert.Equal(t, uint64(1), c.Stats().BackgroundLoads)
	})
}

// Callers of other processes waiting for a slow reload of a fail-safe
// value get the value after LoadTimeout too.
func TestLoadTimeoutWaiters(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	clk := newClock()
	opts := objcache.Options{FailSafe: time.Hour, LoadTimeout: 10 * time.Millisecond, LeaseWait: time.Hour}
	a := newCache(t, srv.Addr, memclient.ProtocolMeta, opts)
	b := newCache(t, srv.Addr, memclient.ProtocolMeta, opts)
	// b's polls pass time on the test clock.
	sleep := func(_ context.Context, d time.Duration) error { clk.Add(d); return nil }
	objcache.SetClock(a, clk.Now, nil)
	objcache.SetClock(b, clk.Now, sleep)
	for _, c := range []*objcache.Cache{a, b} {
		t.Cleanup(func() { _ = c.Close() })
	}
	_, err := objcache.GetOrLoad(ctx, a, "k", time.Minute, func(context.Context) (string, error) { return "old", nil })
	require.NoError(t, err)
	clk.Add(2 * time.Minute)
	slow := newBlocking(t, "new")
	v, err := objcache.GetOrLoad(ctx, a, "k", time.Minute, slow.loadKey("k"))
	require.NoError(t, err)
	require.Equal(t, "old", v)
	v, err = objcache.GetOrLoad(ctx, b, "k", time.Minute, func(context.Context) (string, error) {
		return "", errors.New("b must not load: a is loading")
	})
	require.NoError(t, err)
	assert.Equal(t, "old", v)
	st := b.Stats()
	assert.Equal(t, uint64(1), st.LeaseWaits)
	assert.Equal(t, uint64(1), st.FailSafeServed)
}

// At most MaxBackgroundLoads loads go on in the background; a caller that
// finds them all taken waits for its own load.
func TestLoadTimeoutBounded(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	clk := newClock()
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{FailSafe: time.Hour, LoadTimeout: 10 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	objcache.SetClock(c, clk.Now, nil)
	n := objcache.MaxBackgroundLoads + 1
	for i := range n {
		_, err := objcache.GetOrLoad(ctx, c, fmt.Sprint(i), time.Minute, func(context.Context) (string, error) { return "old", nil })
		require.NoError(t, err)
	}
	clk.Add(2 * time.Minute)
	slow := newBlocking(t, "new")
	res := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := objcache.GetOrLoad(ctx, c, fmt.Sprint(i), time.Minute, slow.loadKey(fmt.Sprint(i)))
			if err != nil {
				v = err.Error()
			}
			res <- v
		})
	}
	for range n {
		<-slow.started
	}
	// Every load has started; all but one caller come back with the
	// old value while the loads are held.
	for range n - 1 {
		assert.Equal(t, "old", <-res)
	}
	slow.unblock()
	wg.Wait()
	assert.Equal(t, "new", <-res, "the caller with no background slot waited for its load")
	assert.Equal(t, uint64(objcache.MaxBackgroundLoads), c.Stats().BackgroundLoads)
}

// Close stops the background loads (their ctx ends) and waits for them;
// afterwards a soft timeout starts none.
func TestCloseStopsBackgroundLoads(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	clk := newClock()
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{FailSafe: time.Hour, LoadTimeout: 10 * time.Millisecond})
	objcache.SetClock(c, clk.Now, nil)
	for _, k := range []string{"a", "b"} {
		_, err := objcache.GetOrLoad(ctx, c, k, time.Minute, func(context.Context) (string, error) { return "old", nil })
		require.NoError(t, err)
	}
	clk.Add(2 * time.Minute)
	var stopped atomic.Bool
	v, err := objcache.GetOrLoad(ctx, c, "a", time.Minute, func(ctx context.Context) (string, error) {
		<-ctx.Done() // a load that only ends when told to
		stopped.Store(true)
		return "", ctx.Err()
	})
	require.NoError(t, err)
	assert.Equal(t, "old", v)
	require.NoError(t, c.Close())
	assert.True(t, stopped.Load(), "Close returned after the background load")
	require.NoError(t, c.Close(), "twice is fine")

	later := newBlocking(t, "new")
	later.unblock()
	v, err = objcache.GetOrLoad(ctx, c, "b", time.Minute, later.loadKey("b"))
	require.NoError(t, err)
	assert.Equal(t, "new", v, "after Close the caller waits for its load")
	assert.Equal(t, uint64(1), c.Stats().BackgroundLoads)
}

// EarlyRefreshBeta: the stored load duration and the XFetch rule decide
// when a hit refreshes; one caller refreshes while the others keep the
// current value.
func TestEarlyRefreshBeta(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		clk := newClock()
		var draw atomic.Value // float64
		draw.Store(1.0)
		opts := objcache.Options{EarlyRefreshBeta: 1}
		a := newCache(t, srv.Addr, proto, opts)
		b := newCache(t, srv.Addr, proto, opts)
		for _, c := range []*objcache.Cache{a, b} {
			objcache.SetClock(c, clk.Now, nil)
			objcache.SetRand(c, func() float64 { return draw.Load().(float64) })
		}
		// A load that takes 2s (on the test clock).
		_, err := objcache.GetOrLoad(ctx, a, "k", time.Minute, func(context.Context) (string, error) {
			clk.Add(2 * time.Second)
			return "v1", nil
		})
		require.NoError(t, err)
		clk.Add(30 * time.Second) // 28s left

		notCalled := func(context.Context) (string, error) { return "", errors.New("no refresh expected") }
		// -ln(1) = 0: no refresh before expiry.
		v, err := objcache.GetOrLoad(ctx, a, "k", time.Minute, notCalled)
		require.NoError(t, err)
		assert.Equal(t, "v1", v)
		// 2s x 1 x -ln(e^-10) = 20s < 28s: still none.
		draw.Store(math.Exp(-10))
		v, err = objcache.GetOrLoad(ctx, a, "k", time.Minute, notCalled)
		require.NoError(t, err)
		assert.Equal(t, "v1", v)
		assert.Zero(t, a.Stats().Refreshes)

		// 2s x 1 x -ln(e^-15) = 30s >= 28s: refresh, under the lease.
		draw.Store(math.Exp(-15))
		slow := newBlocking(t, "v2")
		done := make(chan string, 1)
		go func() {
			v, err := objcache.GetOrLoad(ctx, a, "k", time.Minute, slow.loadKey("k"))
			if err != nil {
				v = err.Error()
			}
			done <- v
		}()
		<-slow.started
		v, err = objcache.GetOrLoad(ctx, b, "k", time.Minute, notCalled)
		require.NoError(t, err, "another process that draws a refresh too does not get the lease")
		assert.Equal(t, "v1", v)
		slow.unblock()
		assert.Equal(t, "v2", <-done, "the refresher gets its new value")
		assert.Equal(t, uint64(1), a.Stats().Refreshes)
		assert.Zero(t, b.Stats().Refreshes)
		v, err = objcache.GetOrLoad(ctx, b, "k", time.Minute, notCalled)
		require.NoError(t, err)
		assert.Equal(t, "v2", v)
	})
}

// With the envelope, a stored value is never empty: an empty []byte reads
// back as itself, not as a lease placeholder.
func TestEmptyValue(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{})
		require.NoError(t, c.Set(ctx, "empty", []byte{}, 0))
		got, err := objcache.Get[[]byte](ctx, c, "empty")
		require.NoError(t, err)
		assert.Empty(t, got)
		s, err := objcache.Get[string](ctx, c, "empty")
		require.NoError(t, err)
		assert.Equal(t, "", s)

		loads := 0
		for range 2 {
			v, err := objcache.GetOrLoad(ctx, c, "loaded", 0, func(context.Context) ([]byte, error) {
				loads++
				return []byte{}, nil
			})
			require.NoError(t, err)
			assert.Empty(t, v)
		}
		assert.Equal(t, 1, loads, "an empty value is cached like any other")
	})
}
