package hostile_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/hostile"
	"github.com/memkit/memkit/internal/leakcheck"
)

// wait bounds every blocking read; a test that hits it has found a bug.
const wait = 10 * time.Second

// quiet is how long a read waits to show that nothing arrives; a slow
// machine only makes the proof take longer.
const quiet = 200 * time.Millisecond

// client is a raw connection with a line reader.
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
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *client) send(s string) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetWriteDeadline(time.Now().Add(wait)))
	_, err := io.WriteString(c.conn, s)
	require.NoError(c.t, err)
}

func (c *client) line() string {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(wait)))
	line, err := c.r.ReadString('\n')
	require.NoError(c.t, err, "after %q", line)
	return line
}

// rest reads until the connection ends and returns what came and how it
// ended.
func (c *client) rest() (string, error) {
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(wait)))
	b, err := io.ReadAll(c.r)
	return string(b), err
}

func (c *client) silent() {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(quiet)))
	b, err := c.r.ReadByte()
	var ne net.Error
	require.True(c.t, errors.As(err, &ne) && ne.Timeout(), "want silence, got %q, %v", b, err)
}

// The fifth reply on a connection comes twice; the rest are correct.
func TestDuplicateFifth(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
		w.WriteCorrect()
		if req.N == 4 {
			w.WriteCorrect()
		}
	})
	c := dial(t, s.Addr())
	c.send("ms a 1\r\n1\r\nms b 1\r\n2\r\nmg a v\r\nmg b v\r\nmg a v O5\r\nmn\r\n")
	var got []string
	for line := ""; line != "MN\r\n"; {
		line = c.line()
		got = append(got, line)
	}
	require.Equal(t, []string{"HD\r\n", "HD\r\n", "VA 1\r\n", "1\r\n", "VA 1\r\n", "2\r\n",
		"VA 1 O5\r\n", "1\r\n", "VA 1 O5\r\n", "1\r\n", "MN\r\n"}, got)
}

// The handler can write anything: garbage, a missing reply, an extra one,
// a reply in pieces.
func TestScriptedReplies(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
		switch req.N {
		case 0:
			_, _ = w.WriteString("GARBAGE \x00\xff\r\n")
		case 1: // nothing: a missing reply
		case 2:
			_, _ = w.WriteString("HD\r\n") // an extra reply, then the right one
			w.WriteCorrect()
		case 3:
			_, _ = w.WriteString("VA 5\r\nhe")
			assert.NoError(t, w.Flush()) // not require: this is not the test's goroutine
			_, _ = w.WriteString("llo\r\n")
		default:
			w.WriteCorrect()
		}
	})
	c := dial(t, s.Addr())
	c.send("mg a v\r\nmg b v\r\nmg c v\r\nmg d v\r\nmn\r\n")
	var got []string
	for line := ""; line != "MN\r\n"; {
		line = c.line()
		got = append(got, line)
	}
	require.Equal(t, []string{"GARBAGE \x00\xff\r\n", "HD\r\n", "EN\r\n", "VA 5\r\n", "hello\r\n", "MN\r\n"}, got)
}

// Requests records every request with its data block and where it came
// from; the store answers a get with what was set on the server.
func TestRequests(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, hostile.Correctly)
	a := dial(t, s.Addr())
	a.send("set k 3 0 4\r\na\r\nb\r\n")
	require.Equal(t, "STORED\r\n", a.line())
	b := dial(t, s.Addr())
	b.send("get k\r\n")
	require.Equal(t, "VALUE k 3 4\r\n", b.line())
	require.Equal(t, "a\r\nb\r\n", b.line()+b.line())
	require.Equal(t, "END\r\n", b.line())

	reqs := s.Requests()
	require.Equal(t, []hostile.Request{
		{Line: "set k 3 0 4", Data: []byte("a\r\nb"), Conn: 0, N: 0, Correct: []byte("STORED\r\n")},
		{Line: "get k", Conn: 1, N: 0, Correct: []byte("VALUE k 3 4\r\na\r\nb\r\nEND\r\n")},
	}, reqs)
	reqs[0].Data[0] = 'X'
	require.Equal(t, "a\r\nb", string(s.Requests()[0].Data), "Requests returns copies")
}

