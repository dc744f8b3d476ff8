package memclient_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/hostile"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/memclient"
)

// The tests here stand a fake server (internal/hostile) in for a broken
// memcached, or for a proxy that loses or repeats replies: the faults a
// real memcached cannot be made to produce on demand.

var plainModes = []mode{modes[0], modes[1]} // meta and text, no TLS or auth

// hostileClient returns a client of s in mode m.
func hostileClient(t *testing.T, s *hostile.Server, m mode, tweak func(*memclient.Config)) *memclient.Client {
	t.Helper()
	cfg := memclient.Config{
		Servers:          []memclient.Server{{Addr: s.Addr()}},
		Protocol:         m.proto,
		Timeout:          5 * time.Second,
		FailureThreshold: 1 << 20, // these tests are about replies, not health
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := memclient.NewFromConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// opaqueOf returns the O token of a meta request line, or "".
func opaqueOf(line string) string {
	for _, f := range strings.Fields(line) {
		if len(f) > 1 && f[0] == 'O' {
			return f[1:]
		}
	}
	return ""
}

// fill stores key -> "v:"+key for each key through c.
func fill(t *testing.T, c *memclient.Client, keys ...string) {
	t.Helper()
	for _, k := range keys {
		require.NoError(t, c.Set(context.Background(), &memclient.Item{Key: k, Value: []byte("v:" + k)}))
	}
}

// getAll gets each key in turn and checks that whatever comes back is the
// key's own value. It returns the errors, by key.
func getAll(t *testing.T, c *memclient.Client, keys ...string) map[string]error {
	t.Helper()
	errs := make(map[string]error)
	for _, k := range keys {
		it, err := c.Get(ctxT(t), k)
		if err != nil {
			errs[k] = err
			continue
		}
		require.Equal(t, "v:"+k, string(it.Value), "Get(%q) returned another key's value", k)
	}
	return errs
}

// TestExtraReply: one reply too many (a proxy that repeats one) makes the
// next call fail with ErrProtocol and closes the connection; no call
// returns another key's value, and a new connection serves on.
func TestExtraReply(t *testing.T) {
	for _, m := range plainModes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			var dupAt atomic.Int64
			dupAt.Store(-1)
			s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
				w.WriteCorrect()
				if req.Conn == 0 && int64(req.N) == dupAt.Load() {
					w.WriteCorrect()
				}
			})
			c := hostileClient(t, s, m, nil)
			keys := []string{"a", "b", "c", "d", "e"}
			fill(t, c, keys...) // requests 0-4 on connection 0
			dupAt.Store(6)      // the reply to the second Get comes twice
			errs := getAll(t, c, keys...)
			require.Len(t, errs, 1, "%v", errs)
			require.ErrorIs(t, errs["c"], memclient.ErrProtocol)
			assert.Contains(t, errs["c"].Error(), s.Addr())
			require.Empty(t, getAll(t, c, keys...), "a new connection serves every key")
			assert.Equal(t, 2, len(c.DialsForTest()) /* one server */ +1, "two connections")
			assert.Equal(t, []uint64{2}, c.DialsForTest())
		})
	}
}

// TestMissingReply: a reply that never comes makes the request in flight
// behind it read the next reply, which is not its own: both fail with
// ErrProtocol rather than the first getting the second's value.
func TestMissingReply(t *testing.T) {
	for _, m := range plainModes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			var skip atomic.Int64
			skip.Store(-1)
			s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
				if req.Conn == 0 && int64(req.N) == skip.Load() {
					return // no reply
				}
				w.WriteCorrect()
			})
			c := hostileClient(t, s, m, nil)
			fill(t, c, "a", "b") // requests 0 and 1
			skip.Store(2)
			first := make(chan error, 1)
			go func() {
				it, err := c.Get(ctxT(t), "a") // request 2: its reply is lost
				if err == nil {
					err = fmt.Errorf("got %q", it.Value)
				}
				first <- err
			}()
			require.Eventually(t, func() bool { return len(s.Requests()) == 3 }, 10*time.Second, time.Millisecond)
			_, err := c.Get(ctxT(t), "b") // request 3: its reply goes to request 2
			require.ErrorIs(t, err, memclient.ErrProtocol)
			require.ErrorIs(t, <-first, memclient.ErrProtocol)
			require.Empty(t, getAll(t, c, "a", "b"))
		})
	}
}

