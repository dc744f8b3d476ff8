package otterlocal_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/adapters/otterlocal"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// fakeClock is a clock the test moves, shared by a tier and its Cache.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// newTier returns a tier on clock, closed when the test ends.
func newTier(t testing.TB, cfg otterlocal.Config, clock *fakeClock) *otterlocal.Cache {
	t.Helper()
	var now func() time.Time // nil: New's own coarse clock
	if clock != nil {
		now = clock.now
	}
	l, err := otterlocal.NewWithClock(cfg, now)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// process is one process sharing the memcached: its own client, Cache and
// local tier, the tier on the test's clock (nil: the real one). objcache
// keeps the real clock: the values here live an hour, far beyond what the
// tests' clock moves.
func process(t testing.TB, addr string, cfg otterlocal.Config, clock *fakeClock, opts objcache.Options) (*objcache.Cache, *otterlocal.Cache) {
	t.Helper()
	cl, err := memclient.New(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	local := newTier(t, cfg, clock)
	opts.Local = local
	c, err := objcache.New(cl, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c, local
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []otterlocal.Config{
		{TTL: -time.Second}, {Capacity: -1}, {AdmitAfter: -1}, {TTL: otterlocal.MaxTTL + time.Millisecond},
	} {
		_, err := otterlocal.New(cfg)
		assert.Error(t, err, "%+v", cfg)
	}
	l, err := otterlocal.New(otterlocal.Config{TTL: otterlocal.MaxTTL})
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

// A key is kept from its AdmitAfter-th offer on, for the TTL it is
// offered with, never longer than the tier's own; Delete drops it at
// once.
func TestAdmissionAndTTL(t *testing.T) {
	leakcheck.Check(t)
	clock := newFakeClock()
	l := newTier(t, otterlocal.Config{TTL: 2 * time.Second}, clock)
	v := objcache.LocalValue{Data: []byte("v"), Flags: 16}

	l.Set("k", v, 0)
	_, ok := l.Get("k")
	assert.False(t, ok, "offered once: not hot yet")
	l.Set("k", v, 0)
	got, ok := l.Get("k")
	require.True(t, ok, "offered twice: kept")
	assert.Equal(t, v, got)

	clock.advance(1999 * time.Millisecond)
	_, ok = l.Get("k")
	assert.True(t, ok)
	clock.advance(time.Millisecond)
	_, ok = l.Get("k")
	assert.False(t, ok, "the tier's TTL bounds a TTL of 0")

	l.Set("short", v, 0)
	l.Set("short", v, 500*time.Millisecond)
	clock.advance(500 * time.Millisecond)
	_, ok = l.Get("short")
	assert.False(t, ok, "the value's own TTL, shorter")

	l.Set("long", v, time.Hour)
	l.Set("long", v, time.Hour)
	clock.advance(2 * time.Second)
	_, ok = l.Get("long")
	assert.False(t, ok, "never longer than the tier's TTL")

	l.Set("d", v, 0)
	l.Set("d", v, 0)
	_, ok = l.Get("d")
	require.True(t, ok)
	l.Delete("d")
	_, ok = l.Get("d")
	assert.False(t, ok)

	every := newTier(t, otterlocal.Config{AdmitAfter: 1}, clock)
	every.Set("k", v, 0)
	_, ok = every.Get("k")
	assert.True(t, ok, "AdmitAfter 1 keeps every key")
}

// A scan of cold keys does not flush the hot ones, through objcache
// against memcached: keys read once are not even admitted, and keys read
// twice (admitted) do not evict keys read all the time (otter's TinyLFU).
func TestScanLeavesHotKeys(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	const capacity, hot, cold = 200, 20, 4000
	c, local := process(t, srv.Addr, otterlocal.Config{Capacity: capacity, TTL: otterlocal.MaxTTL}, newFakeClock(), objcache.Options{Prefix: "scan:"})
	load := func(ctx context.Context) ([]byte, error) { return []byte("value"), nil }
	readHot := func() {
		for i := range hot {
			_, err := objcache.GetOrLoad(ctx, c, fmt.Sprint("hot", i), 0, load)
			require.NoError(t, err)
		}
	}
	checkHot := func(when string) {
		t.Helper()
		before := c.Stats().LocalHits
		for i := range hot {
			_, ok := local.Get(fmt.Sprint("scan:hot", i))
			assert.True(t, ok, "hot%d kept %s", i, when)
		}
		readHot()
		assert.Equal(t, before+hot, c.Stats().LocalHits, "every hot key served locally %s", when)
	}
	for range 10 {
		readHot()
	}
	checkHot("before the scans")

	// The cold keys, stored by another process.
	cl := newClient(t, srv.Addr)
	for i := range cold {
		require.NoError(t, cl.Set(ctx, &memclient.Item{Key: fmt.Sprint("scan:cold", i), Value: []byte("cold")}))
	}
	readCold := func(i int) {
		_, err := objcache.Get[[]byte](ctx, c, fmt.Sprint("cold", i))
		require.NoError(t, err)
	}

	// A scan reading each key once, 20 times the tier's capacity: nothing
	// else happens meanwhile, and the hot keys stay.
	for i := range cold {
		readCold(i)
	}
	checkHot("after a scan of keys read once")
	kept := 0
	for i := range cold {
		if _, ok := local.Get(fmt.Sprint("scan:cold", i)); ok {
			kept++
		}
	}
	assert.Less(t, kept, cold/20, "keys read once are (nearly all) not admitted")

	// A scan reading each key twice in a row (admitted), while the hot
	// keys go on being read, more slowly than the scan goes.
	for i := range cold {
		readCold(i)
		readCold(i)
		if i%100 == 99 {
			readHot()
		}
	}
	checkHot("after a scan of keys read twice")
	assert.LessOrEqual(t, local.Len(), capacity+capacity/10)
}

// Two processes (two clients, two Caches, each with its own tier, one
// clock): the other process's changes are seen here within the tier's
// TTL and not before; this process's own writes at once.
func TestStalenessBoundAcrossProcesses(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	clock := newFakeClock()
	const ttl = 2 * time.Second
	a, _ := process(t, srv.Addr, otterlocal.Config{TTL: ttl}, clock, objcache.Options{Prefix: "p:"})
	b, _ := process(t, srv.Addr, otterlocal.Config{TTL: ttl}, clock, objcache.Options{Prefix: "p:"})
	read := func(c *objcache.Cache) string {
		t.Helper()
		v, err := objcache.GetOrLoad(ctx, c, "k", time.Hour, func(context.Context) (string, error) { return "loaded", nil })
		require.NoError(t, err)
		return v
	}
	for range 3 { // loaded, offered twice: kept in both tiers
		assert.Equal(t, "loaded", read(a))
		assert.Equal(t, "loaded", read(b))
	}
	hits := a.Stats().LocalHits
	require.NoError(t, b.Set(ctx, "k", "b's", time.Hour))
	assert.Equal(t, "b's", read(b), "b sees its own write at once")

	// a may serve its copy until the tier's TTL, not past it.
	for _, step := range []time.Duration{0, ttl / 2, ttl/2 - time.Millisecond} {
		clock.advance(step)
		assert.Equal(t, "loaded", read(a), "within the bound, a's local copy")
	}
	assert.Equal(t, hits+3, a.Stats().LocalHits)
	clock.advance(time.Millisecond)
	assert.Equal(t, "b's", read(a), "at the bound, memcached's value")

	// And a's own write, at once, in a; b within the bound.
	for range 2 {
		read(a)
		read(b)
	}
	require.NoError(t, a.Delete(ctx, "k"))
	assert.Equal(t, "loaded", read(a), "a's delete dropped its copy: loaded anew")
	clock.advance(ttl)
	assert.Equal(t, "loaded", read(b))
}

// Many goroutines reading, one writing: what the readers see after the
// writer's Set returned, through the same Cache, is never older than it.
func TestOwnWritesUnderConcurrentReads(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, _ := process(t, srv.Addr, otterlocal.Config{TTL: otterlocal.MaxTTL, AdmitAfter: 1}, nil, objcache.Options{})
	require.NoError(t, c.Set(ctx, "n", 0, 0))
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := written.Load()
				got, err := objcache.Get[int64](ctx, c, "n")
				if !assert.NoError(t, err) {
					return
				}
				if !assert.GreaterOrEqual(t, got, floor, "a value older than a finished write") {
					return
				}
			}
		})
	}
	for i := int64(1); i <= 300; i++ {
		require.NoError(t, c.Set(ctx, "n", i, 0))
		written.Store(i)
	}
	close(stop)
	wg.Wait()
}

func newClient(t testing.TB, addr string) *memclient.Client {
	t.Helper()
	cl, err := memclient.New(addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}
