package objcache_test

import (
	"context"
	"crypto/rand"
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

// Defect 1 of issue 12: after Invalidate, the callers in the process that
// won the reload waited for it (the reload ran inside the per-process
// singleflight), while the other processes got the stale value at once.
// 4 processes x 25 goroutines ask for a key just invalidated; the loader
// blocks until the test has seen every other caller, in every process,
// return the stale value. Before the fix the 24 goroutines that shared the
// reloader's flight never returned while it ran.
func TestInvalidateReloaderProcessServesStale(t *testing.T) {
	leakcheck.Check(t)
	const perProcess = 25
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	cs := caches(t, processes, srv.Addr, memclient.ProtocolMeta, objcache.Options{})
	require.NoError(t, cs[0].Set(ctx, "k", "old", time.Minute))
	require.NoError(t, cs[0].Invalidate(ctx, "k"))

	var loads atomic.Int32
	loading, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // runs second:
	t.Cleanup(unblock) // a failing test must not leave the loader blocked
	load := func(context.Context) (string, error) {
		if loads.Add(1) == 1 {
			close(loading)
		}
		<-release
		return "new", nil
	}

	type result struct {
		process int
		v       string
		err     error
	}
	results := make(chan result, processes*perProcess)
	start := make(chan struct{})
	for p, c := range cs {
		for range perProcess {
			wg.Go(func() {
				<-start
				v, err := objcache.GetOrLoad(ctx, c, "k", time.Minute, load)
				results <- result{p, v, err}
			})
		}
	}
	close(start)

	bound := time.After(10 * time.Second) // a bound for the failure case, not a timing assertion
	select {
	case <-loading:
	case <-bound:
		t.Fatal("nobody reloaded the invalidated key")
	}
	// While the reload is held, every caller but the one running it
	// returns the stale value.
	perProc := make([]int, processes)
	for i := range processes*perProcess - 1 {
		select {
		case r := <-results:
			require.NoError(t, r.err)
			require.Equal(t, "old", r.v, "a caller got something else than the stale value during the reload")
			perProc[r.process]++
		case <-bound:
			t.Fatalf("only %d of %d callers returned while the reload ran (by process: %v): the others wait for it",
				i, processes*perProcess-1, perProc)
		}
	}
	unblock()
	last := <-results
	require.NoError(t, last.err)
	assert.Equal(t, "new", last.v, "the reloader gets what it loaded")
	perProc[last.process]++
	assert.Equal(t, []int{perProcess, perProcess, perProcess, perProcess}, perProc)
	assert.Equal(t, int32(1), loads.Load(), "one reload in all")
	assert.Equal(t, uint64(processes*perProcess-1), sum(cs).StaleServed)

	v, err := objcache.Get[string](ctx, cs[1], "k")
	require.NoError(t, err)
	assert.Equal(t, "new", v)
}

// Defect 2 of issue 12: a loaded value too large for memcached was
// returned, but its lease placeholder stayed behind, so the next caller
// waited the whole LeaseWait for a value that would never come. Now the
// failed store releases the lease: the next caller loads at once.
func TestTooLargeValueReleasesLease(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		big := make([]byte, 2<<20) // random: no compressor shrinks it under 1 MiB
		_, _ = rand.Read(big)
		var loads atomic.Int32
		load := func(context.Context) ([]byte, error) {
			loads.Add(1)
			return big, nil
		}
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{})
		v, err := objcache.GetOrLoad(ctx, c, "big", time.Minute, load)
		require.NoError(t, err)
		assert.Equal(t, big, v, "the caller gets its value even though it cannot be cached")
		assert.Equal(t, uint64(1), c.Stats().Errors, "the failed store is counted")

		// Another process, willing to wait an hour for a loader: it must
		// not wait at all. The deadline only bounds the failure case.
		other := newCache(t, srv.Addr, proto, objcache.Options{LeaseWait: time.Hour})
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		v, err = objcache.GetOrLoad(bctx, other, "big", time.Minute, load)
		require.NoError(t, err, "waited for a lease nobody holds: %+v", other.Stats())
		assert.Equal(t, big, v)
		assert.Equal(t, uint64(0), other.Stats().LeaseWaits, "no lease was left behind")
		assert.Equal(t, int32(2), loads.Load())
	})
}
