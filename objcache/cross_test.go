package objcache_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
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

// Proofs across real processes (procs_test.go starts them).

func init() {
	helperJobs["multi-stampede"] = helperMultiStampede
	helperJobs["tags"] = helperTags
	helperJobs["failsafe"] = helperFailSafe
}

const (
	stampedeKeys       = 200 // cold keys
	stampedeAsk        = 50  // asked for by each goroutine, at random
	stampedeGoroutines = 25  // per process
)

// helperMultiStampede: 25 goroutines, started together, each ask for a
// random 50 of 200 keys with GetOrLoadMulti. Reports each load call's
// keys ("loaded k..."), then each goroutine's keys once it has them all
// right ("asked k...").
func helperMultiStampede(h *helper) {
	ctx := context.Background()
	c := h.cache(objcache.Options{Prefix: "stampede:", LeaseWait: 20 * time.Second})
	h.report("ready")
	h.await("go")
	var wg sync.WaitGroup
	for g := range stampedeGoroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(h.id), uint64(g)))
			keys := make([]string, stampedeAsk)
			for i, n := range rng.Perm(stampedeKeys)[:stampedeAsk] {
				keys[i] = fmt.Sprintf("k%03d", n)
			}
			got, err := objcache.GetOrLoadMulti(ctx, c, keys, time.Minute, func(_ context.Context, missing []string) (map[string]string, error) {
				h.report("loaded %s", strings.Join(missing, " "))
				time.Sleep(20 * time.Millisecond) // the query
				return values(missing...), nil
			})
			switch {
			case err != nil:
				h.report("bad %v", err)
			case !maps.Equal(got, values(keys...)):
				h.report("bad: %d values, some wrong", len(got))
			default:
				h.report("asked %s", strings.Join(keys, " "))
			}
		})
	}
	wg.Wait()
	h.report("done")
}

// The proof: 4 processes x 25 goroutines, each asking for a random
// overlapping 50 of 200 cold keys at once, load each key exactly once in
// total.
func TestGetOrLoadMultiStampedeAcrossProcesses(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ws := startWorkers(t, processes, "multi-stampede", srv.Addr, proto)
		for _, w := range ws {
			w.until("ready")
		}
		tell(t, ws, "go")
		loaded := map[string]int{}
		asked := map[string]bool{}
		calls, served := 0, 0
		for _, w := range ws {
			for _, line := range w.until("done") {
				verb, rest, _ := strings.Cut(line, " ")
				switch verb {
				case "loaded":
					calls++
					for _, k := range strings.Fields(rest) {
						loaded[k]++
					}
				case "asked":
					served++
					for _, k := range strings.Fields(rest) {
						asked[k] = true
					}
				default:
					t.Errorf("worker %d: %s", w.id, line)
				}
			}
		}
		assert.Equal(t, processes*stampedeGoroutines, served, "every goroutine got all its values, right")
		for k := range asked {
			assert.Equal(t, 1, loaded[k], "key %s loaded %d times", k, loaded[k])
		}
		assert.Len(t, loaded, len(asked), "no key was loaded that nobody asked for")
		t.Logf("%s: %d keys asked by %d goroutines in %d processes, loaded by %d calls", proto, len(asked), served, processes, calls)
	})
}

// helperTags: on "load", loads 10 keys through a view tagged "t" and
// reports how many loads it ran; on "get", reports for each key whether
// Get (through the root) finds it; on "reload", loads them again.
func helperTags(h *helper) {
	ctx := context.Background()
	c := h.cache(objcache.Options{Prefix: "tags:", LeaseWait: 20 * time.Second})
	view := c.WithTags("t")
	var loads atomic.Int32
	loadAll := func(v string) {
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				got, err := objcache.GetOrLoad(ctx, view, fmt.Sprint(i), 0, func(context.Context) (string, error) {
					loads.Add(1)
					return v, nil
				})
				if err != nil || got != v {
					h.report("bad %d: %q %v", i, got, err)
				}
			})
		}
		wg.Wait()
	}
	h.report("ready")
	h.await("load")
	loadAll("v1")
	h.report("loads %d", loads.Swap(0))
	h.await("get")
	for i := range 10 {
		_, err := objcache.Get[string](ctx, c, fmt.Sprint(i))
		h.report("get %d %v", i, err == nil)
	}
	h.report("got")
	h.await("reload")
	loadAll("v2")
	h.report("loads %d", loads.Swap(0))
}