// TestGarbageReply: replies that are not memcached's fail their call with
// ErrProtocol, close the connection, and leave later calls unharmed.
func TestGarbageReply(t *testing.T) {
	cases := map[string]func(req hostile.Request) string{
		"junk":            func(hostile.Request) string { return "HELLO THERE\r\n" },
		"wrong token":     func(req hostile.Request) string { return "EN O999999\r\n" },
		"no token":        func(hostile.Request) string { return "EN\r\n" },
		"wrong kind":      func(req hostile.Request) string { return "NS O" + opaqueOf(req.Line) + "\r\n" },
		"no CRLF":         func(hostile.Request) string { return "EN\n" },
		"bad length":      func(req hostile.Request) string { return "VA x O" + opaqueOf(req.Line) + "\r\n" },
		"value overruns":  func(req hostile.Request) string { return "VA 2 O" + opaqueOf(req.Line) + "\r\nabcd\r\n" },
		"foreign VALUE":   func(hostile.Request) string { return "VALUE other 0 1\r\nx\r\nEND\r\n" },
		"text STORED":     func(hostile.Request) string { return "STORED\r\n" },
		"unasked extra":   func(req hostile.Request) string { return string(req.Correct) + "VALUE zz 0 1\r\nx\r\nEND\r\n" },
		"negative length": func(req hostile.Request) string { return "VALUE a 0 -1\r\n\r\nEND\r\n" },
	}
	for _, m := range plainModes {
		for name, bad := range cases {
			t.Run(m.name+"/"+name, func(t *testing.T) {
				leakcheck.Check(t)
				var badAt atomic.Int64
				badAt.Store(-1)
				s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
					if req.Conn == 0 && int64(req.N) == badAt.Load() {
						w.WriteString(bad(req))
						return
					}
					w.WriteCorrect()
				})
				c := hostileClient(t, s, m, nil)
				fill(t, c, "a", "b")
				badAt.Store(2)
				errs := getAll(t, c, "a", "b")
				if name == "unasked extra" {
					// The Get of a is answered rightly; the extra reply
					// fails the next call instead.
					require.ErrorIs(t, errs["b"], memclient.ErrProtocol)
				} else {
					require.ErrorIs(t, errs["a"], memclient.ErrProtocol)
				}
				require.Empty(t, getAll(t, c, "a", "b"))
				st := c.ServerStatus()[0]
				assert.NotZero(t, st.Errors, "a broken stream counts against the server")
			})
		}
	}
}

// TestErrorLineConfirmed: an error line carries no token, so on the meta
// protocol it is accepted only once a reply after it shows the stream in
// step. A genuine one is delivered (the client queues a sync when nothing
// follows it); an extra one makes the stream fail instead of being taken
// as the answer.
func TestErrorLineConfirmed(t *testing.T) {
	leakcheck.Check(t)
	var mode atomic.Int64 // 0: correct; 1: error line instead; 2: error line, then the real reply
	s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
		if strings.HasPrefix(req.Line, "ma ") {
			switch mode.Load() {
			case 1:
				w.WriteString("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
				return
			case 2:
				w.WriteString("SERVER_ERROR out of memory\r\n")
			}
		}
		w.WriteCorrect()
	})
	c := hostileClient(t, s, modes[0], nil)
	ctx := ctxT(t)
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "n", Value: []byte("1")}))

	mode.Store(1)
	_, err := c.Increment(ctx, "n", 1)
	var se *memclient.ServerError
	require.ErrorAs(t, err, &se, "a genuine error line is the call's outcome")
	assert.Contains(t, se.Message, "non-numeric")
	last := s.Requests()[len(s.Requests())-1]
	assert.Equal(t, "mn", last.Line, "the client confirmed it with a sync")

	mode.Store(2)
	_, err = c.Increment(ctx, "n", 1)
	require.ErrorIs(t, err, memclient.ErrProtocol, "an extra error line is out of step")

	mode.Store(0)
	n, err := c.Increment(ctx, "n", 1)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), n, "the fake server applied every increment, whatever it answered")
	assert.Equal(t, []uint64{2}, c.DialsForTest())
}

