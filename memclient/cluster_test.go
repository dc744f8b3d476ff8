package memclient

// Fault tests with real memcached processes: a server killed or frozen
// under concurrent load, failover, partial multi-key results, and
// replacing the server list at runtime.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	clusterKeys = 300
	// callDeadline is the context deadline of every call under fault.
	// Generous, so that live servers answer in time even under -race with
	// other test packages sharing two cores.
	callDeadline = 2 * time.Second
	// deadlineSlack is how late after its deadline a call may return:
	// generous, for -race on two shared cores. The tests assert only that
	// calls end near their deadline, never how fast they are.
	deadlineSlack = 2 * time.Second
)

// cluster is three servers and a client over them.
type cluster struct {
	srvs []*memcachetest.Server
	cfg  Config
	c    *Client
	sel  selector
	keys []string
}

func startCluster(t *testing.T, n int, d Distribution, tweak func(*Config)) *cluster {
	t.Helper()
	cl := &cluster{srvs: memcachetest.StartN(t, n, memcachetest.Options{})}
	for _, s := range cl.srvs {
		cl.cfg.Servers = append(cl.cfg.Servers, Server{Addr: s.Addr})
	}
	cl.cfg.Distribution = d
	cl.cfg.Timeout = 2 * time.Second
	cl.cfg.RetryInterval = 20 * time.Millisecond
	cl.cfg.MaxRetryInterval = 100 * time.Millisecond
	if tweak != nil {
		tweak(&cl.cfg)
	}
	var err error
	cl.c, err = NewFromConfig(cl.cfg)
	require.NoError(t, err)
	t.Cleanup(func() { cl.c.Close() })
	cl.sel = mustSelector(t, d, cl.cfg.Servers)
	for i := 0; i < clusterKeys; i++ {
		cl.keys = append(cl.keys, "cluster:"+strconv.Itoa(i))
	}
	return cl
}

func value(k string) []byte { return []byte("v:" + k) }

// fill stores every key and checks it reads back.
func (cl *cluster) fill(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, k := range cl.keys {
		require.NoError(t, cl.c.Set(ctx, &Item{Key: k, Value: value(k)}), "key %s", k)
	}
	got, err := cl.c.GetMulti(ctx, cl.keys)
	require.NoError(t, err)
	require.Len(t, got, len(cl.keys))
}

// keysOf returns the keys whose server is i.
func (cl *cluster) keysOf(i int) map[string]bool {
	out := make(map[string]bool)
	for _, k := range cl.keys {
		if cl.sel.pick(k) == i {
			out[k] = true
		}
	}
	return out
}

// status returns the client's view of server i.
func (cl *cluster) status(t *testing.T, i int) ServerStatus {
	t.Helper()
	st := cl.c.ServerStatus()
	require.Len(t, st, len(cl.srvs))
	require.Equal(t, cl.srvs[i].Addr, st[i].Addr)
	return st[i]
}

// waitStatus polls ServerStatus until server i's Up is up, for at most
// 15s.
func (cl *cluster) waitStatus(t *testing.T, i int, up bool) ServerStatus {
	t.Helper()
	var st ServerStatus
	for start := time.Now(); time.Since(start) < 15*time.Second; time.Sleep(10 * time.Millisecond) {
		if st = cl.status(t, i); st.Up == up {
			return st
		}
	}
	t.Fatalf("server %d (%s) did not become up=%v within 15s: %+v", i, cl.srvs[i].Addr, up, st)
	return st
}

// callResult is one Get made under load.
type callResult struct {
	key  string
	err  error
	took time.Duration
}

