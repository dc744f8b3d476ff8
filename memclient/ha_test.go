package memclient_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/hostile"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// Tests of surviving a lost server: deletes owed and replayed, the gutter
// pool, replicas, warm-up after a server list change, and working behind
// a proxy. Real memcached processes throughout.

// haConfig is a client configuration over servers with fast recovery.
func haConfig(m mode, servers ...*memcachetest.Server) memclient.Config {
	cfg := memclient.Config{
		Protocol:         m.proto,
		Timeout:          2 * time.Second,
		FailureThreshold: 2,
		RetryInterval:    20 * time.Millisecond,
		MaxRetryInterval: 100 * time.Millisecond,
	}
	for _, s := range servers {
		cfg.Servers = append(cfg.Servers, memclient.Server{Addr: s.Addr})
	}
	return cfg
}

func newHAClient(t *testing.T, cfg memclient.Config) *memclient.Client {
	t.Helper()
	c, err := memclient.NewFromConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// direct returns a client of the one server at addr: what it holds.
func direct(t *testing.T, addr string) *memclient.Client {
	t.Helper()
	c, err := memclient.New(addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// keyOwnedBy returns a key that c places on servers[i] (read back
// through a direct client of each server).
func keysOn(t *testing.T, c *memclient.Client, srv *memcachetest.Server, n int, prefix string) []string {
	t.Helper()
	d := direct(t, srv.Addr)
	ctx := ctxT(t)
	var out []string
	for i := 0; len(out) < n && i < 10000; i++ {
		k := prefix + strconv.Itoa(i)
		require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("probe")}))
		if _, err := d.Get(ctx, k); err == nil {
			out = append(out, k)
		}
		require.NoError(t, c.Delete(ctx, k))
	}
	require.Len(t, out, n)
	return out
}

func waitUp(t *testing.T, c *memclient.Client, addr string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, st := range c.ServerStatus() {
			if st.Addr == addr {
				return st.Up
			}
		}
		return false
	}, 20*time.Second, 5*time.Millisecond, "server %s never came back", addr)
}

func statusOf(c *memclient.Client, addr string) memclient.ServerStatus {
	for _, st := range c.ServerStatus() {
		if st.Addr == addr {
			return st
		}
	}
	return memclient.ServerStatus{}
}

// TestDeleteReplayedAfterFreeze: a delete that fails because its server
// is frozen (SIGSTOP: only unreachable, its data intact) is owed to it,
// and the server serves nothing until the delete is replayed: once it is
// back, the deleted value is gone. It used to come back with the server.
func TestDeleteReplayedAfterFreeze(t *testing.T) {
	for _, m := range plainModes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srv := memcachetest.Start(t, memcachetest.Options{})
			c := newHAClient(t, haConfig(m, srv))
			ctx := ctxT(t)
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "gone", Value: []byte("old")}))
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "kept", Value: []byte("kept")}))

			srv.Freeze()
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			err := c.Delete(short, "gone")
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
			st := statusOf(c, srv.Addr)
			assert.Equal(t, 1, st.PendingDeletes)
			assert.False(t, st.Up, "a server owing a delete does not serve")
			_, err = c.Get(ctx, "kept")
			require.ErrorIs(t, err, memclient.ErrServerUnavailable)

			srv.Resume()
			waitUp(t, c, srv.Addr)
			_, err = c.Get(ctx, "gone")
			require.ErrorIs(t, err, memclient.ErrCacheMiss, "the frozen server served a value deleted meanwhile")
			it, err := c.Get(ctx, "kept")
			require.NoError(t, err)
			assert.Equal(t, "kept", string(it.Value))
			assert.Zero(t, statusOf(c, srv.Addr).PendingDeletes)
		})
	}
}

// TestOwedDeletesOverflow: past MaxPendingDeletes the owed deletes are
// not kept one by one: the server is flushed before it serves again.
func TestOwedDeletesOverflow(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	cfg := haConfig(modes[0], srv)
	cfg.MaxPendingDeletes = 2
	c := newHAClient(t, cfg)
	ctx := ctxT(t)
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "other", Value: []byte("x")}))
	srv.Freeze()
	for i := 0; i < 4; i++ {
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_ = c.Delete(short, fmt.Sprint("d", i)) // bypassed after the first: owed at once
		cancel()
	}
	st := statusOf(c, srv.Addr)
	assert.NotZero(t, st.OverflowedDeletes)
	srv.Resume()
	waitUp(t, c, srv.Addr)
	_, err := c.Get(ctx, "other")
	require.ErrorIs(t, err, memclient.ErrCacheMiss, "flushed before use")
}

