package memclient_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// startServers starts n plain memcached servers and a client over all of
// them.
func startServers(t *testing.T, n int, m mode, tweak func(*memclient.Config)) (*memclient.Client, []*memcachetest.Server) {
	t.Helper()
	var srvs []*memcachetest.Server
	cfg := memclient.Config{Protocol: m.proto, Timeout: 5 * time.Second}
	for i := 0; i < n; i++ {
		s := memcachetest.Start(t, m.opts)
		srvs = append(srvs, s)
		cfg.Servers = append(cfg.Servers, memclient.Server{Addr: s.Addr})
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := memclient.NewFromConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c, srvs
}

// checkGetMulti checks one GetMulti's outcome against what was asked:
// every value is its own key's, every key asked is either returned or
// named in the error, and nothing is returned or named that was not
// asked for. want gives the value each key must have.
func checkGetMulti(t *testing.T, asked []string, got map[string]*memclient.Item, err error, want func(key string, value []byte) error) {
	t.Helper()
	isAsked := make(map[string]bool, len(asked))
	for _, k := range asked {
		isAsked[k] = true
	}
	failed := memclient.MultiError{}
	if err != nil {
		if !errors.As(err, &failed) {
			t.Fatalf("GetMulti returned %v, not a MultiError", err)
		}
	}
	for k, it := range got {
		if !isAsked[k] {
			t.Fatalf("GetMulti returned key %q, which it was not asked for", k)
		}
		if it.Key != k {
			t.Fatalf("GetMulti returned item %q under key %q", it.Key, k)
		}
		if err := want(k, it.Value); err != nil {
			t.Fatalf("GetMulti %q: %v", k, err)
		}
	}
	for k := range failed {
		if !isAsked[k] {
			t.Fatalf("GetMulti's error names key %q, which it was not asked for: %v", k, err)
		}
		if _, ok := got[k]; ok {
			t.Fatalf("key %q both returned and named in the error", k)
		}
	}
	for _, k := range asked {
		if _, ok := got[k]; !ok {
			if _, ok := failed[k]; !ok {
				t.Fatalf("key %q was neither returned nor named in the error (%d asked, %d returned, %d failed)", k, len(asked), len(got), len(failed))
			}
		}
	}
}

// TestGetMultiExpiringDeadlines: concurrent GetMulti calls whose deadlines
// expire mid-flight (0.2 to 3 ms) account for every key they asked for,
// and only for those. A GetMulti that gave up used to read the keys of
// its abandoned requests after the connection had recycled them for other
// calls: keys went missing, and errors named other calls' keys.
func TestGetMultiExpiringDeadlines(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			c, _ := startServers(t, 3, m, func(cfg *memclient.Config) { cfg.FailureThreshold = 1 << 20 })
			ctx := ctxT(t)
			const nkeys = 2000
			keys := make([]string, nkeys)
			var items []*memclient.Item
			for i := range keys {
				keys[i] = fmt.Sprintf("gm:%d", i)
				items = append(items, &memclient.Item{Key: keys[i], Value: []byte("v:" + keys[i])})
			}
			require.NoError(t, c.SetMulti(ctx, items))
			want := func(k string, v []byte) error {
				if string(v) != "v:"+k {
					return fmt.Errorf("value %q", v)
				}
				return nil
			}

			var wg sync.WaitGroup
			stop := time.Now().Add(2 * time.Second)
			var calls, partial sync.Map
			for g := 0; g < 16; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 1))
					for i := 0; i < 2000 && time.Now().Before(stop); i++ {
						n := 1 + rng.IntN(400)
						start := rng.IntN(nkeys - n + 1)
						asked := keys[start : start+n]
						dl := 200*time.Microsecond + time.Duration(rng.Int64N(int64(3*time.Millisecond)))
						cctx, cancel := context.WithTimeout(ctx, dl)
						got, err := c.GetMulti(cctx, asked)
						cancel()
						checkGetMulti(t, asked, got, err, want)
						calls.Store(fmt.Sprint(g, i), true)
						if err != nil {
							partial.Store(fmt.Sprint(g, i), true)
						}
					}
				}()
			}
			wg.Wait()
			// The connections are still in step: a full read finds every key.
			got, err := c.GetMulti(ctx, keys)
			require.NoError(t, err)
			checkGetMulti(t, keys, got, nil, want)
		})
	}
}

