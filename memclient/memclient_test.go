package memclient_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
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

// mode is one way of talking to memcached; the conformance suite runs over
// every mode.
type mode struct {
	name  string
	proto memclient.Protocol
	opts  memcachetest.Options
	proxy bool // through twemproxy (nutcracker), with Config.BehindProxy
}

var modes = []mode{
	{name: "meta", proto: memclient.ProtocolMeta, opts: memcachetest.Options{}},
	{name: "text", proto: memclient.ProtocolText, opts: memcachetest.Options{}},
	{name: "meta-tls", proto: memclient.ProtocolMeta, opts: memcachetest.Options{TLS: true}},
	{name: "text-tls", proto: memclient.ProtocolText, opts: memcachetest.Options{TLS: true}},
	{name: "meta-auth", proto: memclient.ProtocolMeta, opts: memcachetest.Options{Username: "memkit", Password: "s3cr3t"}},
	{name: "text-auth", proto: memclient.ProtocolText, opts: memcachetest.Options{Username: "memkit", Password: "s3cr3t"}},
	{name: "text-twemproxy", proto: memclient.ProtocolText, proxy: true},
}

// testWithClient runs fn against a fresh server and client in every mode.
func testWithClient(t *testing.T, fn func(t *testing.T, c *memclient.Client, m mode)) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srv := memcachetest.Start(t, m.opts)
			c := newClient(t, srv, m, nil)
			if m.proxy {
				p := memcachetest.StartProxy(t, memcachetest.ProxyOptions{Servers: memcachetest.ProxyServers([]*memcachetest.Server{srv})})
				c = newClient(t, p.Server, m, func(cfg *memclient.Config) { cfg.BehindProxy = true })
			}
			fn(t, c, m)
		})
	}
}