// TestGutter: the keys of a dead server go to the gutter, TTLs clamped to
// GutterTTL (never-expiring ones included); counters, appends and CAS
// fail instead; when the server comes back its keys return to it, after
// the deletes owed to it.
func TestGutter(t *testing.T) {
	for _, m := range plainModes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
			gut := memcachetest.Start(t, memcachetest.Options{})
			cfg := haConfig(m, srvs...)
			cfg.Gutter = []memclient.Server{{Addr: gut.Addr}}
			cfg.GutterTTL = 30 * time.Second
			c := newHAClient(t, cfg)
			ctx := ctxT(t)
			keys := keysOn(t, c, srvs[0], 3, "g")
			k := keys[0]
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("v1")}))
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "counter", Value: []byte("1")}))

			srvs[0].Kill()
			// The first read fails on the dead server and is answered by
			// the gutter, which has nothing yet: a miss, not an error.
			_, err := c.Get(ctx, k)
			require.ErrorIs(t, err, memclient.ErrCacheMiss)
			require.Eventually(t, func() bool {
				_, err := c.Get(ctx, k)
				require.ErrorIs(t, err, memclient.ErrCacheMiss)
				return !statusOf(c, srvs[0].Addr).Up
			}, 10*time.Second, time.Millisecond)

			// Cache-aside fills the gutter, with its TTL clamped.
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("v2")})) // never expires elsewhere
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: keys[1], Value: []byte("w"), TTL: time.Hour}))
			it, err := c.Get(ctx, k)
			require.NoError(t, err)
			assert.Equal(t, "v2", string(it.Value))
			got, err := c.GetMulti(ctx, keys[:2])
			require.NoError(t, err)
			assert.Len(t, got, 2)
			if m.proto == memclient.ProtocolMeta {
				g := direct(t, gut.Addr)
				for _, key := range keys[:2] {
					l, err := g.GetLease(ctx, key, memclient.LeaseOptions{})
					require.NoError(t, err, "the value is in the gutter")
					assert.Greater(t, l.TTL, time.Duration(0))
					assert.LessOrEqual(t, l.TTL, cfg.GutterTTL, "TTL clamped to GutterTTL")
				}
			}
			require.NoError(t, c.Delete(ctx, keys[1]))
			_, err = c.Get(ctx, keys[1])
			require.ErrorIs(t, err, memclient.ErrCacheMiss, "deletes go to the gutter too")

			// What an empty gutter would get wrong is refused.
			ck := keys[2]
			_, err = c.Increment(ctx, ck, 1)
			require.ErrorIs(t, err, memclient.ErrServerUnavailable)
			require.ErrorIs(t, c.Append(ctx, &memclient.Item{Key: ck, Value: []byte("x")}), memclient.ErrServerUnavailable)
			require.ErrorIs(t, c.CompareAndSwap(ctx, &memclient.Item{Key: ck, Value: []byte("x"), CAS: 1}), memclient.ErrServerUnavailable)

			sts := c.ServerStatus()
			require.Len(t, sts, 4)
			assert.True(t, sts[3].Gutter)
			assert.Equal(t, gut.Addr, sts[3].Addr)
			assert.Equal(t, 2, statusOf(c, srvs[0].Addr).PendingDeletes, "k and keys[1] owed to the dead server")

			require.NoError(t, srvs[0].Restart())
			waitUp(t, c, srvs[0].Addr)
			_, err = c.Get(ctx, k)
			require.ErrorIs(t, err, memclient.ErrCacheMiss, "its keys are back on their (empty) server")
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("v3")}))
			it, err = direct(t, srvs[0].Addr).Get(ctx, k)
			require.NoError(t, err)
			assert.Equal(t, "v3", string(it.Value))
		})
	}
}