// InvalidateTags in one process drops the tagged values in every other at
// once, and they are reloaded once in all.
func TestTagsAcrossProcesses(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ws := startWorkers(t, processes, "tags", srv.Addr, proto)
		for _, w := range ws {
			w.until("ready")
		}
		count := func() int {
			total := 0
			for _, w := range ws {
				line := <-w.lines
				var n int
				_, err := fmt.Sscanf(line, "loads %d", &n)
				require.NoError(t, err, "worker %d said %q", w.id, line)
				total += n
			}
			return total
		}
		tell(t, ws, "load")
		assert.Equal(t, 10, count(), "10 keys loaded once in all")

		c := newCache(t, srv.Addr, proto, objcache.Options{Prefix: "tags:"})
		require.NoError(t, c.InvalidateTags(context.Background(), "t"))

		tell(t, ws, "get")
		for _, w := range ws {
			got := w.until("got")
			require.Len(t, got, 10)
			for _, line := range got {
				assert.True(t, strings.HasSuffix(line, " false"), "worker %d: %s after the invalidation", w.id, line)
			}
		}
		tell(t, ws, "reload")
		assert.Equal(t, 10, count(), "10 keys reloaded once in all")
	})
}

// helperFailSafe: 10 goroutines ask for a value whose reload fails (the
// database is down) and report what they got.
func helperFailSafe(h *helper) {
	ctx := context.Background()
	c := h.cache(objcache.Options{Prefix: "fs:", FailSafe: time.Hour, FailSafeBackoff: time.Minute, LeaseWait: 20 * time.Second})
	var attempts atomic.Int32
	h.report("ready")
	h.await("go")
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			v, err := objcache.GetOrLoad(ctx, c, "price", time.Hour, func(context.Context) (int, error) {
				attempts.Add(1)
				return 0, errDBDown
			})
			h.report("got %d %v", v, err)
		})
	}
	wg.Wait()
	st := c.Stats()
	h.report("attempts %d failsafe %d", attempts.Load(), st.FailSafeServed)
	h.report("done")
}

// The proof for FailSafe: a value that expired a minute ago, whose
// database is down, is served by every goroutine of every process, and
// the dead database sees one load attempt in all: the others find the
// value kept in service by the failed attempt.
func TestFailSafeAcrossProcesses(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		// Stored by a process whose clock says an hour ago: its value
		// expired a minute ago, and memcached keeps it for FailSafe.
		writer := newCache(t, srv.Addr, proto, objcache.Options{Prefix: "fs:", FailSafe: time.Hour})
		then := time.Now().Add(-time.Hour - time.Minute)
		objcache.SetClock(writer, func() time.Time { return then }, nil)
		_, err := objcache.GetOrLoad(ctx, writer, "price", time.Hour, func(context.Context) (int, error) { return 42, nil })
		require.NoError(t, err)

		ws := startWorkers(t, processes, "failsafe", srv.Addr, proto)
		for _, w := range ws {
			w.until("ready")
		}
		tell(t, ws, "go")
		attempts, failsafe := 0, 0
		for _, w := range ws {
			for _, line := range w.until("done") {
				var a, f int
				if _, err := fmt.Sscanf(line, "attempts %d failsafe %d", &a, &f); err == nil {
					attempts += a
					failsafe += f
					continue
				}
				assert.Equal(t, "got 42 <nil>", line, "worker %d", w.id)
			}
		}
		assert.Equal(t, 1, attempts, "one load attempt against the dead database, in all")
		assert.Equal(t, processes*10, failsafe, "every caller was served the fail-safe value")
	})
}