func newClient(t testing.TB, srv *memcachetest.Server, m mode, tweak func(*memclient.Config)) *memclient.Client {
	t.Helper()
	cfg := memclient.Config{
		Servers:  []memclient.Server{{Addr: srv.Addr}},
		Protocol: m.proto,
		TLS:      srv.TLSConfig,
		Username: m.opts.Username,
		Password: m.opts.Password,
		Timeout:  5 * time.Second, // generous: -race on two shared cores
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := memclient.NewFromConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConformance(t *testing.T) {
	testWithClient(t, func(t *testing.T, c *memclient.Client, m mode) {
		ctx := ctxT(t)
		t.Run("SetGetDelete", func(t *testing.T) {
			_, err := c.Get(ctx, "nope")
			require.ErrorIs(t, err, memclient.ErrCacheMiss)

			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("hello"), Flags: 42}))
			it, err := c.Get(ctx, "k")
			require.NoError(t, err)
			assert.Equal(t, "k", it.Key)
			assert.Equal(t, []byte("hello"), it.Value)
			assert.Equal(t, uint32(42), it.Flags)
			assert.NotZero(t, it.CAS)

			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "empty", Value: nil}))
			it, err = c.Get(ctx, "empty")
			require.NoError(t, err)
			assert.Empty(t, it.Value)

			require.NoError(t, c.Delete(ctx, "k"))
			require.ErrorIs(t, c.Delete(ctx, "k"), memclient.ErrCacheMiss)
			_, err = c.Get(ctx, "k")
			require.ErrorIs(t, err, memclient.ErrCacheMiss)
		})

		t.Run("BinaryAndUTF8", func(t *testing.T) {
			val := []byte("line1\r\nEND\r\nVALUE x 0 1\r\n\x00\xff")
			key := "ключ-日本"
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: key, Value: val, Flags: 1<<32 - 1}))
			it, err := c.Get(ctx, key)
			require.NoError(t, err)
			assert.Equal(t, val, it.Value)
			assert.Equal(t, uint32(1<<32-1), it.Flags)
		})

		t.Run("AddReplace", func(t *testing.T) {
			require.NoError(t, c.Add(ctx, &memclient.Item{Key: "a", Value: []byte("1")}))
			require.ErrorIs(t, c.Add(ctx, &memclient.Item{Key: "a", Value: []byte("2")}), memclient.ErrNotStored)
			require.ErrorIs(t, c.Replace(ctx, &memclient.Item{Key: "r", Value: []byte("x")}), memclient.ErrNotStored)
			require.NoError(t, c.Replace(ctx, &memclient.Item{Key: "a", Value: []byte("3")}))
			it, err := c.Get(ctx, "a")
			require.NoError(t, err)
			assert.Equal(t, "3", string(it.Value))
		})

		t.Run("AppendPrependMultibyte", func(t *testing.T) {
			require.ErrorIs(t, c.Append(ctx, &memclient.Item{Key: "t", Value: []byte("x")}), memclient.ErrNotStored)
			require.ErrorIs(t, c.Prepend(ctx, &memclient.Item{Key: "t", Value: []byte("x")}), memclient.ErrNotStored)
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "t", Value: []byte("café"), Flags: 16}))
			require.NoError(t, c.Append(ctx, &memclient.Item{Key: "t", Value: []byte(" ☕ 日本")}))
			require.NoError(t, c.Prepend(ctx, &memclient.Item{Key: "t", Value: []byte("¡")}))
			it, err := c.Get(ctx, "t")
			require.NoError(t, err)
			assert.Equal(t, "¡café ☕ 日本", string(it.Value))
			assert.Equal(t, uint32(16), it.Flags, "append keeps the flags")
		})

		t.Run("CompareAndSwap", func(t *testing.T) {
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "c", Value: []byte("v1")}))
			it, err := c.Get(ctx, "c")
			require.NoError(t, err)
			stale := *it
			it.Value = []byte("v2")
			require.NoError(t, c.CompareAndSwap(ctx, it))
			stale.Value = []byte("v3")
			require.ErrorIs(t, c.CompareAndSwap(ctx, &stale), memclient.ErrCASConflict)
			require.NoError(t, c.Delete(ctx, "c"))
			require.ErrorIs(t, c.CompareAndSwap(ctx, &stale), memclient.ErrCacheMiss)
		})

		t.Run("IncrDecr", func(t *testing.T) {
			_, err := c.Increment(ctx, "n", 1)
			require.ErrorIs(t, err, memclient.ErrCacheMiss)
			_, err = c.Decrement(ctx, "n", 1)
			require.ErrorIs(t, err, memclient.ErrCacheMiss)
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "n", Value: []byte("10")}))
			n, err := c.Increment(ctx, "n", 5)
			require.NoError(t, err)
			assert.Equal(t, uint64(15), n)
			n, err = c.Decrement(ctx, "n", 100)
			require.NoError(t, err)
			assert.Equal(t, uint64(0), n, "decrement stops at 0")
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "n", Value: []byte("18446744073709551615")}))
			n, err = c.Increment(ctx, "n", 2)
			require.NoError(t, err)
			assert.Equal(t, uint64(1), n, "increment wraps at 2^64")
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "s", Value: []byte("abc")}))
			_, err = c.Increment(ctx, "s", 1)
			var se *memclient.ServerError
			require.ErrorAs(t, err, &se)
			assert.Contains(t, se.Message, "CLIENT_ERROR")
			// The connection is still in step afterwards.
			n, err = c.Increment(ctx, "n", 1)
			require.NoError(t, err)
			assert.Equal(t, uint64(2), n)
		})

		t.Run("TouchAndGAT", func(t *testing.T) {
			require.ErrorIs(t, c.Touch(ctx, "nope", time.Minute), memclient.ErrCacheMiss)
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "tt", Value: []byte("v"), TTL: time.Hour}))
			require.NoError(t, c.Touch(ctx, "tt", 2*time.Hour))
			if m.proxy {
				_, err := c.GetAndTouch(ctx, "tt", time.Minute)
				require.ErrorIs(t, err, memclient.ErrNotSupported, "twemproxy does not pass gat")
			} else {
				_, err := c.GetAndTouch(ctx, "nope", time.Minute)
				require.ErrorIs(t, err, memclient.ErrCacheMiss)
				it, err := c.GetAndTouch(ctx, "tt", 3*time.Hour)
				require.NoError(t, err)
				assert.Equal(t, "v", string(it.Value))
			}
			// A negative TTL means never expires, as everywhere in memkit.
			require.NoError(t, c.Touch(ctx, "tt", -time.Second))
			_, err := c.Get(ctx, "tt")
			require.NoError(t, err)
			if m.proto == memclient.ProtocolMeta {
				l, err := c.GetLease(ctx, "tt", memclient.LeaseOptions{})
				require.NoError(t, err)
				assert.Equal(t, time.Duration(-1), l.TTL, "no expiry")
			}
		})

		t.Run("LongTTL", func(t *testing.T) {
			// Over 30 days must be sent as an absolute time; sent as
			// relative seconds memcached would expire it at once. Past
			// what a 32-bit Unix time holds (January 2038) it is clamped
			// there: a larger number would expire the item at once too.
			year := 365 * 24 * time.Hour
			for _, ttl := range []time.Duration{31 * 24 * time.Hour, year, 15 * year, 100 * year, math.MaxInt64, 500 * time.Millisecond} {
				require.NoError(t, c.Set(ctx, &memclient.Item{Key: "long", Value: []byte("v"), TTL: ttl}))
				_, err := c.Get(ctx, "long")
				require.NoError(t, err, "ttl %v", ttl)
				require.NoError(t, c.Touch(ctx, "long", ttl))
				if !m.proxy {
					_, err = c.GetAndTouch(ctx, "long", ttl)
					require.NoError(t, err, "ttl %v", ttl)
				}
				if m.proto == memclient.ProtocolMeta {
					l, err := c.GetLease(ctx, "long", memclient.LeaseOptions{})
					require.NoError(t, err)
					want := min(ttl, time.Until(time.Unix(math.MaxInt32, 0)))
					assert.InDelta(t, want.Seconds(), l.TTL.Seconds(), 5, "ttl %v", ttl)
				}
			}
		})

		t.Run("Multi", func(t *testing.T) {
			var items []*memclient.Item
			var keys []string
			for i := 0; i < 250; i++ {
				k := fmt.Sprintf("multi:%d", i)
				keys = append(keys, k)
				if i%5 != 0 {
					items = append(items, &memclient.Item{Key: k, Value: []byte("v" + strconv.Itoa(i)), Flags: uint32(i)})
				}
			}
			require.NoError(t, c.SetMulti(ctx, items))
			got, err := c.GetMulti(ctx, keys)
			require.NoError(t, err)
			require.Len(t, got, 200)
			for _, it := range items {
				g := got[it.Key]
				require.NotNil(t, g, it.Key)
				assert.Equal(t, it.Value, g.Value)
				assert.Equal(t, it.Flags, g.Flags)
				assert.NotZero(t, g.CAS)
			}
			require.NoError(t, c.DeleteMulti(ctx, keys))
			got, err = c.GetMulti(ctx, keys)
			require.NoError(t, err)
			assert.Empty(t, got)

			got, err = c.GetMulti(ctx, []string{"ok", "bad key"})
			var me memclient.MultiError
			require.ErrorAs(t, err, &me)
			require.ErrorIs(t, me["bad key"], memclient.ErrMalformedKey)
			assert.Empty(t, got)
		})

		t.Run("StatsFlush", func(t *testing.T) {
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "f", Value: []byte("v")}))
			if m.proxy {
				_, err := c.Stats(ctx)
				require.ErrorIs(t, err, memclient.ErrNotSupported, "twemproxy does not pass stats")
				require.ErrorIs(t, c.FlushAll(ctx), memclient.ErrNotSupported)
				_, err = c.Get(ctx, "f")
				require.NoError(t, err, "the connection is unharmed")
				return
			}
			st, err := c.Stats(ctx)
			require.NoError(t, err)
			require.Len(t, st, 1)
			for _, s := range st {
				assert.NotEmpty(t, s["pid"])
				assert.NotEmpty(t, s["version"])
			}
			slabs, err := c.Stats(ctx, "slabs")
			require.NoError(t, err)
			for _, s := range slabs {
				assert.NotEmpty(t, s["active_slabs"])
			}
			require.NoError(t, c.FlushAll(ctx))
			_, err = c.Get(ctx, "f")
			require.ErrorIs(t, err, memclient.ErrCacheMiss)
			_, err = c.Stats(ctx, "bad arg")
			require.Error(t, err)
		})
	})
}

