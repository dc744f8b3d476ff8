package serializer

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Interop with Debian's python3-memcache (python-memcached 1.59), which
// `make test` installs, and python3-pylibmc (1.6), which shares its flag
// meanings except that it writes ints with flag 4. Always /usr/bin/python3:
// the python3 first on PATH may be a build without the Debian modules.

const systemPython = "/usr/bin/python3"

type pyClient struct {
	name    string // subtest name
	module  string // python module
	pkg     string // Debian package
	connect string // expression for a client of sys.argv[1]
	intFlag uint32 // flags it writes for an int
	unknown string // type(get()) (or exception) for a value with memkit's own flags
}

var pyClients = []pyClient{
	{"python-memcached", "memcache", "python3-memcache", "memcache.Client([sys.argv[1]])", flagInt, "ValueError"},
	{"pylibmc", "pylibmc", "python3-pylibmc", "pylibmc.Client([sys.argv[1]])", flagLong, "bytes"},
}

func requirePython(t *testing.T, c pyClient) {
	t.Helper()
	out, err := exec.Command(systemPython, "-c", "import "+c.module).CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s unavailable (%v: %s); run `make deps` (apt-get install %s)", c.name, err, out, c.pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// runPython runs script with the server address as sys.argv[1] and returns
// its stdout lines.
func runPython(t *testing.T, addr, script string) []string {
	t.Helper()
	cmd := exec.Command(systemPython, "-c", script, addr)
	cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	require.NoError(t, cmd.Wait(), "python: %s", stderr.String())
	return strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
}

// rawConn speaks just enough of memcached's text protocol to store and
// fetch bytes with flags, independent of memclient.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(20*time.Second)))
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (rc *rawConn) set(key string, flags uint32, data []byte) {
	rc.t.Helper()
	_, err := fmt.Fprintf(rc.c, "set %s %d 0 %d\r\n%s\r\n", key, flags, len(data), data)
	require.NoError(rc.t, err)
	line, err := rc.r.ReadString('\n')
	require.NoError(rc.t, err)
	require.Equal(rc.t, "STORED\r\n", line)
}

func (rc *rawConn) gets(key string) ([]byte, uint32) {
	rc.t.Helper()
	_, err := fmt.Fprintf(rc.c, "gets %s\r\n", key)
	require.NoError(rc.t, err)
	line, err := rc.r.ReadString('\n')
	require.NoError(rc.t, err)
	f := strings.Fields(line)
	require.Len(rc.t, f, 5, "VALUE line %q", line)
	require.Equal(rc.t, "VALUE", f[0])
	require.Equal(rc.t, key, f[1])
	flags, err := strconv.ParseUint(f[2], 10, 32)
	require.NoError(rc.t, err)
	n, err := strconv.Atoi(f[3])
	require.NoError(rc.t, err)
	data := make([]byte, n+2)
	_, err = io.ReadFull(rc.r, data)
	require.NoError(rc.t, err)
	require.Equal(rc.t, "\r\n", string(data[n:]))
	end, err := rc.r.ReadString('\n')
	require.NoError(rc.t, err)
	require.Equal(rc.t, "END\r\n", end)
	return data[:n], uint32(flags)
}

func TestPythonWritesGoReads(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	for _, pc := range pyClients {
		t.Run(pc.name, func(t *testing.T) { testPythonWritesGoReads(t, srv.Addr, pc) })
	}
}

func testPythonWritesGoReads(t *testing.T, addr string, pc pyClient) {
	requirePython(t, pc)
	out := runPython(t, addr, "import sys, "+pc.module+"\nmc = "+pc.connect+`
ok = [
    mc.set('py_str', 'héllo wörld ✓'),
    mc.set('py_bytes', b'\x00\xffraw'),
    mc.set('py_int', 42),
    mc.set('py_neg', -1234567890123),
    mc.set('py_zstr', 'abc' * 2000, min_compress_len=100),
    mc.set('py_zbytes', b'xyz' * 2000, min_compress_len=100),
    mc.set('py_pickle', {'a': 1}),
]
print(all(ok))
`)
	require.Equal(t, []string{"True"}, out)

	rc := dialRaw(t, addr)
	var s Serializer
	tests := []struct {
		key    string
		flags  uint32
		target any
		want   any
	}{
		{"py_str", 16, new(string), "héllo wörld ✓"},
		{"py_bytes", 0, new([]byte), []byte("\x00\xffraw")},
		{"py_int", pc.intFlag, new(int), 42},
		{"py_neg", pc.intFlag, new(int64), int64(-1234567890123)},
		{"py_zstr", 16 | 8, new(string), strings.Repeat("abc", 2000)},
		{"py_zbytes", 8, new([]byte), []byte(strings.Repeat("xyz", 2000))},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			data, flags := rc.gets(tt.key)
			require.Equal(t, tt.flags, flags, "%s's flags", pc.name)
			require.NoError(t, s.Unmarshal(data, flags, tt.target))
			assert.Equal(t, tt.want, deref(tt.target))
			var a any
			require.NoError(t, s.Unmarshal(data, flags, &a), "into *any")
		})
	}
	t.Run("py_any_types", func(t *testing.T) {
		for key, want := range map[string]any{"py_str": "héllo wörld ✓", "py_bytes": []byte("\x00\xffraw"), "py_int": int64(42)} {
			data, flags := rc.gets(key)
			var a any
			require.NoError(t, s.Unmarshal(data, flags, &a))
			assert.Equal(t, want, a, key)
		}
	})
	t.Run("py_pickle refused", func(t *testing.T) {
		data, flags := rc.gets("py_pickle")
		require.Equal(t, uint32(1), flags)
		var a any
		err := s.Unmarshal(data, flags, &a)
		assert.ErrorIs(t, err, ErrPickle)
		assert.Nil(t, a)
	})
}