// After Hang, requests are read and recorded but never answered.
func TestHang(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
		w.WriteCorrect()
		if req.N == 0 {
			w.Hang()
		}
	})
	c := dial(t, s.Addr())
	c.send("mn\r\nmn\r\n")
	require.Equal(t, "MN\r\n", c.line())
	c.silent()
	require.Eventually(t, func() bool { return len(s.Requests()) == 2 }, wait, time.Millisecond)
	require.Equal(t, 1, s.Conns(), "the connection stays open")

	other := dial(t, s.Addr())
	other.send("mn\r\nmn\r\n")
	require.Equal(t, "MN\r\n", other.line(), "other connections are not hung")
}

// Endless sends junk without a line end until the client goes.
func TestEndless(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
		_, _ = w.WriteString("VALUE k 0 ")
		w.Endless()
	})
	c := dial(t, s.Addr())
	c.send("get k\r\n")
	require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(wait)))
	buf := make([]byte, 3<<20)
	n, err := io.ReadFull(c.r, buf)
	require.NoError(t, err)
	require.Equal(t, 3<<20, n)
	require.True(t, strings.HasPrefix(string(buf), "VALUE k 0 endless-junk-"))
	require.NotContains(t, string(buf), "\n")
	require.NoError(t, c.conn.Close())
	require.Eventually(t, func() bool { return s.Conns() == 0 }, wait, time.Millisecond, "the server notices the client left")
}

func TestCloseAndReset(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
		_, _ = w.WriteString("VA 10\r\nhalf")
		if req.Line == "mg reset v" {
			w.Reset()
		} else {
			w.Close()
		}
		_, err := w.WriteString("more")
		assert.ErrorIs(t, err, net.ErrClosed)
	})
	c := dial(t, s.Addr())
	c.send("mg close v\r\n")
	got, err := c.rest()
	require.NoError(t, err, "a close is an EOF")
	require.Equal(t, "VA 10\r\nhalf", got)

	c = dial(t, s.Addr())
	c.send("mg reset v\r\n")
	got, err = c.rest()
	require.Equal(t, "VA 10\r\nhalf", got)
	require.Error(t, err)
	if runtime.GOOS == "linux" {
		require.ErrorIs(t, err, syscall.ECONNRESET)
	}
}

// quit closes the connection, as memcached does.
func TestQuit(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, hostile.Correctly)
	c := dial(t, s.Addr())
	c.send("mn\r\nquit\r\nmn\r\n")
	got, err := c.rest()
	require.NoError(t, err)
	require.Equal(t, "MN\r\n", got)
}

// A value too large is read, not taken for commands, and refused.
func TestOversizedRequest(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, hostile.Correctly)
	c := dial(t, s.Addr())
	big := strings.Repeat("mn\r\n", hostile.MaxValue/4+1)
	c.send(fmt.Sprintf("ms k %d\r\n%s\r\nmn\r\n", len(big), big))
	require.Equal(t, "SERVER_ERROR object too large for cache\r\n", c.line())
	require.Equal(t, "MN\r\n", c.line())
	require.Nil(t, s.Requests()[0].Data)
}

// Close releases a handler that waits, and ends every goroutine whatever
// its connections were doing.
func TestCloseEndsGoroutines(t *testing.T) {
	leakcheck.Check(t)
	entered := make(chan struct{}, 1)
	s, err := hostile.New(func(req hostile.Request, w *hostile.Reply) {
		switch req.Line {
		case "block":
			entered <- struct{}{}
			<-w.Done()
		case "hang":
			w.Hang()
		case "endless":
			w.Endless()
		default:
			w.WriteCorrect()
		}
	})
	require.NoError(t, err)
	t.Cleanup(s.Close) // when a check fails before Close
	for _, cmd := range []string{"block", "hang", "endless", "mn"} {
		dial(t, s.Addr()).send(cmd + "\r\n")
	}
	<-entered
	c := dial(t, s.Addr())
	c.send("mg " + strings.Repeat("x", 100)) // a request line that never ends
	s.Close()
	// Close has waited for every goroutine's Done; one may still be
	// returning from its last deferred call.
	require.Eventually(t, func() bool { return len(leakcheck.Leaked()) == 0 }, time.Second, time.Millisecond,
		"no goroutine outlives Close")
	require.Equal(t, 0, s.Conns())
	_, err = net.DialTimeout("tcp", s.Addr(), wait)
	require.Error(t, err, "a closed server accepts nothing")
	s.Close() // again: nothing
}