// TestMalformedKeys checks every bad key is refused before a byte is
// written: an injected flush_all would wipe the sentinel item.
func TestMalformedKeys(t *testing.T) {
	testWithClient(t, func(t *testing.T, c *memclient.Client, m mode) {
		ctx := ctxT(t)
		require.NoError(t, c.Set(ctx, &memclient.Item{Key: "sentinel", Value: []byte("alive")}))
		bad := map[string]string{
			"empty":      "",
			"space":      "a b",
			"crlf":       "k\r\nflush_all",
			"lf":         "k\nflush_all",
			"tab":        "k\tv",
			"nul":        "k\x00",
			"del":        "k\x7f",
			"too long":   strings.Repeat("k", 251),
			"control":    "k\x01",
			"injectmeta": "k v\r\nmn",
		}
		for name, key := range bad {
			t.Run(name, func(t *testing.T) {
				_, err := c.Get(ctx, key)
				require.ErrorIs(t, err, memclient.ErrMalformedKey)
				require.ErrorIs(t, c.Set(ctx, &memclient.Item{Key: key, Value: []byte("x")}), memclient.ErrMalformedKey)
				require.ErrorIs(t, c.Delete(ctx, key), memclient.ErrMalformedKey)
				_, err = c.Increment(ctx, key, 1)
				require.ErrorIs(t, err, memclient.ErrMalformedKey)
				require.ErrorIs(t, c.Touch(ctx, key, time.Second), memclient.ErrMalformedKey)
				require.ErrorIs(t, c.SetMulti(ctx, []*memclient.Item{{Key: key}}), memclient.ErrMalformedKey)
			})
		}
		_, err := c.Get(ctx, strings.Repeat("k", 250))
		require.ErrorIs(t, err, memclient.ErrCacheMiss, "250 bytes is allowed")
		it, err := c.Get(ctx, "sentinel")
		require.NoError(t, err)
		assert.Equal(t, "alive", string(it.Value))
	})
}