// load runs Get for every key from 16 goroutines, rounds times over, each
// call with a callDeadline context, and returns every call's result.
func (cl *cluster) load(rounds int) []callResult {
	const workers = 16
	var (
		mu  sync.Mutex
		out []callResult
		wg  sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []callResult
			for r := 0; r < rounds; r++ {
				for i := w; i < len(cl.keys); i += workers {
					k := cl.keys[i]
					ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
					start := time.Now()
					item, err := cl.c.Get(ctx, k)
					took := time.Since(start)
					cancel()
					if err == nil && string(item.Value) != string(value(k)) {
						err = fmt.Errorf("wrong value %q", item.Value)
					}
					mine = append(mine, callResult{k, err, took})
				}
			}
			mu.Lock()
			out = append(out, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// checkFaultLoad checks calls made while server dead is killed or frozen:
// only its keys fail, with errors that name it, and no call outlives its
// deadline by more than deadlineSlack. bareDeadline allows errors that are
// the caller's own context deadline, which the client returns as is,
// without the address. It returns how many calls failed fast with
// ErrServerUnavailable.
func (cl *cluster) checkFaultLoad(t *testing.T, res []callResult, dead int, bareDeadline bool) (unavailable int) {
	t.Helper()
	deadKeys := cl.keysOf(dead)
	addr := cl.srvs[dead].Addr
	var maxTook time.Duration
	failedKeys := make(map[string]bool)
	var timeouts, connErrs, inFlight, bare int
	for _, r := range res {
		maxTook = max(maxTook, r.took)
		if !deadKeys[r.key] {
			require.NoError(t, r.err, "key %s of a live server", r.key)
			continue
		}
		require.Error(t, r.err, "key %s of the dead server", r.key)
		failedKeys[r.key] = true
		var ne net.Error
		switch {
		case errors.Is(r.err, ErrServerUnavailable):
			unavailable++
		case bareDeadline && r.err == context.DeadlineExceeded:
			bare++
			continue // names no server: the caller's own deadline
		case errors.Is(r.err, context.DeadlineExceeded):
			timeouts++
		case errors.As(r.err, &ne):
			connErrs++
		case strings.Contains(r.err.Error(), "server marked down"):
			// A request in flight on a connection the client closed
			// when it marked the server down. It names the server but
			// does not match ErrServerUnavailable.
			inFlight++
		default:
			t.Errorf("key %s: unexpected error %v", r.key, r.err)
		}
		require.Contains(t, r.err.Error(), addr, "error for key %s does not name the dead server", r.key)
	}
	frac := float64(len(failedKeys)) / float64(len(cl.keys))
	t.Logf("%d calls: %d keys of %d failed (%.0f%%): %d fast with ErrServerUnavailable, %d timeouts, %d connection errors, "+
		"%d in flight when marked down, %d bare context deadlines; slowest call %v",
		len(res), len(failedKeys), len(cl.keys), 100*frac, unavailable, timeouts, connErrs, inFlight, bare, maxTook)
	assert.Equal(t, len(deadKeys), len(failedKeys), "every key of the dead server fails")
	// Exactly the dead server's keys fail (above); that is about a third,
	// within what 300 keys on a random port set allow.
	assert.InDelta(t, 1.0/3, frac, 0.2, "about a third of the keys fail")
	assert.Less(t, maxTook, callDeadline+deadlineSlack, "a call outlived its deadline")
	return unavailable
}

// checkRecovered requires that every key is served again (the restarted
// server is empty, so keys are stored first).
func (cl *cluster) checkRecovered(t *testing.T) {
	t.Helper()
	cl.fill(t)
	for _, r := range cl.load(1) {
		require.NoError(t, r.err, "key %s after recovery", r.key)
	}
}

func TestClusterKillOne(t *testing.T) {
	for _, d := range []Distribution{DistributionKetama, DistributionModula} {
		t.Run(d.String(), func(t *testing.T) {
			leakcheck.Check(t)
			cl := startCluster(t, 3, d, nil)
			cl.fill(t)
			const dead = 1

			cl.srvs[dead].Kill()
			res := cl.load(3)
			unavailable := cl.checkFaultLoad(t, res, dead, false)
			assert.Positive(t, unavailable, "the dead server was never marked down")

			st := cl.status(t, dead)
			assert.False(t, st.Up)
			assert.False(t, st.DownSince.IsZero())
			assert.NotEmpty(t, st.LastError)
			assert.Positive(t, st.Errors)
			for i := range cl.srvs {
				if i != dead {
					assert.True(t, cl.status(t, i).Up, "server %d", i)
				}
			}

			require.NoError(t, cl.srvs[dead].Restart())
			st = cl.waitStatus(t, dead, true)
			assert.True(t, st.DownSince.IsZero())
			cl.checkRecovered(t)
		})
	}
}

func TestClusterFreezeOne(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration // Config.Timeout
	}{
		// The client's own timeout fires before the caller's deadline.
		{"config timeout first", time.Second},
		// The caller's deadline fires before the client's own timeout.
		{"context deadline first", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leakcheck.Check(t)
			cl := startCluster(t, 3, DistributionKetama, func(c *Config) { c.Timeout = tt.timeout })
			cl.fill(t)
			const dead = 2

			cl.srvs[dead].Freeze()
			t.Cleanup(cl.srvs[dead].Resume)
			waitFrozen(t, cl.srvs[dead].Addr)
			res := cl.load(3)
			unavailable := cl.checkFaultLoad(t, res, dead, tt.timeout > callDeadline)
			assert.Positive(t, unavailable, "the frozen server was never marked down")
			st := cl.status(t, dead)
			assert.False(t, st.Up)
			assert.Positive(t, st.Timeouts)

			cl.srvs[dead].Resume()
			cl.waitStatus(t, dead, true)
			cl.checkRecovered(t)
		})
	}
}

func TestClusterFailover(t *testing.T) {
	for _, d := range []Distribution{DistributionKetama, DistributionModula} {
		t.Run(d.String(), func(t *testing.T) {
			leakcheck.Check(t)
			cl := startCluster(t, 3, d, func(c *Config) { c.Failover = true })
			cl.fill(t)
			const dead = 0
			cl.srvs[dead].Kill()

			// Until the failures reach the threshold, the dead server's
			// keys fail; drive it down with a few calls (bounded).
			deadKeys := cl.keysOf(dead)
			var probe string
			for k := range deadKeys {
				probe = k
				break
			}
			for i := 0; i < 20 && cl.status(t, dead).Up; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
				_, _ = cl.c.Get(ctx, probe)
				cancel()
			}
			require.False(t, cl.status(t, dead).Up, "server not marked down after 20 failed calls")

			// Every key is served: the dead server's keys by the server
			// pickLive names.
			isDown := func(i int) bool { return i == dead }
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			lost := 0
			for _, k := range cl.keys {
				err := cl.c.Set(ctx, &Item{Key: k, Value: value(k)})
				if cl.sel.pickLive(k, isDown) == -1 { // modula's ten rehashes all hit the dead server
					require.ErrorIs(t, err, ErrServerUnavailable)
					lost++
					continue
				}
				require.NoError(t, err, "key %s", k)
				item, err := cl.c.Get(ctx, k)
				require.NoError(t, err, "key %s", k)
				require.Equal(t, value(k), item.Value)
			}
			assert.Zero(t, lost)
			live := []string{cl.srvs[1].Addr, cl.srvs[2].Addr}
			where := whereStored(t, live, cl.keys)
			for _, k := range cl.keys {
				require.Equal(t, cl.sel.pickLive(k, isDown), where[k]+1, "key %s", k)
			}
			got, err := cl.c.GetMulti(ctx, cl.keys)
			require.NoError(t, err)
			require.Len(t, got, len(cl.keys))
			t.Logf("%d keys of the dead server served by the others", len(deadKeys))

			// Once the server is back its keys go home again: to the
			// restarted, empty server, not to the copies written during
			// the failover (the trade Config.Failover documents).
			require.NoError(t, cl.srvs[dead].Restart())
			cl.waitStatus(t, dead, true)
			for k := range deadKeys {
				_, err := cl.c.Get(ctx, k)
				require.ErrorIs(t, err, ErrCacheMiss, "key %s", k)
			}
		})
	}
}

