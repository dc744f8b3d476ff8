//go:build linux

// These tests run the proxy in front of a real memcached, which
// internal/memcachetest starts on Linux only.

package faultproxy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/faultproxy"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
)

// wait bounds every blocking read of these tests; a test that hits it has
// found a bug, so it is generous.
const wait = 10 * time.Second

// quiet is how long a read waits to show that nothing arrives. Nothing
// depends on it being short or long: a slow machine only makes the proof
// take longer.
const quiet = 200 * time.Millisecond

// client is a raw memcached client over one connection.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &client{t: t, conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
}

func (c *client) send(s string) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetWriteDeadline(time.Now().Add(wait)))
	_, err := io.WriteString(c.conn, s)
	require.NoError(c.t, err)
}

// reply reads one whole reply (meta or text) and returns it.
func (c *client) reply() string {
	c.t.Helper()
	out, err := c.tryReply(wait)
	require.NoError(c.t, err, "after %q", out)
	return out
}

// tryReply reads one whole reply, or fails after d.
func (c *client) tryReply(d time.Duration) (string, error) {
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(d)))
	var out strings.Builder
	multi := false
	for {
		line, err := c.r.ReadString('\n')
		out.WriteString(line)
		if err != nil {
			return out.String(), err
		}
		word, rest, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), " ")
		size := -1
		switch {
		case word == "VA":
			size, _ = strconv.Atoi(strings.Fields(rest)[0])
		case word == "VALUE":
			multi = true
			size, _ = strconv.Atoi(strings.Fields(rest)[2])
		case word == "STAT":
			multi = true
		}
		if size >= 0 {
			block := make([]byte, size+2)
			n, err := io.ReadFull(c.r, block)
			out.Write(block[:n])
			if err != nil {
				return out.String(), err
			}
			if word == "VA" {
				return out.String(), nil
			}
		}
		if !multi || word == "END" {
			return out.String(), nil
		}
	}
}

// silent checks that nothing arrives for a while.
func (c *client) silent() {
	c.t.Helper()
	got, err := c.tryReply(quiet)
	var ne net.Error
	require.ErrorAs(c.t, err, &ne, "got %q", got)
	require.True(c.t, ne.Timeout(), "want a timeout, got %v after %q", err, got)
	require.Empty(c.t, got)
}

// resetAfter reads what is left and checks that it is want and that the
// connection was then reset.
func (c *client) resetAfter(want string) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(wait)))
	got, err := io.ReadAll(c.r)
	require.Equal(c.t, want, string(got))
	require.True(c.t, isReset(err), "want a reset, got %v", err)
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// start starts memcached, with items up to 2 MB, and a proxy to it.
func start(t *testing.T) (*memcachetest.Server, *faultproxy.Proxy) {
	t.Helper()
	leakcheck.Check(t)
	mc := memcachetest.Start(t, memcachetest.Options{MaxItemSize: "2m"})
	return mc, faultproxy.Start(t, mc.Addr)
}

func TestForward(t *testing.T) {
	_, p := start(t)
	c := dial(t, p.Addr())
	c.send("set a 5 0 3\r\nabc\r\nget a b\r\nms m 2 F1\r\nxy\r\nmg m v f\r\nmn\r\nversion\r\nincr a 1\r\n")
	for _, want := range []string{"STORED\r\n", "VALUE a 5 3\r\nabc\r\nEND\r\n", "HD\r\n", "VA 2 f1\r\nxy\r\n", "MN\r\n", "VERSION 1.6.18\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"} {
		require.Equal(t, want, c.reply())
	}
	require.Equal(t, 1, p.Conns())
	require.Equal(t, faultproxy.Stats{Accepted: 1, Forwarded: 7}, p.Stats())
}

func TestDuplicateReply(t *testing.T) {
	_, p := start(t)
	c := dial(t, p.Addr())
	c.send("ms foo 3\r\nbar\r\n")
	require.Equal(t, "HD\r\n", c.reply())

	p.DuplicateReply()
	c.send("mg foo v\r\nmg foo v\r\nmn\r\n")
	for _, want := range []string{"VA 3\r\nbar\r\n", "VA 3\r\nbar\r\n", "VA 3\r\nbar\r\n", "MN\r\n"} {
		require.Equal(t, want, c.reply())
	}
	require.Equal(t, 1, p.Stats().Duplicated)
}