func TestValueTooLarge(t *testing.T) {
	leakcheck.Check(t)
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			ctx := ctxT(t)
			srv := memcachetest.Start(t, memcachetest.Options{})
			// Client-side limit: refused before writing.
			c := newClient(t, srv, m, nil)
			err := c.Set(ctx, &memclient.Item{Key: "big", Value: make([]byte, memclient.DefaultMaxItemSize+1)})
			require.ErrorIs(t, err, memclient.ErrValueTooLarge)
			// Server-side limit: a client allowing more than the server.
			c2 := newClient(t, srv, m, func(cfg *memclient.Config) { cfg.MaxItemSize = 4 << 20 })
			err = c2.Set(ctx, &memclient.Item{Key: "big", Value: make([]byte, 2<<20)})
			require.ErrorIs(t, err, memclient.ErrValueTooLarge)
			// The connection stays usable.
			require.NoError(t, c2.Set(ctx, &memclient.Item{Key: "small", Value: []byte("ok")}))
			it, err := c2.Get(ctx, "small")
			require.NoError(t, err)
			assert.Equal(t, "ok", string(it.Value))
		})
	}
}

// TestTicketRace is the G88 race: 40 buyers each take one ticket from 88
// with gets/cas; exactly 48 must remain.
func TestTicketRace(t *testing.T) {
	testWithClient(t, func(t *testing.T, c *memclient.Client, m mode) {
		ctx := ctxT(t)
		require.NoError(t, c.Set(ctx, &memclient.Item{Key: "G88", Value: []byte("88")}))
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for attempt := 0; attempt < 1000; attempt++ {
					it, err := c.Get(ctx, "G88")
					if err != nil {
						errs <- err
						return
					}
					n, _ := strconv.Atoi(string(it.Value))
					it.Value = []byte(strconv.Itoa(n - 1))
					err = c.CompareAndSwap(ctx, it)
					if err == nil {
						return
					}
					if !errors.Is(err, memclient.ErrCASConflict) {
						errs <- err
						return
					}
				}
				errs <- errors.New("too many CAS conflicts")
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		it, err := c.Get(ctx, "G88")
		require.NoError(t, err)
		assert.Equal(t, "48", string(it.Value))
	})
}