func TestClusterGetMultiPartial(t *testing.T) {
	leakcheck.Check(t)
	cl := startCluster(t, 3, DistributionKetama, nil)
	cl.fill(t)
	const dead = 1
	deadKeys := cl.keysOf(dead)
	addr := cl.srvs[dead].Addr
	cl.srvs[dead].Kill()

	// The first calls see connection errors, later ones fail fast; each
	// returns the live servers' items and names exactly the dead keys.
	sawUnavailable := false
	for i := 0; i < 10 && !sawUnavailable; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), callDeadline)
		start := time.Now()
		got, err := cl.c.GetMulti(ctx, cl.keys)
		took := time.Since(start)
		cancel()
		require.Less(t, took, callDeadline+deadlineSlack)
		var me MultiError
		require.ErrorAs(t, err, &me)
		require.Len(t, me, len(deadKeys))
		for k, kerr := range me {
			require.True(t, deadKeys[k], "key %s of a live server failed: %v", k, kerr)
			require.Contains(t, kerr.Error(), addr)
		}
		require.Len(t, got, len(cl.keys)-len(deadKeys))
		for k, item := range got {
			require.False(t, deadKeys[k])
			require.Equal(t, value(k), item.Value)
		}
		require.Contains(t, err.Error(), addr)
		sawUnavailable = errors.Is(err, ErrServerUnavailable)
	}
	require.True(t, sawUnavailable, "GetMulti never failed fast with ErrServerUnavailable")

	// SetMulti and DeleteMulti report the same keys.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	items := make([]*Item, len(cl.keys))
	for i, k := range cl.keys {
		items[i] = &Item{Key: k, Value: value(k)}
	}
	err := cl.c.SetMulti(ctx, items)
	var me MultiError
	require.ErrorAs(t, err, &me)
	require.ErrorIs(t, err, ErrServerUnavailable)
	require.Len(t, me, len(deadKeys))
	err = cl.c.DeleteMulti(ctx, cl.keys)
	me = nil
	require.ErrorAs(t, err, &me)
	require.Len(t, me, len(deadKeys))
	for k := range me {
		require.True(t, deadKeys[k])
	}
}