func deref(p any) any {
	switch x := p.(type) {
	case *string:
		return *x
	case *[]byte:
		return *x
	case *int:
		return *x
	case *int64:
		return *x
	}
	panic(fmt.Sprintf("deref %T", p))
}

func TestGoWritesPythonReads(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	for _, pc := range pyClients {
		t.Run(pc.name, func(t *testing.T) { testGoWritesPythonReads(t, srv.Addr, pc) })
	}
}

func testGoWritesPythonReads(t *testing.T, addr string, pc pyClient) {
	requirePython(t, pc)
	rc := dialRaw(t, addr)

	var s Serializer // the zero value: python interop by default
	long := strings.Repeat("xyz", 3000)
	values := []struct {
		key   string
		v     any
		flags uint32
		repr  string // python's repr of mc.get(key); for memkit codecs the type name
	}{
		{"go_str", "héllo wörld ✓", 16, "'héllo wörld ✓'"},
		{"go_bytes", []byte("\x00\xffraw"), 0, `b'\x00\xffraw'`},
		{"go_int", 42, 2, "42"},
		{"go_neg", int64(-1234567890123), 2, "-1234567890123"},
		{"go_uint64", uint64(18446744073709551615), 2, "18446744073709551615"},
		{"go_zstr", long, 16 | 8, "'" + long + "'"},
		{"go_zbytes", []byte(long), 8, "b'" + long + "'"},
		{"go_msgpack", map[string]any{"a": 1}, msgpackID << codecShift, pc.unknown},
		{"go_msgpack_zlib", map[string]any{"a": long}, msgpackID<<codecShift | flagZlib, pc.unknown},
	}
	for _, v := range values {
		s := s
		if v.key == "go_msgpack_zlib" {
			s.Compressor = Zlib
		}
		data, flags, err := s.Marshal(v.v)
		require.NoError(t, err, v.key)
		require.Equal(t, v.flags, flags, v.key)
		rc.set(v.key, flags, data)
	}

	var script strings.Builder
	script.WriteString("import sys, " + pc.module + "\nmc = " + pc.connect + "\n")
	for _, v := range values {
		show := "repr"
		if strings.HasPrefix(v.key, "go_msgpack") {
			show = "lambda v: type(v).__name__"
		}
		fmt.Fprintf(&script, "try:\n    print((%s)(mc.get(%q)))\nexcept Exception as e:\n    print(type(e).__name__)\n", show, v.key)
	}
	out := runPython(t, addr, script.String())
	require.Len(t, out, len(values))
	for i, v := range values {
		assert.Equal(t, v.repr, out[i], v.key)
	}
}