func TestDropReply(t *testing.T) {
	_, p := start(t)
	c := dial(t, p.Addr())
	c.send("ms foo 3\r\nbar\r\n")
	require.Equal(t, "HD\r\n", c.reply())

	p.DropReply()
	c.send("mg foo v\r\nmg foo v\r\nmn\r\n")
	require.Equal(t, "VA 3\r\nbar\r\n", c.reply())
	require.Equal(t, "MN\r\n", c.reply(), "exactly one reply is lost")
	require.Equal(t, faultproxy.Stats{Accepted: 1, Forwarded: 3, Dropped: 1}, p.Stats())
}

// A text get of several keys, and a stats listing, are one reply each.
func TestTextRepliesAreWhole(t *testing.T) {
	_, p := start(t)
	c := dial(t, p.Addr())
	c.send("set a 0 0 1\r\n1\r\nset b 0 0 2\r\n22\r\n")
	require.Equal(t, "STORED\r\n", c.reply())
	require.Equal(t, "STORED\r\n", c.reply())

	p.DropReply()
	c.send("gets a b c a\r\nget b\r\n")
	require.Equal(t, "VALUE b 0 2\r\n22\r\nEND\r\n", c.reply())

	p.DuplicateReply()
	c.send("stats\r\nversion\r\n")
	first := c.reply()
	require.True(t, strings.HasPrefix(first, "STAT pid "), first)
	require.True(t, strings.HasSuffix(first, "\r\nEND\r\n"), first)
	second := c.reply()
	require.Equal(t, first, second)
	require.Equal(t, "VERSION 1.6.18\r\n", c.reply())
}

// Armed faults hit the next replies, oldest first, on any connection.
func TestFaultsInOrder(t *testing.T) {
	_, p := start(t)
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	p.DropReply()
	p.DuplicateReply()
	a.send("mn\r\n")
	a.send("mg x v\r\n") // a's replies come in order: the drop hits mn
	require.Equal(t, "EN\r\n", a.reply())
	require.Equal(t, "EN\r\n", a.reply())
	b.send("mn\r\nversion\r\n")
	require.Equal(t, "MN\r\n", b.reply())
	require.Equal(t, "VERSION 1.6.18\r\n", b.reply())
	require.Equal(t, faultproxy.Stats{Accepted: 2, Forwarded: 3, Dropped: 1, Duplicated: 1}, p.Stats())
}

func TestResetMidReply(t *testing.T) {
	t.Run("value", func(t *testing.T) {
		_, p := start(t)
		c := dial(t, p.Addr())
		c.send("ms foo 5\r\nhello\r\n")
		require.Equal(t, "HD\r\n", c.reply())
		p.ResetMidReply()
		c.send("mg foo s v\r\n")
		c.resetAfter("VA 5 s5\r\n")
		require.Equal(t, faultproxy.Stats{Accepted: 1, Forwarded: 1, Cut: 1, Resets: 1}, p.Stats())
		require.Equal(t, 0, p.Conns())
	})
	t.Run("line", func(t *testing.T) {
		_, p := start(t)
		c := dial(t, p.Addr())
		p.ResetMidReply()
		c.send("version\r\n")
		c.resetAfter("VERSION ")
	})
	t.Run("multi-get", func(t *testing.T) {
		_, p := start(t)
		c := dial(t, p.Addr())
		c.send("set a 0 0 1\r\n1\r\n")
		require.Equal(t, "STORED\r\n", c.reply())
		p.ResetMidReply()
		c.send("get a a\r\n")
		c.resetAfter("VALUE a 0 1\r\n")
	})
}

func TestBlackhole(t *testing.T) {
	_, p := start(t)
	old := dial(t, p.Addr())
	old.send("mn\r\n")
	require.Equal(t, "MN\r\n", old.reply())

	p.SetBlackhole(true)
	old.send("mn\r\n")
	old.silent()
	fresh := dial(t, p.Addr())
	fresh.send("version\r\n")
	fresh.silent()

	// Nothing was lost: the partition heals and the replies come, late.
	p.SetBlackhole(false)
	require.Equal(t, "MN\r\n", old.reply())
	require.Equal(t, "VERSION 1.6.18\r\n", fresh.reply())
}

func TestResetAll(t *testing.T) {
	_, p := start(t)
	a, b := dial(t, p.Addr()), dial(t, p.Addr())
	a.send("mn\r\n")
	b.send("mn\r\n")
	require.Equal(t, "MN\r\n", a.reply())
	require.Equal(t, "MN\r\n", b.reply())
	require.Equal(t, 2, p.Conns())

	p.ResetAll()
	require.Equal(t, 0, p.Conns())
	a.resetAfter("")
	b.resetAfter("")
	require.Equal(t, 2, p.Stats().Resets)

	c := dial(t, p.Addr())
	c.send("mn\r\n")
	require.Equal(t, "MN\r\n", c.reply(), "new connections work")
}