// TestHammer runs 64 goroutines of set/get on their own keys over a few
// pipelined connections: every reply must belong to its request.
func TestHammer(t *testing.T) {
	testWithClient(t, func(t *testing.T, c *memclient.Client, m mode) {
		ctx := ctxT(t)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := 0; g < 64; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 40; i++ {
					key := fmt.Sprintf("h:%d:%d", g, i%7)
					val := []byte(fmt.Sprintf("%d-%d-%s", g, i, strings.Repeat("x", (g*i)%300)))
					if err := c.Set(ctx, &memclient.Item{Key: key, Value: val, Flags: uint32(g)}); err != nil {
						errs <- err
						return
					}
					it, err := c.Get(ctx, key)
					if err != nil {
						errs <- err
						return
					}
					if string(it.Value) != string(val) || it.Flags != uint32(g) || it.Key != key {
						errs <- fmt.Errorf("crossed reply: key %s got %q flags %d", key, it.Value, it.Flags)
						return
					}
					if i%10 == 0 {
						keys := []string{key, fmt.Sprintf("h:%d:%d", g, (i+1)%7)}
						got, err := c.GetMulti(ctx, keys)
						if err != nil {
							errs <- err
							return
						}
						if g := got[key]; g == nil || string(g.Value) != string(val) {
							errs <- fmt.Errorf("crossed multi reply for %s", key)
							return
						}
					}
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	})
}

func TestLeases(t *testing.T) {
	testWithClient(t, func(t *testing.T, c *memclient.Client, m mode) {
		ctx := ctxT(t)
		opts := memclient.LeaseOptions{VivifyTTL: 30 * time.Second, RecacheTTL: 10 * time.Second}
		if m.proto == memclient.ProtocolText {
			_, err := c.GetLease(ctx, "l", opts)
			require.ErrorIs(t, err, memclient.ErrNotSupported)
			require.ErrorIs(t, c.Invalidate(ctx, "l", 0), memclient.ErrNotSupported)
			return
		}
		_, err := c.GetLease(ctx, "l", memclient.LeaseOptions{})
		require.ErrorIs(t, err, memclient.ErrCacheMiss, "no vivify: plain miss")

		first, err := c.GetLease(ctx, "l", opts)
		require.NoError(t, err)
		assert.True(t, first.Won)
		assert.True(t, first.Placeholder())
		second, err := c.GetLease(ctx, "l", opts)
		require.NoError(t, err)
		assert.False(t, second.Won)
		assert.True(t, second.Pending)
		assert.True(t, second.Placeholder())

		// The winner fills the placeholder through CAS.
		first.Item.Value = []byte("loaded")
		first.Item.TTL = time.Hour
		require.NoError(t, c.CompareAndSwap(ctx, first.Item))
		got, err := c.GetLease(ctx, "l", opts)
		require.NoError(t, err)
		assert.False(t, got.Won)
		assert.False(t, got.Placeholder())
		assert.Equal(t, "loaded", string(got.Item.Value))
		assert.Greater(t, got.TTL, 10*time.Second)

		// Invalidate: old value still served, flagged stale, one winner.
		require.NoError(t, c.Invalidate(ctx, "l", time.Minute))
		a, err := c.GetLease(ctx, "l", opts)
		require.NoError(t, err)
		assert.True(t, a.Stale)
		assert.True(t, a.Won)
		assert.Equal(t, "loaded", string(a.Item.Value))
		b, err := c.GetLease(ctx, "l", opts)
		require.NoError(t, err)
		assert.True(t, b.Stale)
		assert.False(t, b.Won)
		a.Item.Value = []byte("fresh")
		require.NoError(t, c.CompareAndSwap(ctx, a.Item))
		it, err := c.Get(ctx, "l")
		require.NoError(t, err)
		assert.Equal(t, "fresh", string(it.Value))
		require.ErrorIs(t, c.Invalidate(ctx, "missing", 0), memclient.ErrCacheMiss)
	})
}

func TestAuthRefused(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{Username: "memkit", Password: "right"})
	for _, m := range modes[:2] {
		c := newClient(t, srv, mode{name: m.name, proto: m.proto, opts: memcachetest.Options{Username: "memkit", Password: "wrong"}}, nil)
		_, err := c.Get(ctxT(t), "k")
		require.ErrorIs(t, err, memclient.ErrAuth)
		nc := newClient(t, srv, mode{name: m.name, proto: m.proto, opts: memcachetest.Options{}}, nil)
		_, err = nc.Get(ctxT(t), "k")
		require.Error(t, err, "no credentials")
	}
}

