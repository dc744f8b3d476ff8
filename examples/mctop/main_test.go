package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// TestMain lets the tests run mctop itself as a process: the test binary
// re-executed with $MCTOP_TEST_MAIN set is mctop.
func TestMain(m *testing.M) {
	if os.Getenv("MCTOP_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

func cluster(t *testing.T, n int) ([]*memcachetest.Server, []memclient.Server) {
	srvs := memcachetest.StartN(t, n, memcachetest.Options{})
	servers := make([]memclient.Server, n)
	for i, s := range srvs {
		servers[i] = memclient.Server{Addr: s.Addr, Weight: i + 1}
	}
	return srvs, servers
}

// client returns a client of servers, closed when the test ends.
func client(t *testing.T, servers []memclient.Server) *memclient.Client {
	t.Helper()
	cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers})
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestFrame(t *testing.T) {
	leakcheck.Check(t)
	_, servers := cluster(t, 3)
	cl := client(t, servers)
	ctx := context.Background()

	prev := collect(ctx, cl)
	require.NoError(t, prev.err)
	// Between the samples: 3 sets, 3 hits and 1 miss.
	for _, k := range []string{"a", "b", "c"} {
		require.NoError(t, cl.Set(ctx, &memclient.Item{Key: k, Value: []byte("v")}))
		_, err := cl.Get(ctx, k)
		require.NoError(t, err)
	}
	_, err := cl.Get(ctx, "missing")
	require.ErrorIs(t, err, memclient.ErrCacheMiss)
	cur := collect(ctx, cl)
	require.NoError(t, cur.err)
	assert.True(t, cur.allUp())

	frame := strings.Join(render(prev, cur, 0), "\n")
	for i, s := range servers {
		l := line(t, frame, s.Addr+"/"+string(rune('1'+i)))
		assert.Regexp(t, `\s+up\s+[0-9.]+(µs|ms)\s`, l, "each server with its weight, state and ping round trip")
	}
	for _, head := range []string{"SERVER/WEIGHT", "STATE", "RTT", "GET/s", "HIT%", "SET/s", "MEMORY", "ITEMS", "EVICT/s", "CONNS", "HIT%ALL", "EVICTIONS"} {
		assert.Contains(t, line(t, frame, "SERVER/WEIGHT"), head, "no width limit: every column")
	}
	total := line(t, frame, "total")
	assert.Contains(t, total, "3/3 up")
	assert.Contains(t, total, "75.0%", "3 hits and 1 miss over the interval")
	assert.NotContains(t, frame, "more columns")
}

// TestFrameFitsWidth: no line is wider than the terminal; the least
// needed columns go first, and the server name is cut last.
func TestFrameFitsWidth(t *testing.T) {
	leakcheck.Check(t)
	_, servers := cluster(t, 2)
	cl := client(t, servers)
	ctx := context.Background()
	prev := collect(ctx, cl)
	cur := collect(ctx, cl)
	for _, tc := range []struct {
		width      int
		want, gone []string
	}{
		{width: 200, want: []string{"RTT", "GET/s", "HIT%ALL", "EVICTIONS"}},
		{width: 80, want: []string{"RTT", "GET/s", "HIT%", "SET/s", "MEMORY"}, gone: []string{"EVICTIONS", "HIT%ALL"}},
		{width: 60, want: []string{"RTT", "GET/s", "HIT%"}, gone: []string{"MEMORY", "CONNS"}},
		{width: 40, want: []string{"STATE", "RTT"}, gone: []string{"GET/s"}},
		{width: 24, want: []string{"SERVER/WEIG"}, gone: []string{"RTT"}},
	} {
		t.Run(fmt.Sprint(tc.width), func(t *testing.T) {
			lines := render(prev, cur, tc.width)
			for _, l := range lines {
				assert.LessOrEqual(t, utf8.RuneCountInString(l), tc.width, "%q", l)
			}
			frame := strings.Join(lines, "\n")
			head := line(t, frame, "SERVER/WEIG")
			for _, h := range tc.want {
				assert.Contains(t, head, h)
			}
			for _, h := range tc.gone {
				assert.NotContains(t, head, h)
			}
			if len(tc.gone) > 0 && tc.width > 60 {
				assert.Contains(t, lines[0], "more columns if wider")
			}
			assert.Contains(t, frame, "total")
		})
	}
}

func TestFrameServerDown(t *testing.T) {
	leakcheck.Check(t)
	srvs, servers := cluster(t, 2)
	cl := client(t, servers)
	ctx := context.Background()
	prev := collect(ctx, cl)
	srvs[1].Kill()
	cur := collect(ctx, cl)
	require.Error(t, cur.err)
	assert.False(t, cur.allUp())

	frame := strings.Join(render(prev, cur, 0), "\n")
	down := line(t, frame, servers[1].Addr)
	assert.Regexp(t, `(DOWN|ERROR)`, down)
	assert.Regexp(t, `(DOWN|ERROR) +memclient: `, down, "why it is down")
	assert.Contains(t, line(t, frame, servers[0].Addr), " up ")
	assert.Contains(t, line(t, frame, "total"), "1/2 up")
	assert.Contains(t, frame, "stats: ")
}

// frames is a frameWriter that keeps the frames.
type frames struct {
	width int
	got   [][]string
}

func (f *frames) size() (int, int)            { return f.width, 0 }
func (f *frames) frame(lines []string, _ int) { f.got = append(f.got, lines) }
func (f *frames) last() string                { return strings.Join(f.got[len(f.got)-1], "\n") }

func TestTopOnce(t *testing.T) {
	leakcheck.Check(t)
	srvs, servers := cluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := &frames{width: 100}
	up, err := top(ctx, out, servers, time.Millisecond, true)
	require.NoError(t, err)
	assert.True(t, up)
	assert.Len(t, out.got, 1, "one frame")
	assert.Contains(t, out.last(), servers[0].Addr+"/1")

	srvs[0].Kill()
	out = &frames{width: 100}
	up, err = top(ctx, out, servers, time.Millisecond, true)
	require.NoError(t, err)
	assert.False(t, up, "a server is down")
}

func TestReadKeys(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		read     int // bytes read before quitting
	}{
		{name: "q", in: "abq-more", read: 3},
		{name: "Q", in: "Q", read: 1},
		{name: "ctrl-c in raw mode", in: "x\x03", read: 2},
		{name: "ctrl-d", in: "\x04", read: 1},
		{name: "end of input", in: "xyz", read: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &countingReader{r: strings.NewReader(tc.in)}
			quit := make(chan struct{})
			readKeys(r, func() { close(quit) })
			select {
			case <-quit:
			default:
				t.Fatal("did not quit")
			}
			assert.LessOrEqual(t, tc.read, r.n)
		})
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:1])
	c.n += n
	return n, err
}