func TestLatency(t *testing.T) {
	_, p := start(t)
	c := dial(t, p.Addr())
	p.SetLatency(time.Hour)
	c.send("mn\r\n")
	c.silent()
	p.SetLatency(0) // releases what waits
	require.Equal(t, "MN\r\n", c.reply())
}

// A 1 MB value is held back by a low bandwidth limit and comes whole once
// it is lifted.
func TestBandwidth(t *testing.T) {
	mc, p := start(t)
	value := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MB
	direct := dial(t, mc.Addr)
	direct.send(fmt.Sprintf("ms big %d\r\n%s\r\n", len(value), value))
	require.Equal(t, "HD\r\n", direct.reply())

	c := dial(t, p.Addr())
	p.SetBandwidth(64 << 10)
	c.send("mg big v\r\nmn\r\n")
	require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(quiet)))
	early, err := io.ReadAll(c.r)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())
	require.Less(t, len(early), len(value)/2, "64 KB/s cannot carry 1 MB in %v", quiet)

	p.SetBandwidth(0)
	rest, err := c.tryReply(wait)
	require.NoError(t, err)
	require.Equal(t, "VA 1048576\r\n"+string(value)+"\r\n", string(early)+rest)
	require.Equal(t, "MN\r\n", c.reply())
}

// A 1 MB value passes through in both directions, and can be duplicated.
func TestLargeValue(t *testing.T) {
	_, p := start(t)
	value := bytes.Repeat([]byte("END\r\nVA 3\r\n"), 100_000)
	c := dial(t, p.Addr())
	c.send(fmt.Sprintf("set big 0 0 %d\r\n%s\r\n", len(value), value))
	require.Equal(t, "STORED\r\n", c.reply())
	p.DuplicateReply()
	c.send("get big\r\nmg big v\r\n")
	want := fmt.Sprintf("VALUE big 0 %d\r\n%s\r\nEND\r\n", len(value), value)
	require.Equal(t, want, c.reply())
	require.Equal(t, want, c.reply())
	require.Equal(t, fmt.Sprintf("VA %d\r\n%s\r\n", len(value), value), c.reply())
}

// observe runs one pipelined script through a fresh proxy with chaos and
// returns what the client saw, up to the end of the stream.
func observe(t *testing.T, upstream string, chaos faultproxy.Chaos) (string, faultproxy.Stats) {
	p := faultproxy.Start(t, upstream)
	p.SetChaos(chaos)
	c := dial(t, p.Addr())
	var script strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&script, "mg k%d v O%d\r\n", i%10, i)
	}
	c.send(script.String())
	require.NoError(t, c.conn.(*net.TCPConn).CloseWrite()) // memcached answers all, then closes
	require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(wait)))
	got, err := io.ReadAll(c.r)
	if err != nil {
		require.True(t, isReset(err), "%v", err)
	}
	require.NoError(t, p.Close())
	return string(got), p.Stats()
}

// The same seed gives the same faults; the replies that come through are
// whole, in order, and duplicates are adjacent.
func TestChaos(t *testing.T) {
	mc, _ := start(t)
	c := dial(t, mc.Addr)
	for i := 0; i < 10; i += 2 {
		c.send(fmt.Sprintf("ms k%d 2\r\nv%d\r\n", i, i))
		require.Equal(t, "HD\r\n", c.reply())
	}
	chaos := faultproxy.Chaos{Seed: 7, Drop: 0.1, Duplicate: 0.1, Reset: 0.005}
	got1, stats1 := observe(t, mc.Addr, chaos)
	got2, stats2 := observe(t, mc.Addr, chaos)
	require.Equal(t, got1, got2)
	require.Equal(t, stats1, stats2)
	require.Positive(t, stats1.Dropped)
	require.Positive(t, stats1.Duplicated)

	other, _ := observe(t, mc.Addr, faultproxy.Chaos{Seed: 8, Drop: 0.1, Duplicate: 0.1, Reset: 0.005})
	require.NotEqual(t, got1, other, "another seed, other faults")

	// Every reply seen is the right one for its opaque, opaques never go
	// back, and one comes at most twice.
	fr := &client{t: t, r: bufio.NewReader(strings.NewReader(got1))}
	last, seen := -1, 0
	for {
		r, err := fr.readReply()
		if err != nil {
			break // the end of the stream, or a cut reply
		}
		var o int
		if strings.HasPrefix(r, "VA") {
			_, err = fmt.Sscanf(r, "VA 2 O%d\r\n", &o)
			require.NoError(t, err, r)
			require.Equal(t, fmt.Sprintf("VA 2 O%d\r\nv%d\r\n", o, o%10), r)
		} else {
			_, err = fmt.Sscanf(r, "EN O%d\r\n", &o)
			require.NoError(t, err, r)
			require.Equal(t, 1, o%2, r)
		}
		switch {
		case o > last:
			last, seen = o, 1
		case o == last && seen == 1:
			seen++
		default:
			t.Fatalf("reply O%d after O%d (seen %d times)", o, last, seen)
		}
	}
	if stats1.Cut == 0 {
		require.Equal(t, 300, stats1.Forwarded+stats1.Dropped)
	}
}