// waitFrozen returns once the server at addr no longer answers: SIGSTOP
// takes effect asynchronously, and a request served in between would look
// like a frozen server answering. It waits for a no-op ("mn") to go
// unanswered for 100ms, at most 50 times.
func waitFrozen(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 50; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		require.NoError(t, err) // the kernel still accepts for a stopped process
		_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
		_, err = c.Write([]byte("mn\r\n"))
		require.NoError(t, err)
		_, err = bufio.NewReader(c).ReadString('\n')
		c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return
		}
		require.NoError(t, err)
	}
	t.Fatalf("%s still answers after SIGSTOP", addr)
}

// totalConnections reads memcached's total_connections counter; the
// connection that asks is counted too.
func totalConnections(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	_, err = c.Write([]byte("stats\r\n"))
	require.NoError(t, err)
	r := bufio.NewReader(c)
	n := -1
	for i := 0; i < 200; i++ {
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		if line == "END\r\n" {
			require.NotEqual(t, -1, n, "no total_connections in stats")
			return n
		}
		if v, ok := strings.CutPrefix(line, "STAT total_connections "); ok {
			n, err = strconv.Atoi(strings.TrimSpace(v))
			require.NoError(t, err)
		}
	}
	t.Fatal("stats did not end")
	return 0
}