// TestGutterNoStaleAfterPartition: a server only unreachable (frozen)
// while its keys were written in the gutter never serves its old value
// when it comes back: the writes were owed to it as deletes.
func TestGutterNoStaleAfterPartition(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	gut := memcachetest.Start(t, memcachetest.Options{})
	cfg := haConfig(modes[0], srvs...)
	cfg.Gutter = []memclient.Server{{Addr: gut.Addr}}
	cfg.Timeout = 300 * time.Millisecond
	c := newHAClient(t, cfg)
	ctx := ctxT(t)
	k := keysOn(t, c, srvs[0], 1, "p")[0]
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("old")}))

	srvs[0].Freeze()
	require.Eventually(t, func() bool {
		_, _ = c.Get(ctx, k) // times out until the server is marked down
		return !statusOf(c, srvs[0].Addr).Up
	}, 20*time.Second, time.Millisecond)
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("new")}))
	it, err := c.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, "new", string(it.Value))

	srvs[0].Resume()
	waitUp(t, c, srvs[0].Addr)
	it, err = c.Get(ctx, k)
	if err == nil {
		assert.NotEqual(t, "old", string(it.Value), "a value changed while its server was bypassed came back")
	} else {
		require.ErrorIs(t, err, memclient.ErrCacheMiss)
	}
}