// readReply reads one reply from a reader that is not a connection.
func (c *client) readReply() (string, error) {
	line, err := c.r.ReadString('\n')
	if err != nil {
		return line, err
	}
	if strings.HasPrefix(line, "VA ") {
		size, _ := strconv.Atoi(strings.Fields(line)[1])
		block := make([]byte, size+2)
		n, err := io.ReadFull(c.r, block)
		return line + string(block[:n]), err
	}
	return line, nil
}

// Close ends every goroutine, whatever its connections were doing, and each
// connection costs at most two.
func TestCloseEndsGoroutines(t *testing.T) {
	leakcheck.Check(t)
	mc := memcachetest.Start(t, memcachetest.Options{MaxItemSize: "2m"})
	p, err := faultproxy.New(mc.Addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() }) // when a check fails before Close

	value := strings.Repeat("x", 1<<20)
	set := dial(t, mc.Addr)
	set.send(fmt.Sprintf("ms big %d\r\n%s\r\n", len(value), value))
	require.Equal(t, "HD\r\n", set.reply())

	var clients []*client
	for i := 0; i < 4; i++ {
		c := dial(t, p.Addr())
		c.send("mn\r\n")
		require.Equal(t, "MN\r\n", c.reply())
		clients = append(clients, c)
	}
	p.SetBandwidth(1000)
	clients[0].send("mg big v\r\n") // paced, and nobody reads it
	p.SetLatency(time.Hour)
	clients[1].send("mn\r\n") // held by latency
	p.SetBlackhole(true)
	clients[2].send("mn\r\n")          // held by the blackhole
	clients[3].send("mg never-ending") // a request cut short
	dial(t, p.Addr()).send("mn\r\n")   // a connection accepted during the blackhole

	n := 0
	for _, g := range leakcheck.Leaked() {
		if strings.Contains(g, "faultproxy.") {
			n++
		}
	}
	require.LessOrEqual(t, n, 2*5+1)

	require.NoError(t, p.Close())
	// Close has waited for every goroutine's Done; one may still be
	// returning from its last deferred call.
	require.Eventually(t, func() bool { return len(leakcheck.Leaked()) == 0 }, time.Second, time.Millisecond,
		"no goroutine outlives Close")
	require.Equal(t, 0, p.Conns())
	require.NoError(t, p.Close(), "a second Close does nothing")
}

// A client of a proxy whose upstream is gone sees its connection closed.
func TestUpstreamDown(t *testing.T) {
	leakcheck.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	p := faultproxy.Start(t, addr)
	c := dial(t, p.Addr())
	require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(wait)))
	_, err = c.r.ReadByte()
	require.ErrorIs(t, err, io.EOF)
}

// Faults may change from any goroutine while traffic flows (run with -race).
func TestConcurrentChanges(t *testing.T) {
	_, p := start(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 1_000_000; i++ { // until the traffic is done
			select {
			case <-stop:
				return
			default:
			}
			p.SetLatency(time.Duration(i%2) * time.Microsecond)
			p.SetBandwidth((i % 3) << 20)
			p.SetBlackhole(false)
			p.SetChaos(faultproxy.Chaos{Seed: uint64(i), MaxDelay: time.Microsecond})
			_ = p.Stats()
			_ = p.Conns()
			runtime.Gosched() // let the traffic run between changes
		}
	}()
	for i := 0; i < 4; i++ {
		c := dial(t, p.Addr())
		for j := 0; j < 50; j++ {
			c.send("mn\r\n")
			require.Equal(t, "MN\r\n", c.reply())
		}
	}
	close(stop)
	wg.Wait()
}