// TestFrozenServer: a server that stops answering costs each caller no more
// than its deadline; the abandoned requests' replies, when they finally
// come, are read and dropped without crossing into later requests.
func TestFrozenServer(t *testing.T) {
	for _, m := range modes[:2] {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srv := memcachetest.Start(t, memcachetest.Options{})
			c := newClient(t, srv, m, func(cfg *memclient.Config) {
				cfg.Timeout = 10 * time.Second
				cfg.FailureThreshold = 1000 // keep the server up: this is about deadlines
			})
			ctx := ctxT(t)
			const n = 16
			for i := 0; i < n; i++ {
				require.NoError(t, c.Set(ctx, &memclient.Item{Key: fmt.Sprint("k", i), Value: []byte(fmt.Sprint("v", i))}))
			}

			srv.Freeze()
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
					defer cancel()
					_, err := c.Get(cctx, fmt.Sprint("k", i))
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				// Its own deadline, or the connection given up as stuck
				// when the first deadline found it silent.
				var te interface{ Timeout() bool }
				require.ErrorAs(t, err, &te)
				require.True(t, te.Timeout(), "%v", err)
				require.Contains(t, err.Error(), srv.Addr)
			}
			srv.Resume()
			for i := n - 1; i >= 0; i-- {
				it, err := c.Get(ctx, fmt.Sprint("k", i))
				require.NoError(t, err)
				require.Equal(t, fmt.Sprint("v", i), string(it.Value), "reply crossed after abandoned requests")
			}
		})
	}
}

// TestConfigTimeout: with no ctx deadline, Config.Timeout bounds the call.
func TestConfigTimeout(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	c := newClient(t, srv, modes[0], func(cfg *memclient.Config) { cfg.Timeout = 100 * time.Millisecond })
	require.NoError(t, c.Set(context.Background(), &memclient.Item{Key: "k", Value: []byte("v")}))
	srv.Freeze()
	_, err := c.Get(context.Background(), "k")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	var te interface{ Timeout() bool }
	require.ErrorAs(t, err, &te)
	assert.True(t, te.Timeout())
	srv.Resume()
}

func TestClose(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	c := newClient(t, srv, modes[0], nil)
	ctx := ctxT(t)
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("v")}))
	require.NoError(t, c.Close())
	_, err := c.Get(ctx, "k")
	require.ErrorIs(t, err, memclient.ErrClosed)
	require.NoError(t, c.Close(), "Close twice is fine")
	assert.Empty(t, leakcheck.Leaked())
}

func TestNewErrors(t *testing.T) {
	for _, s := range []string{"", "nohost", "host:notaport", "host:1:0", "host:1:x", "host:99999"} {
		_, err := memclient.New(s)
		assert.Error(t, err, s)
	}
	c, err := memclient.New()
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Get(context.Background(), "k")
	require.ErrorIs(t, err, memclient.ErrNoServers)
	_, err = memclient.New("127.0.0.1:1", "127.0.0.1:1")
	require.Error(t, err, "duplicate server")
	c2, err := memclient.New("127.0.0.1:1:3", "[::1]:2")
	require.NoError(t, err)
	c2.Close()
}