// cacheAside runs goroutines of cache-aside reads (get; on a miss, load
// and set) over keys for d, and counts the errors returned to callers.
func cacheAside(c *memclient.Client, keys []string, goroutines int, d time.Duration) (ops, errs int64) {
	var wg sync.WaitGroup
	var nops, nerrs atomic.Int64
	stop := time.Now().Add(d)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; time.Now().Before(stop) && i < 1_000_000; i++ {
				k := keys[i%len(keys)]
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_, err := c.Get(ctx, k)
				if errors.Is(err, memclient.ErrCacheMiss) {
					err = c.Set(ctx, &memclient.Item{Key: k, Value: []byte("loaded:" + k), TTL: time.Minute})
				}
				cancel()
				nops.Add(1)
				if err != nil {
					nerrs.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return nops.Load(), nerrs.Load()
}

// TestGutterCutsErrors reproduces, scaled down, the gutter's result in
// "Scaling Memcache at Facebook": with one of three servers killed under
// a cache-aside load, the errors returned to callers in the time after
// the kill drop by at least 90% against no gutter. (examples/cluster
// measures it over 10 s.)
func TestGutterCutsErrors(t *testing.T) {
	leakcheck.Check(t)
	run := func(gutter bool) (ops, errs int64) {
		srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
		cfg := haConfig(modes[0], srvs...)
		if gutter {
			g := memcachetest.Start(t, memcachetest.Options{})
			cfg.Gutter = []memclient.Server{{Addr: g.Addr}}
		}
		c := newHAClient(t, cfg)
		keys := make([]string, 300)
		for i := range keys {
			keys[i] = "aside:" + strconv.Itoa(i)
		}
		cacheAside(c, keys, 8, 200*time.Millisecond) // warm
		srvs[1].Kill()
		return cacheAside(c, keys, 8, time.Second)
	}
	opsNo, errsNo := run(false)
	opsG, errsG := run(true)
	t.Logf("after the kill: without a gutter %d errors in %d calls; with one %d in %d", errsNo, opsNo, errsG, opsG)
	require.NotZero(t, errsNo, "the kill caused no error without a gutter")
	rateNo := float64(errsNo) / float64(opsNo)
	rateG := float64(errsG) / float64(opsG)
	assert.LessOrEqual(t, rateG, rateNo/10, "the gutter cut errors by less than 90%%")
}

// TestReplicas: every key on two of three servers; writes reach both,
// reads spread over both and fall back on a miss or a failure,
// CompareAndSwap goes to the replica that served the item and is copied
// to the other.
func TestReplicas(t *testing.T) {
	for _, m := range plainModes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
			cfg := haConfig(m, srvs...)
			cfg.Replicas = 2
			c := newHAClient(t, cfg)
			ctx := ctxT(t)
			directs := make([]*memclient.Client, len(srvs))
			for i, s := range srvs {
				directs[i] = direct(t, s.Addr)
			}
			holders := func(k string) (idx []int, vals []string) {
				for i, d := range directs {
					if it, err := d.Get(ctx, k); err == nil {
						idx = append(idx, i)
						vals = append(vals, string(it.Value))
					}
				}
				return idx, vals
			}
			for i := 0; i < 30; i++ {
				k := fmt.Sprint("r", i)
				require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("v" + k)}))
				idx, vals := holders(k)
				require.Len(t, idx, 2, "key %s on two servers", k)
				assert.Equal(t, []string{"v" + k, "v" + k}, vals)
			}

			// Reads spread over both replicas.
			hot := "r0"
			idx, _ := holders(hot)
			before := make([]int, 2)
			for j, i := range idx {
				before[j] = getHits(t, directs[i], srvs[i].Addr)
			}
			for i := 0; i < 300; i++ {
				it, err := c.Get(ctx, hot)
				require.NoError(t, err)
				require.Equal(t, "v"+hot, string(it.Value))
			}
			for j, i := range idx {
				hits := getHits(t, directs[i], srvs[i].Addr) - before[j]
				assert.Greater(t, hits, 60, "replica %d served %d of 300 reads", i, hits)
			}

			// A miss on one replica falls back to the other.
			require.NoError(t, directs[idx[0]].Delete(ctx, hot))
			for i := 0; i < 20; i++ {
				it, err := c.Get(ctx, hot)
				require.NoError(t, err)
				require.Equal(t, "v"+hot, string(it.Value))
			}
			got, err := c.GetMulti(ctx, []string{hot, "r1", "r2"})
			require.NoError(t, err)
			require.Len(t, got, 3)

			// CompareAndSwap on the replica that served the item, then copied.
			it, err := c.Get(ctx, "r1")
			require.NoError(t, err)
			it.Value = []byte("swapped")
			require.NoError(t, c.CompareAndSwap(ctx, it))
			_, vals := holders("r1")
			assert.Equal(t, []string{"swapped", "swapped"}, vals)

			// Counters move on both.
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "n", Value: []byte("5")}))
			n, err := c.Increment(ctx, "n", 2)
			require.NoError(t, err)
			assert.Equal(t, uint64(7), n)
			_, vals = holders("n")
			assert.Equal(t, []string{"7", "7"}, vals)

			// A dead replica: reads and writes carry on with the other.
			srvs[2].Kill()
			for i := 2; i < 30; i++ { // r0 lost a copy above; r1 was swapped
				k := fmt.Sprint("r", i)
				it, err := c.Get(ctx, k)
				require.NoError(t, err, "read of %s with a replica dead", k)
				assert.Equal(t, "v"+k, string(it.Value))
			}
			require.Eventually(t, func() bool {
				_, err := c.Get(ctx, "r5")
				require.NoError(t, err)
				return !statusOf(c, srvs[2].Addr).Up
			}, 10*time.Second, time.Millisecond)
			for i := 0; i < 30; i++ {
				k := fmt.Sprint("r", i)
				require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("again")}), "write of %s with a replica down", k)
			}
		})
	}
}

// getHits returns the get_hits counter of the server at addr.
func getHits(t *testing.T, d *memclient.Client, addr string) int {
	t.Helper()
	st, err := d.Stats(ctxT(t))
	require.NoError(t, err)
	n, err := strconv.Atoi(st[addr]["get_hits"])
	require.NoError(t, err)
	return n
}

// TestReplicaWriteFailureNamed: a write that fails on one replica, not
// yet known dead, reports which failed; the other holds the value.
func TestReplicaWriteFailureNamed(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	cfg := haConfig(modes[0], srvs...)
	cfg.Replicas = 2
	cfg.FailureThreshold = 1000 // not marked down: the write meets the failure
	c := newHAClient(t, cfg)
	ctx := ctxT(t)
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("1")}))
	srvs[1].Kill()
	err := c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("2")})
	var re *memclient.ReplicaError
	require.ErrorAs(t, err, &re)
	require.Len(t, re.Errs, 1)
	assert.Contains(t, re.Errs[0].Error(), srvs[1].Addr)
	it, err := direct(t, srvs[0].Addr).Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "2", string(it.Value))
}