// TestHugeAnnouncedValue: a reply announcing a value far beyond
// MaxItemSize (here 1 GiB) neither grows memory nor holds the caller: the
// call fails with ErrValueTooLarge, the connection is closed, and the
// server is not counted as failing. One between MaxItemSize and the cap
// that then stops sending ends at the caller's deadline.
func TestHugeAnnouncedValue(t *testing.T) {
	for _, m := range plainModes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			var what atomic.Int64 // 1: announce 1 GiB; 2: announce 8 MiB, send 1 MiB, stall
			s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
				if !strings.HasPrefix(req.Line, "mg ") && !strings.HasPrefix(req.Line, "gets ") {
					w.WriteCorrect()
					return
				}
				var n int
				switch what.Load() {
				case 1:
					n = 1 << 30
				case 2:
					n = 8 << 20
				default:
					w.WriteCorrect()
					return
				}
				if m.proto == memclient.ProtocolMeta {
					fmt.Fprintf(w, "VA %d f0 c1 O%s\r\n", n, opaqueOf(req.Line))
				} else {
					fmt.Fprintf(w, "VALUE %s 0 %d 1\r\n", strings.Fields(req.Line)[1], n)
				}
				w.Write(make([]byte, 1<<20))
				w.Flush()
				if what.Load() == 1 {
					w.Endless()
				} else {
					w.Hang()
				}
			})
			c := hostileClient(t, s, m, nil)
			fill(t, c, "k")

			what.Store(1)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.Get(ctxT(t), "k")
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, memclient.ErrValueTooLarge)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(4<<20), "memory grew with the announced size")
			st := c.ServerStatus()[0]
			assert.True(t, st.Up)
			assert.Zero(t, st.Errors, "not a failure of the server: %s", st.LastError)

			what.Store(2)
			ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
			defer cancel()
			_, err = c.Get(ctx, "k")
			require.ErrorIs(t, err, context.DeadlineExceeded)
		})
	}
}

// TestEndlessLine: a reply line that never ends fails the call with
// ErrProtocol once the line outgrows the read buffer; nothing grows.
func TestEndlessLine(t *testing.T) {
	for _, m := range plainModes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
				if strings.HasPrefix(req.Line, "mg ") || strings.HasPrefix(req.Line, "gets ") {
					w.Endless()
					return
				}
				w.WriteCorrect()
			})
			c := hostileClient(t, s, m, nil)
			fill(t, c, "k")
			_, err := c.Get(ctxT(t), "k")
			require.ErrorIs(t, err, memclient.ErrProtocol)
		})
	}
}

// TestConnectHangs: against a server whose accept queue is full, so that
// a connect hangs, Config.Timeout bounds every call, dial wait included,
// and concurrent callers share one dial instead of each dialing in turn.
// Close ends the dial.
func TestConnectHangs(t *testing.T) {
	leakcheck.Check(t)
	addr := hostile.ListenFull(t)
	c, err := memclient.NewFromConfig(memclient.Config{
		Servers:     []memclient.Server{{Addr: addr}},
		Timeout:     300 * time.Millisecond,
		DialTimeout: time.Minute, // the dial outlives every caller
	})
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Get(context.Background(), "k")
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		// Their own Timeout, not the dial's failure a minute on.
		require.ErrorIs(t, err, context.DeadlineExceeded)
		var te interface{ Timeout() bool }
		require.ErrorAs(t, err, &te)
		require.True(t, te.Timeout())
		require.Contains(t, err.Error(), "timeout waiting for the server")
	}
	assert.Equal(t, []uint64{1}, c.DialsForTest(), "one dial shared by every caller")

	// A caller's own shorter deadline wins too.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, []uint64{1}, c.DialsForTest(), "still the same dial")

	require.NoError(t, c.Close()) // cancels the dial; leakcheck sees it end
	_, err = c.Get(context.Background(), "k")
	require.True(t, errors.Is(err, memclient.ErrClosed), "%v", err)
}

// TestGetInto: GetInto reads into the caller's Item, reusing its storage
// (a 1 MB value lands in the caller's buffer), reports a miss, and once
// it has returned on a timeout nothing writes into the Item any more: a
// reply being read into it when the caller gives up fails the connection.
func TestGetInto(t *testing.T) {
	leakcheck.Check(t)
	var stall atomic.Bool
	s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
		if stall.Load() && strings.HasPrefix(req.Line, "mg ") {
			fmt.Fprintf(w, "VA 100000 f0 c1 O%s\r\n", opaqueOf(req.Line))
			w.Write(make([]byte, 1000))
			w.Flush()
			w.Hang()
			return
		}
		w.WriteCorrect()
	})
	c := hostileClient(t, s, modes[0], func(cfg *memclient.Config) { cfg.MaxItemSize = 2 << 20 })
	ctx := ctxT(t)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i)
	}
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "big", Value: big, Flags: 7}))
	buf := make([]byte, 0, 2<<20)
	it := &memclient.Item{Value: buf}
	require.NoError(t, c.GetInto(ctx, "big", it))
	assert.Equal(t, "big", it.Key)
	assert.Equal(t, uint32(7), it.Flags)
	assert.Equal(t, big, it.Value)
	assert.Same(t, &buf[:1][0], &it.Value[0], "read into the caller's storage")
	require.ErrorIs(t, c.GetInto(ctx, "nope", it), memclient.ErrCacheMiss)

	stall.Store(true)
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err := c.GetInto(short, "big", it)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, c.ServerStatus()[0].Conns, "the connection reading into the Item is gone")
}