// TestGetSpillsBigValues: Gets are charged the size of the values their
// server has been returning, so concurrent Gets of big values spread over
// connections as big Sets do, rather than queue their replies on one.
func TestGetSpillsBigValues(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := ctxT(t)
	for _, m := range plainModes {
		c := newClient(t, srv, m, func(cfg *memclient.Config) { cfg.MaxConnsPerServer = 3 })
		big := make([]byte, 512<<10)
		require.NoError(t, c.Set(ctx, &memclient.Item{Key: "bigget", Value: big}))
		for range 16 { // one at a time: the client learns this server's values are big
			it, err := c.Get(ctx, "bigget")
			require.NoError(t, err)
			require.Len(t, it.Value, len(big))
		}
		require.Equal(t, 1, c.ServerStatus()[0].Conns, "%s: sequential calls use one connection", m.name)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 20 {
					if it, err := c.Get(ctx, "bigget"); err != nil || len(it.Value) != len(big) {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		n := c.ServerStatus()[0].Conns
		assert.Greater(t, n, 1, "%s: concurrent Gets of big values spill onto more connections", m.name)
		assert.LessOrEqual(t, n, 3, "%s: never more than MaxConnsPerServer", m.name)
	}
}

// TestConnectionSpill: small requests share one pipelined connection; a
// burst of large values spills onto more, up to MaxConnsPerServer.
func TestConnectionSpill(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := ctxT(t)
	c := newClient(t, srv, modes[0], func(cfg *memclient.Config) { cfg.MaxConnsPerServer = 3 })
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := c.Get(ctx, "small"); !errors.Is(err, memclient.ErrCacheMiss) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, c.ServerStatus()[0].Conns, "small concurrent requests use one connection")

	big := make([]byte, 512<<10)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				assert.NoError(t, c.Set(ctx, &memclient.Item{Key: fmt.Sprint("big", g), Value: big}))
			}
		}()
	}
	wg.Wait()
	n := c.ServerStatus()[0].Conns
	assert.Greater(t, n, 1, "large values spill onto more connections")
	assert.LessOrEqual(t, n, 3, "never more than MaxConnsPerServer")

	// The server's own count agrees (ours, plus the connection asking).
	st, err := c.Stats(ctx)
	require.NoError(t, err)
	cur, err := strconv.Atoi(st[srv.Addr]["curr_connections"])
	require.NoError(t, err)
	assert.GreaterOrEqual(t, cur, n)
}

func TestParseServers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []memclient.Server
		err  bool
	}{
		{in: "", want: nil},
		{in: "127.0.0.1:1,127.0.0.1:2:3", want: []memclient.Server{{Addr: "127.0.0.1:1", Weight: 1}, {Addr: "127.0.0.1:2", Weight: 3}}},
		{in: " 127.0.0.1:5 , ", want: []memclient.Server{{Addr: "127.0.0.1:5", Weight: 1}}},
		{in: "[::1]:11211:2", want: []memclient.Server{{Addr: "[::1]:11211", Weight: 2}}},
		{in: "nohost", err: true},
		{in: "127.0.0.1:1:x", err: true},
		{in: "127.0.0.1:1,bad", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := memclient.ParseServers(tc.in)
			if tc.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestCancelWhileReading: cancelling a context with no deadline ends a
// call blocked reading from a frozen server with context.Canceled, long
// before Config.Timeout.
func TestCancelWhileReading(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	c := newClient(t, srv, modes[0], func(cfg *memclient.Config) {
		cfg.Timeout = time.Minute
		cfg.FailureThreshold = 1000
	})
	require.NoError(t, c.Set(ctxT(t), &memclient.Item{Key: "k", Value: []byte("v")}))
	sent := c.ServerStatus()[0].Requests
	srv.Freeze()
	defer srv.Resume()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "k")
		done <- err
	}()
	require.Eventually(t, func() bool { return c.ServerStatus()[0].Requests > sent }, 10*time.Second, time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, err.Error(), srv.Addr)
	case <-time.After(30 * time.Second): // far below Timeout: only a hang gets here
		t.Fatal("Get did not return after its context was cancelled")
	}
}