// TestInspectKey asks real servers about keys: where each is, its TTL
// left, last access, size, flags and slab class.
func TestInspectKey(t *testing.T) {
	leakcheck.Check(t)
	_, servers := cluster(t, 3)
	cl := client(t, servers)
	ctx := context.Background()
	require.NoError(t, cl.Set(ctx, &memclient.Item{Key: "user:42", Value: []byte("hello"), Flags: 7, TTL: 100 * time.Second}))
	require.NoError(t, cl.Set(ctx, &memclient.Item{Key: "forever", Value: bytes.Repeat([]byte("x"), 3000)}))

	holder := func(key string) string {
		t.Helper()
		// Where the key is, asked of each server alone (after the
		// inspection, which must not depend on this).
		var on []string
		for _, s := range servers {
			one, err := memclient.NewFromConfig(memclient.Config{Servers: []memclient.Server{{Addr: s.Addr}}})
			require.NoError(t, err)
			if _, err := one.Get(ctx, key); err == nil {
				on = append(on, s.Addr)
			}
			one.Close()
		}
		require.Len(t, on, 1)
		return on[0]
	}

	infos := inspectKey(ctx, servers, "user:42")
	require.Len(t, infos, 3)
	var found []keyInfo
	for _, in := range infos {
		require.NoError(t, in.Err)
		if in.Found {
			found = append(found, in)
		}
	}
	require.Len(t, found, 1)
	in := found[0]
	assert.Equal(t, holder("user:42"), in.Server)
	assert.Greater(t, in.TTL, 90*time.Second)
	assert.LessOrEqual(t, in.TTL, 100*time.Second)
	assert.Equal(t, 5, in.Size)
	assert.Equal(t, uint32(7), in.Flags)
	assert.False(t, in.Fetched, "set, never read")
	assert.GreaterOrEqual(t, in.LastAccess, time.Duration(0))
	assert.Less(t, in.LastAccess, time.Minute)
	assert.Positive(t, in.SlabClass)

	for _, in := range inspectKey(ctx, servers, "user:42") {
		if in.Found {
			assert.True(t, in.Fetched, "the first inspection read it (and holder)")
		}
	}
	for _, in := range inspectKey(ctx, servers, "forever") {
		if in.Found {
			assert.Equal(t, time.Duration(-1), in.TTL, "never expires")
			assert.Equal(t, 3000, in.Size)
			assert.Greater(t, in.SlabClass, found[0].SlabClass, "a bigger item, a bigger slab class")
		}
	}
	for _, in := range inspectKey(ctx, servers, "no-such-key") {
		assert.NoError(t, in.Err)
		assert.False(t, in.Found)
	}

	var out strings.Builder
	assert.True(t, printKey(ctx, &out, servers, "user:42"))
	assert.Regexp(t, `(?m)^`+in.Server+`\s+yes\s+1m[0-9]+s\s+[0-9]+s ago\s+yes\s+5 B\s+7\s+[0-9]+$`, out.String())
	assert.Contains(t, out.String(), "On "+in.Server+".")
	out.Reset()
	assert.False(t, printKey(ctx, &out, servers, "no-such-key"))
	assert.Contains(t, out.String(), "No server holds the key.")
}