// TestOversizedReplyDiscarded: a value larger than MaxItemSize, stored by
// another client on a server started with a larger -I, fails only its
// own Get with ErrValueTooLarge; the connection stays (the value is read
// past through the buffer) and the server is not counted as failing.
func TestOversizedReplyDiscarded(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srv := memcachetest.Start(t, memcachetest.Options{MaxItemSize: "8m"})
			ctx := ctxT(t)
			big := newClient(t, srv, m, func(cfg *memclient.Config) { cfg.MaxItemSize = 8 << 20 })
			require.NoError(t, big.Set(ctx, &memclient.Item{Key: "huge", Value: make([]byte, 5<<20)}))
			require.NoError(t, big.Set(ctx, &memclient.Item{Key: "small", Value: []byte("s")}))

			c := newClient(t, srv, m, nil) // MaxItemSize 1 MiB
			_, err := c.Get(ctx, "small")
			require.NoError(t, err)
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = c.Get(ctx, "huge")
			require.ErrorIs(t, err, memclient.ErrValueTooLarge)
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "the 5 MiB value was buffered")

			got, err := c.GetMulti(ctx, []string{"small", "huge", "nope"})
			var me memclient.MultiError
			require.ErrorAs(t, err, &me)
			require.Len(t, me, 1)
			require.ErrorIs(t, me["huge"], memclient.ErrValueTooLarge)
			require.Len(t, got, 1)
			assert.Equal(t, "s", string(got["small"].Value))

			it, err := c.Get(ctx, "small")
			require.NoError(t, err)
			assert.Equal(t, "s", string(it.Value))
			st := c.ServerStatus()[0]
			assert.Equal(t, 1, st.Conns, "the connection was kept")
			assert.Zero(t, st.Errors, "not a server failure")
			assert.Equal(t, []uint64{1}, c.DialsForTest())
		})
	}
}

// TestAuthLeavesNothingReadable: a client configured with credentials,
// talking to a memcached started without auth, stores nothing anyone can
// read back: the auth set used to be an ordinary item holding
// "user password".
func TestAuthLeavesNothingReadable(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srv := memcachetest.Start(t, memcachetest.Options{}) // no -Y
			ctx := ctxT(t)
			c := newClient(t, srv, mode{name: m.name, proto: m.proto, opts: memcachetest.Options{Username: "memkit", Password: "s3cr3t-pw"}}, nil)
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("v")}))

			// Read every item the server holds, by key and by dump.
			nc, err := net.Dial("tcp", srv.Addr)
			require.NoError(t, err)
			defer nc.Close()
			require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
			br := bufio.NewReader(nc)
			var seen strings.Builder
			// readTo reads lines until one of ends, and returns it.
			readTo := func(ends ...string) string {
				for {
					line, err := br.ReadString('\n')
					require.NoError(t, err, "read so far: %q", seen.String())
					seen.WriteString(line)
					for _, e := range ends {
						if strings.HasPrefix(line, e) {
							return e
						}
					}
				}
			}
			_, err = nc.Write([]byte("get auth memkit.auth memkit\r\n"))
			require.NoError(t, err)
			readTo("END\r\n", "ERROR")
			// The dump is refused while memcached's own LRU crawler runs
			// (BUSY): ask again, a bounded number of times.
			for try := 0; ; try++ {
				_, err = nc.Write([]byte("lru_crawler metadump all\r\n"))
				require.NoError(t, err)
				if readTo("END\r\n", "ERROR", "BUSY") != "BUSY" {
					break
				}
				require.Less(t, try, 100, "the crawler stayed busy")
				time.Sleep(50 * time.Millisecond) // memcached offers no way to wait for its crawler
			}
			assert.NotContains(t, seen.String(), "s3cr3t-pw")
			assert.NotContains(t, seen.String(), "VALUE")
			assert.Contains(t, seen.String(), "key=k ", "the dump lists the items held")
		})
	}
}

// TestClientPauseIsNotStuck: a pause of the client process (GC, CPU
// starvation, a container's CPU quota) that outlasts the stuck-connection
// threshold does not fail healthy requests: the replies that came
// meanwhile show the server was not silent. A pause used to close the
// connection and fail every request in flight as "connection stuck".
func TestClientPauseIsNotStuck(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srv := memcachetest.Start(t, memcachetest.Options{})
			c := newClient(t, srv, m, func(cfg *memclient.Config) { cfg.FailureThreshold = 1 })
			ctx := ctxT(t)
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("v")}))
			sent := c.ServerStatus()[0].Requests

			release := c.PauseReadersForTest()
			// Callers in flight through the pause, with ample deadlines.
			const n = 8
			results := make(chan error, n)
			for i := 0; i < n; i++ {
				go func() {
					it, err := c.Get(ctx, "k")
					if err == nil && string(it.Value) != "v" {
						err = fmt.Errorf("value %q", it.Value)
					}
					results <- err
				}()
			}
			require.Eventually(t, func() bool { return c.ServerStatus()[0].Requests >= sent+n }, 10*time.Second, time.Millisecond)
			// One whose deadline ends in the pause, well past the stuck
			// threshold (100ms) since the requests went out.
			short, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
			_, err := c.Get(short, "k")
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
			release()

			for i := 0; i < n; i++ {
				require.NoError(t, <-results, "a healthy request failed after a client pause")
			}
			st := c.ServerStatus()[0]
			assert.True(t, st.Up)
			assert.Zero(t, st.Errors, "the pause counted against the server: %s", st.LastError)
			assert.Equal(t, 1, st.Conns)
		})
	}
}