// TestFrozenServerBlockedWrite: with a frozen server whose socket buffers
// fill up, a caller stuck behind them returns at its own deadline, not when
// callers with later deadlines (or Config.Timeout) give up.
func TestFrozenServerBlockedWrite(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{MaxItemSize: "4m"})
	c := newClient(t, srv, modes[0], func(cfg *memclient.Config) {
		cfg.Timeout = time.Minute
		cfg.MaxItemSize = 4 << 20
		cfg.MaxConnsPerServer = 1 // every Set on one connection: its buffers fill
		cfg.FailureThreshold = 1000
	})
	require.NoError(t, c.Set(ctxT(t), &memclient.Item{Key: "k", Value: []byte("v")}))
	sent := c.ServerStatus()[0].Requests
	srv.Freeze()
	defer srv.Resume()

	big := make([]byte, 3<<20)
	long, cancelLong := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancelLong()
	longDone := make(chan error, 7)
	for g := 0; g < 7; g++ {
		go func() {
			longDone <- c.Set(long, &memclient.Item{Key: fmt.Sprint("big", g), Value: big})
		}()
	}
	require.Eventually(t, func() bool { return c.ServerStatus()[0].Requests >= sent+7 }, 10*time.Second, time.Millisecond)

	short, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Set(short, &memclient.Item{Key: "short", Value: big}) }()
	// The short caller comes back at its own deadline, not when the
	// callers with ten times its deadline give up: when it does, it finds
	// the connection silent and gives it up as stuck, so the long callers
	// fail then, with that, not at their own deadline.
	require.ErrorIs(t, <-done, context.DeadlineExceeded)
	for g := 0; g < 7; g++ {
		err := <-longDone
		require.Error(t, err)
		require.NotErrorIs(t, err, context.DeadlineExceeded, "a long caller waited for its own deadline: the short one was stuck behind it")
	}
}

// TestLeaseMulti: GetLeaseMulti reads many keys with their own options in
// one call: leases for cold keys (one winner per key across callers),
// plain reads and touches beside them; on the text protocol the reads and
// touches, and ErrNotSupported for leases.
func TestLeaseMulti(t *testing.T) {
	for _, m := range plainModes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			c, _ := startServers(t, 3, m, nil)
			ctx := ctxT(t)
			var hot []string
			for i := 0; i < 20; i++ {
				k := fmt.Sprint("hot", i)
				hot = append(hot, k)
				require.NoError(t, c.Set(ctx, &memclient.Item{Key: k, Value: []byte("v:" + k), TTL: time.Hour}))
			}
			vivify := memclient.LeaseOptions{VivifyTTL: 30 * time.Second}
			touch := memclient.LeaseOptions{Touch: true, TouchTTL: -1} // never expires
			var reqs []memclient.LeaseRequest
			for _, k := range hot {
				reqs = append(reqs, memclient.LeaseRequest{Key: k, LeaseOptions: touch})
			}
			reqs = append(reqs, memclient.LeaseRequest{Key: "absent"}, memclient.LeaseRequest{Key: "bad key"})

			if m.proto == memclient.ProtocolText {
				_, err := c.GetLeaseMulti(ctx, append(reqs, memclient.LeaseRequest{Key: "cold", LeaseOptions: vivify}))
				require.ErrorIs(t, err, memclient.ErrNotSupported)
			} else {
				for i := 0; i < 10; i++ {
					reqs = append(reqs, memclient.LeaseRequest{Key: fmt.Sprint("cold", i), LeaseOptions: vivify})
				}
			}
			got, err := c.GetLeaseMulti(ctx, reqs)
			var me memclient.MultiError
			require.ErrorAs(t, err, &me)
			require.Len(t, me, 1)
			require.ErrorIs(t, me["bad key"], memclient.ErrMalformedKey)
			assert.NotContains(t, got, "absent", "a plain miss is absent")
			for _, k := range hot {
				require.Contains(t, got, k)
				assert.Equal(t, "v:"+k, string(got[k].Item.Value))
				assert.False(t, got[k].Won)
			}
			if m.proto == memclient.ProtocolMeta {
				for i := 0; i < 10; i++ {
					l := got[fmt.Sprint("cold", i)]
					require.NotNil(t, l)
					assert.True(t, l.Won && l.Placeholder(), "the first caller wins each cold key")
				}
				again, err := c.GetLeaseMulti(ctx, reqs)
				require.Error(t, err) // the bad key
				for i := 0; i < 10; i++ {
					l := again[fmt.Sprint("cold", i)]
					assert.True(t, l.Pending && !l.Won, "the second waits")
				}
				l, err := c.GetLease(ctx, hot[0], memclient.LeaseOptions{})
				require.NoError(t, err)
				assert.Equal(t, time.Duration(-1), l.TTL, "the touch made it never expire")
			}
		})
	}
}