func TestCheckKey(t *testing.T) {
	for _, k := range []string{"", "a b", "a\nb", "a\rb", "tab\t", "\x7f", strings.Repeat("k", 251)} {
		assert.Error(t, checkKey(k), "%q", k)
	}
	for _, k := range []string{"a", "user:42", "ünïcode", strings.Repeat("k", 250)} {
		assert.NoError(t, checkKey(k), "%q", k)
	}
}

func TestParseAnswers(t *testing.T) {
	cls, err := parseMe("ME k1 exp=-98 la=2 cas=1 fetch=no cls=3 size=70", "k1")
	require.NoError(t, err)
	assert.Equal(t, 3, cls)
	_, err = parseMe("ME other exp=-1 cls=1", "k1")
	assert.Error(t, err, "another key's answer")
	_, err = parseMe("SERVER_ERROR out of memory", "k1")
	assert.Error(t, err)

	var in keyInfo
	require.NoError(t, parseMg("HD t97 l3 h1 s5 f7", &in))
	assert.Equal(t, keyInfo{TTL: 97 * time.Second, LastAccess: 3 * time.Second, Fetched: true, Size: 5, Flags: 7}, in)
	require.NoError(t, parseMg("HD t-1 l0 h0 s1 f0", &in))
	assert.Equal(t, time.Duration(-1), in.TTL)
	assert.Error(t, parseMg("HD t97 l3", &in), "flags missing")
	assert.Error(t, parseMg("CLIENT_ERROR bad command line format", &in))
	assert.Error(t, parseMg("HD tx l3 h1 s5 f7", &in))
}

// mctop runs mctop as a process with args and returns its output and exit
// code.
func mctop(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MCTOP_TEST_MAIN=1", "MEMKIT_MEMCACHED=", "COLUMNS=100")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	require.NoError(t, err, "%s", out)
	return string(out), 0
}

// TestProcess runs mctop as an operator would, in a script: -once exits
// 0 with every server up and 1 with one down; -key exits 0 when a server
// holds the key and 1 when none does; a bad command line exits 2. Its
// output is not a terminal: plain text, as wide as $COLUMNS.
func TestProcess(t *testing.T) {
	leakcheck.Check(t)
	srvs, servers := cluster(t, 3)
	list := make([]string, len(servers))
	for i, s := range servers {
		list[i] = fmt.Sprintf("%s:%d", s.Addr, s.Weight)
	}
	all := strings.Join(list, ",")
	cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers})
	require.NoError(t, err)
	require.NoError(t, cl.Set(context.Background(), &memclient.Item{Key: "k", Value: []byte("v")}))
	cl.Close()

	out, code := mctop(t, "-once", "-interval", "200ms", "-memcached", all)
	assert.Equal(t, 0, code, out)
	assert.Equal(t, 1, strings.Count(out, "mctop - "), "one frame")
	assert.NotContains(t, out, "\x1b[", "no terminal control when the output is not a terminal")
	for _, l := range strings.Split(out, "\n") {
		assert.LessOrEqual(t, utf8.RuneCountInString(l), 100, "$COLUMNS")
	}
	assert.Contains(t, line(t, out, "total"), "3/3 up")

	out, code = mctop(t, "-key", "k", "-memcached", all)
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "yes")
	out, code = mctop(t, "-key", "nope", "-memcached", all)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "No server holds the key.")

	srvs[2].Kill()
	out, code = mctop(t, "-once", "-interval", "200ms", "-memcached", all)
	assert.Equal(t, 1, code, "a server is down: %s", out)
	assert.Contains(t, line(t, out, "total"), "2/3 up")

	for _, args := range [][]string{
		{"-once"}, // no servers
		{"-memcached", "127.0.0.1"},
		{"-memcached", all, "-interval", "0s"},
		{"-memcached", all, "-key", "a b"},
		{"-memcached", all, "stray"},
		{"-no-such-flag"},
	} {
		out, code := mctop(t, args...)
		assert.Equal(t, 2, code, "%q: %s", args, out)
	}
	out, code = mctop(t, "-help")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "-key")
}

// line returns the line of frame that starts with prefix.
func line(t *testing.T, frame, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(frame, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, frame)
	return ""
}