func TestClusterSetServers(t *testing.T) {
	for _, d := range []Distribution{DistributionKetama, DistributionModula} {
		t.Run(d.String(), func(t *testing.T) {
			leakcheck.Check(t)
			cl := startCluster(t, 3, d, nil)
			extra := memcachetest.Start(t, memcachetest.Options{})
			cl.fill(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			// Both connection slots of every server are in use by now.
			before := make([]int, len(cl.srvs))
			for i, s := range cl.srvs {
				before[i] = totalConnections(t, s.Addr)
			}

			// Add a fourth server: keys that keep their server still hit,
			// the others miss (they now belong to the empty new server).
			four := append(append([]Server(nil), cl.cfg.Servers...), Server{Addr: extra.Addr})
			require.NoError(t, cl.c.SetServers(four...))
			sel4 := mustSelector(t, d, four)
			got, err := cl.c.GetMulti(ctx, cl.keys)
			require.NoError(t, err)
			moved := 0
			for _, k := range cl.keys {
				_, hit := got[k]
				stays := sel4.pick(k) == cl.sel.pick(k)
				require.Equal(t, stays, hit, "key %s", k)
				if !stays {
					moved++
				}
			}
			t.Logf("%s: adding a 4th server moved %d of %d keys", d, moved, len(cl.keys))
			st := cl.c.ServerStatus()
			require.Len(t, st, 4)
			assert.Equal(t, extra.Addr, st[3].Addr)

			// The servers that stayed kept their connections: only the
			// stats connections are new.
			for i, s := range cl.srvs {
				require.Equal(t, before[i]+1, totalConnections(t, s.Addr), "server %d reconnected", i)
			}

			// Rewrite and check placement under the new list (after
			// dropping the stale copies the moved keys left behind).
			flushRaw(t, append(memcachetest.Addrs(cl.srvs), extra.Addr))
			for _, k := range cl.keys {
				require.NoError(t, cl.c.Set(ctx, &Item{Key: k, Value: value(k)}))
			}
			where := whereStored(t, append(memcachetest.Addrs(cl.srvs), extra.Addr), cl.keys)
			for _, k := range cl.keys {
				require.Equal(t, sel4.pick(k), where[k], "key %s", k)
			}

			// A bad list is refused and the old one keeps working.
			require.Error(t, cl.c.SetServers(Server{Addr: extra.Addr}, Server{Addr: extra.Addr}), "duplicate server")
			require.Len(t, cl.c.ServerStatus(), 4)
			_, err = cl.c.Get(ctx, cl.keys[0])
			require.NoError(t, err, "a failed SetServers keeps the old list")

			// Replace the list entirely, with a new weight.
			two := []Server{{Addr: extra.Addr}, {Addr: cl.srvs[0].Addr, Weight: 2}}
			require.NoError(t, cl.c.SetServers(two...))
			sel2 := mustSelector(t, d, two)
			st = cl.c.ServerStatus()
			require.Len(t, st, 2)
			assert.Equal(t, 2, st[1].Weight)
			flushRaw(t, []string{extra.Addr, cl.srvs[0].Addr})
			for _, k := range cl.keys {
				require.NoError(t, cl.c.Set(ctx, &Item{Key: k, Value: value(k)}))
				item, err := cl.c.Get(ctx, k)
				require.NoError(t, err)
				require.Equal(t, value(k), item.Value)
			}
			where = whereStored(t, []string{extra.Addr, cl.srvs[0].Addr}, cl.keys)
			for _, k := range cl.keys {
				require.Equal(t, sel2.pick(k), where[k], "key %s", k)
			}

			// An empty list is allowed: calls fail with ErrNoServers.
			require.NoError(t, cl.c.SetServers())
			assert.Empty(t, cl.c.ServerStatus())
			_, err = cl.c.Get(ctx, cl.keys[0])
			require.ErrorIs(t, err, ErrNoServers)
			_, err = cl.c.GetMulti(ctx, cl.keys)
			require.ErrorIs(t, err, ErrNoServers)
		})
	}
}