// TestWarmUp: after a server joins, the keys that moved to it are read
// from their previous servers and copied over, instead of missing; a
// delete or a set meanwhile removes the old copy, so warm-up never
// brings back a value deleted or overwritten since.
func TestWarmUp(t *testing.T) {
	for _, m := range plainModes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srvs := memcachetest.StartN(t, 4, memcachetest.Options{})
			three := haConfig(m, srvs[:3]...)
			var keys []string
			var items []*memclient.Item
			for i := 0; i < 1000; i++ {
				k := "w" + strconv.Itoa(i)
				keys = append(keys, k)
				items = append(items, &memclient.Item{Key: k, Value: []byte("v" + k), TTL: time.Hour})
			}
			ctx := ctxT(t)
			all := append([]memclient.Server(nil), three.Servers...)
			all = append(all, memclient.Server{Addr: srvs[3].Addr})
			moved := func(warm time.Duration) (misses int) {
				cfg := three
				cfg.WarmUp = warm
				c := newHAClient(t, cfg)
				require.NoError(t, c.FlushAll(ctx))
				require.NoError(t, direct(t, srvs[3].Addr).FlushAll(ctx))
				require.NoError(t, c.SetMulti(ctx, items))
				require.NoError(t, c.SetServers(all...))
				for i, k := range keys {
					var it *memclient.Item
					var err error
					if i%2 == 0 {
						it, err = c.Get(ctx, k)
					} else {
						var got map[string]*memclient.Item
						got, err = c.GetMulti(ctx, []string{k})
						if it = got[k]; err == nil && it == nil {
							err = memclient.ErrCacheMiss
						}
					}
					if errors.Is(err, memclient.ErrCacheMiss) {
						misses++
						continue
					}
					require.NoError(t, err)
					require.Equal(t, "v"+k, string(it.Value))
				}
				return misses
			}
			cold := moved(0)
			warm := moved(time.Minute)
			t.Logf("misses after adding a 4th server to 3, 1000 keys: %d without warm-up, %d with", cold, warm)
			assert.Greater(t, cold, 100, "about a quarter of the keys move")
			assert.Zero(t, warm)

			// During the warm-up, a delete and a set reach the old server.
			cfg := three
			cfg.WarmUp = time.Minute
			c := newHAClient(t, cfg)
			require.NoError(t, c.FlushAll(ctx))
			require.NoError(t, direct(t, srvs[3].Addr).FlushAll(ctx))
			require.NoError(t, c.SetMulti(ctx, items))
			require.NoError(t, c.SetServers(all...))
			newc := direct(t, srvs[3].Addr)
			for _, k := range keys {
				_, err := c.Get(ctx, k) // warm-up copies the moved keys over
				require.NoError(t, err)
			}
			var movedKeys []string
			for _, k := range keys {
				if _, err := newc.Get(ctx, k); err == nil {
					movedKeys = append(movedKeys, k)
				}
			}
			require.GreaterOrEqual(t, len(movedKeys), 2)
			gone, reset := movedKeys[0], movedKeys[1]
			require.NoError(t, c.Delete(ctx, gone))
			_, err := c.Get(ctx, gone)
			require.ErrorIs(t, err, memclient.ErrCacheMiss, "warm-up brought back a deleted value")
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: reset, Value: []byte("fresh")}))
			require.NoError(t, newc.Delete(ctx, reset)) // say it is evicted from the new server
			_, err = c.Get(ctx, reset)
			require.ErrorIs(t, err, memclient.ErrCacheMiss, "warm-up brought back an overwritten value")
		})
	}
}

// TestBehindProxyRefusesLocally: behind a proxy, the commands it cannot
// pass fail with ErrNotSupported before anything is sent, and the client
// refuses a configuration that cannot work there.
func TestBehindProxyRefusesLocally(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, hostile.Correctly)
	c := hostileClient(t, s, modes[1], func(cfg *memclient.Config) { cfg.BehindProxy = true })
	ctx := ctxT(t)
	fill(t, c, "k")
	sent := len(s.Requests())
	_, err := c.GetAndTouch(ctx, "k", time.Minute)
	require.ErrorIs(t, err, memclient.ErrNotSupported)
	_, err = c.Stats(ctx)
	require.ErrorIs(t, err, memclient.ErrNotSupported)
	require.ErrorIs(t, c.FlushAll(ctx), memclient.ErrNotSupported)
	_, err = c.GetLease(ctx, "k", memclient.LeaseOptions{})
	require.ErrorIs(t, err, memclient.ErrNotSupported)
	_, err = c.GetLeaseMulti(ctx, []memclient.LeaseRequest{{Key: "k", LeaseOptions: memclient.LeaseOptions{Touch: true}}})
	require.ErrorIs(t, err, memclient.ErrNotSupported)
	assert.Equal(t, sent, len(s.Requests()), "nothing was sent")
	require.Empty(t, getAll(t, c, "k"), "the connection is as it was")

	for _, cfg := range []memclient.Config{
		{Servers: []memclient.Server{{Addr: s.Addr()}}, BehindProxy: true}, // meta
		{Servers: []memclient.Server{{Addr: s.Addr()}}, BehindProxy: true, Protocol: memclient.ProtocolText, Username: "u"},
	} {
		_, err := memclient.NewFromConfig(cfg)
		require.Error(t, err)
	}
}

// TestMetaToTextOnlyServerSaysSo: a server that closes the connection on
// a meta command (twemproxy does) fails calls with an error that points
// at the text protocol, not just "connection closed".
func TestMetaToTextOnlyServerSaysSo(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
		if len(req.Line) > 2 && req.Line[0] == 'm' && req.Line[2] == ' ' {
			w.Close()
			return
		}
		w.WriteCorrect()
	})
	c := hostileClient(t, s, modes[0], nil)
	_, err := c.Get(ctxT(t), "k")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ProtocolText")
}

// TestThroughTwemproxy: through nutcracker the meta protocol fails with an
// error that says to use the text protocol; with BehindProxy the health
// probe uses a command the proxy answers, so a proxy that went away and
// came back is found up again.
func TestThroughTwemproxy(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	p := memcachetest.StartProxy(t, memcachetest.ProxyOptions{Servers: memcachetest.ProxyServers([]*memcachetest.Server{srv})})
	ctx := ctxT(t)

	meta := newHAClient(t, memclient.Config{Servers: []memclient.Server{{Addr: p.Addr}}, FailureThreshold: 1000})
	_, err := meta.Get(ctx, "k")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ProtocolText", "the error points at the text protocol")

	cfg := haConfig(modes[1])
	cfg.Servers = []memclient.Server{{Addr: p.Addr}}
	cfg.BehindProxy = true
	c := newHAClient(t, cfg)
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("v")}))
	p.Kill()
	require.Eventually(t, func() bool {
		_, _ = c.Get(ctx, "k")
		return !c.ServerStatus()[0].Up
	}, 10*time.Second, time.Millisecond)
	require.NoError(t, p.Restart())
	waitUp(t, c, p.Addr)
	it, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "v", string(it.Value))
}

// TestGutterFrozenOwner: a read or write whose server does not answer
// (frozen: no refusal, no reset, just silence) goes to the gutter with
// the half of the call's time its server did not use, instead of failing
// at the timeout until enough timeouts mark the server down.
func TestGutterFrozenOwner(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	gut := memcachetest.Start(t, memcachetest.Options{})
	cfg := haConfig(modes[0], srvs...)
	cfg.Gutter = []memclient.Server{{Addr: gut.Addr}}
	cfg.Timeout = time.Second
	cfg.FailureThreshold = 1000 // not marked down: each call meets the silence
	c := newHAClient(t, cfg)
	ctx := context.Background()
	k := keysOn(t, c, srvs[0], 1, "f")[0]
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("old")}))

	srvs[0].Freeze()
	_, err := c.Get(ctx, k)
	require.ErrorIs(t, err, memclient.ErrCacheMiss, "the gutter answered the read")
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("new")}), "the gutter took the write")
	it, err := c.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, "new", string(it.Value))

	srvs[0].Resume()
	waitUp(t, c, srvs[0].Addr)
	it, err = c.Get(ctx, k)
	if err == nil {
		assert.NotEqual(t, "old", string(it.Value), "the frozen server served a value changed meanwhile")
	} else {
		require.ErrorIs(t, err, memclient.ErrCacheMiss)
	}
}
