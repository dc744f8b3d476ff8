package memclient

// Interoperability with the Python clients a Go service shares a cluster
// with: python-memcached (DistributionModula) and pylibmc with
// behaviors={"ketama_weighted": True}, i.e. libmemcached's weighted ketama
// (DistributionKetama). The Python side is Debian's python3-memcache and
// python3-pylibmc, run with /usr/bin/python3. Without them the tests skip,
// except under CI=true, where they fail.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/stretchr/testify/require"
)

const systemPython = "/usr/bin/python3"

// requirePython skips the test (fails it under CI=true) unless
// /usr/bin/python3 can run setup, typically an import; packages are the
// Debian packages that bring what is missing.
func requirePython(t *testing.T, setup, what, packages string) {
	t.Helper()
	out, err := exec.Command(systemPython, "-c", setup).CombinedOutput()
	if err == nil {
		return
	}
	missingTool(t, fmt.Sprintf("%s not usable from %s (make deps, or apt-get install %s): %v: %s", what, systemPython, packages, err, out))
}

// requireCommand returns the path of the program name, or skips the test
// (fails it under CI=true) when it is not installed; package is the Debian
// package that brings it.
func requireCommand(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missingTool(t, fmt.Sprintf("%s not found (make deps, or apt-get install %s): %v", name, pkg, err))
	}
	return path
}

// missingTool fails the test under CI=true, where every tool must be
// installed, and skips it elsewhere, saying what to install.
func missingTool(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// runPython runs script with /usr/bin/python3, input as JSON on stdin, and
// decodes its stdout as JSON into out.
func runPython(t *testing.T, script string, input, out any) {
	t.Helper()
	in, err := json.Marshal(input)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, systemPython, "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "python: %s", stderr.String())
	if out != nil {
		require.NoError(t, json.Unmarshal(stdout, out), "python output: %.500s", stdout)
	}
}

// interopKeys returns n distinct valid keys of assorted shapes, some of
// them UTF-8, so that hashing is checked on bytes rather than characters.
func interopKeys(n int) []string {
	shapes := []string{"key:%d", "user/%d/session", "ключ-%d", "%d", "objcache:v2:Product:%d:名前", "k%d-" + strings.Repeat("x", 200)}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf(shapes[i%len(shapes)], i)
	}
	return keys
}

// libmemcachedScript maps keys to server indexes with libmemcached itself,
// through ctypes: memcached_generate_hash after
// MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED (16), which is what pylibmc's
// behaviors={"ketama_weighted": True} sets. Nothing connects anywhere.
const libmemcachedScript = `
import ctypes, json, sys
lib = ctypes.CDLL("libmemcached.so.11")
lib.memcached_create.restype = ctypes.c_void_p
lib.memcached_create.argtypes = [ctypes.c_void_p]
lib.memcached_free.argtypes = [ctypes.c_void_p]
lib.memcached_server_add_with_weight.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_uint32]
lib.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
lib.memcached_generate_hash.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.memcached_generate_hash.restype = ctypes.c_uint32
req = json.load(sys.stdin)
keys = [k.encode() for k in req["keys"]]
out = []
for servers in req["configs"]:
    m = lib.memcached_create(None)
    assert lib.memcached_behavior_set(m, 16, 1) == 0
    for host, port, weight in servers:
        assert lib.memcached_server_add_with_weight(m, host.encode(), port, weight) == 0
    out.append([lib.memcached_generate_hash(m, k, len(k)) for k in keys])
    lib.memcached_free(m)
json.dump(out, sys.stdout)
`

// TestKetamaMatchesLibmemcached compares pick with libmemcached's own
// choice over many server lists: 1 to 12 equal servers (the float rounding
// of the points per server differs with the count), random weights, a
// weight so small it gets no points, IPv6 hosts and hosts on the default
// port 11211 (named "host-i"). Only hashing happens: nothing connects.
func TestKetamaMatchesLibmemcached(t *testing.T) {
	requirePython(t, `import ctypes; ctypes.CDLL("libmemcached.so.11")`, "libmemcached", "python3-pylibmc")
	type hostPort struct {
		host   string
		port   int
		weight int
	}
	var configs [][]hostPort
	for n := 1; n <= 12; n++ {
		var c []hostPort
		for i := 0; i < n; i++ {
			c = append(c, hostPort{"127.0.0.1", 21000 + i, 1})
		}
		configs = append(configs, c)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for n := 2; n <= 10; n++ {
		var c []hostPort
		for i := 0; i < n; i++ {
			c = append(c, hostPort{"127.0.0." + strconv.Itoa(i+1), 22000 + rng.IntN(1000), 1 + rng.IntN(10)})
		}
		configs = append(configs, c)
	}
	configs = append(configs,
		[]hostPort{{"127.0.0.1", 11211, 1}, {"127.0.0.2", 11211, 1}, {"127.0.0.3", 11211, 1}},
		[]hostPort{{"127.0.0.1", 11211, 5}, {"127.0.0.1", 11212, 1}, {"127.0.0.2", 11211, 3}, {"127.0.0.3", 30000, 7}},
		[]hostPort{{"127.0.0.1", 23000, 1}, {"127.0.0.1", 23001, 1000}, {"127.0.0.1", 23002, 3}},
		[]hostPort{{"::1", 24000, 1}, {"::1", 24001, 2}, {"::1", 11211, 3}},
		[]hostPort{{"localhost", 25000, 2}, {"localhost", 25001, 2}},
	)
	keys := interopKeys(3000)
	wire := make([][][]any, len(configs))
	for i, c := range configs {
		for _, hp := range c {
			wire[i] = append(wire[i], []any{hp.host, hp.port, hp.weight})
		}
	}
	var want [][]int
	runPython(t, libmemcachedScript, map[string]any{"keys": keys, "configs": wire}, &want)
	require.Len(t, want, len(configs))
	for i, c := range configs {
		servers := make([]Server, len(c))
		for j, hp := range c {
			servers[j] = Server{Addr: net.JoinHostPort(hp.host, strconv.Itoa(hp.port)), Weight: hp.weight}
		}
		name := fmt.Sprintf("%d servers %s weight %d", len(servers), servers[0].Addr, servers[0].Weight)
		t.Run(name, func(t *testing.T) {
			s := mustSelector(t, DistributionKetama, servers)
			mismatches := 0
			for k, key := range keys {
				if got := s.pick(key); got != want[i][k] {
					if mismatches++; mismatches <= 5 {
						t.Errorf("key %q: pick = %d, libmemcached = %d", key, got, want[i][k])
					}
				}
			}
			require.Zero(t, mismatches, "of %d keys", len(keys))
		})
	}
}

// pythonMemcacheScript maps keys to server indexes with python-memcached's
// own Client._get_server, its connect replaced so that the servers listed
// as dead refuse and the others accept: the rehash chain runs exactly as
// it does against a dead server. Nothing connects anywhere.
const pythonMemcacheScript = `
import json, sys, memcache
req = json.load(sys.stdin)
keys = [k.encode() for k in req["keys"]]
out = []
for cfg in req["configs"]:
    c = memcache.Client([(s, w) for s, w in cfg["servers"]])
    dead = set(cfg["dead"])
    index = {id(h): i for i, h in enumerate(c.servers)}
    for i, h in enumerate(c.servers):
        h.connect = (lambda i: lambda: 0 if i in dead else 1)(i)
    res = []
    for k in keys:
        h, _ = c._get_server(k)
        res.append(-1 if h is None else index[id(h)])
    out.append(res)
json.dump(out, sys.stdout)
`

// TestModulaMatchesPythonMemcache compares pick and pickLive with
// python-memcached's Client._get_server, for weighted and equal server
// lists, with none, one and several servers dead.
func TestModulaMatchesPythonMemcache(t *testing.T) {
	requirePython(t, "import memcache", "python-memcached", "python3-memcache")
	type config struct {
		Servers [][2]any `json:"servers"`
		Dead    []int    `json:"dead"`
	}
	type setup struct {
		weights []int
		dead    []int
	}
	setups := []setup{
		{[]int{1, 1, 1}, nil},
		{[]int{1, 2, 3}, nil},
		{[]int{1, 1, 1}, []int{1}},
		{[]int{1, 2, 3}, []int{2}},
		{[]int{1, 2, 3}, []int{0, 1}},
		{[]int{4, 1, 7, 2, 9}, []int{2, 4}},
		{[]int{1, 1}, []int{0, 1}},
		{[]int{3}, nil},
		{[]int{3}, []int{0}},
	}
	configs := make([]config, len(setups))
	servers := make([][]Server, len(setups))
	for i, su := range setups {
		servers[i] = testServers(len(su.weights), su.weights...)
		for _, s := range servers[i] {
			configs[i].Servers = append(configs[i].Servers, [2]any{s.Addr, s.Weight})
		}
		configs[i].Dead = append([]int{}, su.dead...)
	}
	keys := interopKeys(3000)
	var want [][]int
	runPython(t, pythonMemcacheScript, map[string]any{"keys": keys, "configs": configs}, &want)
	require.Len(t, want, len(setups))
	for i, su := range setups {
		t.Run(fmt.Sprintf("weights %v dead %v", su.weights, su.dead), func(t *testing.T) {
			s := mustSelector(t, DistributionModula, servers[i])
			down := func(j int) bool {
				for _, d := range su.dead {
					if d == j {
						return true
					}
				}
				return false
			}
			mismatches := 0
			for k, key := range keys {
				got := s.pickLive(key, down)
				if len(su.dead) == 0 {
					require.Equal(t, got, s.pick(key))
				}
				if got != want[i][k] {
					if mismatches++; mismatches <= 5 {
						t.Errorf("key %q: pickLive = %d, python-memcached = %d", key, got, want[i][k])
					}
				}
			}
			require.Zero(t, mismatches, "of %d keys", len(keys))
		})
	}
}

// pythonWriteScript stores every key through the Python client named in
// the request, against real servers.
const pythonWriteScript = `
import json, sys
req = json.load(sys.stdin)
if req["lib"] == "pylibmc":
    import pylibmc
    c = pylibmc.Client(["%s:%d" % (s, w) for s, w in req["servers"]], behaviors={"ketama_weighted": True})
else:
    import memcache
    c = memcache.Client([(s, w) for s, w in req["servers"]])
failed = [k for k in req["keys"] if not c.set(k, "v:" + k)]
json.dump({"failed": failed}, sys.stdout)
`

// whereStored asks each server directly, with pipelined meta gets, which
// of keys it holds, and returns the index of the server holding each key
// (-1 for none; the test fails for a key held twice).
func whereStored(t *testing.T, addrs []string, keys []string) map[string]int {
	t.Helper()
	where := make(map[string]int, len(keys))
	for _, k := range keys {
		where[k] = -1
	}
	for i, addr := range addrs {
		for _, k := range rawHeld(t, addr, keys) {
			require.Equal(t, -1, where[k], "key %q on servers %d and %d", k, where[k], i)
			where[k] = i
		}
	}
	return where
}

// rawHeld returns the keys among keys that the server at addr holds. It
// sends pipelined meta gets ("mg <key> k") in batches small enough that
// neither side's socket buffer can fill up.
func rawHeld(t *testing.T, addr string, keys []string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(30*time.Second)))
	r := bufio.NewReader(c)
	var held []string
	const batch = 50
	for len(keys) > 0 {
		chunk := keys[:min(batch, len(keys))]
		keys = keys[len(chunk):]
		var req bytes.Buffer
		for _, k := range chunk {
			fmt.Fprintf(&req, "mg %s k\r\n", k)
		}
		req.WriteString("mn\r\n")
		_, err := c.Write(req.Bytes())
		require.NoError(t, err)
		for i := 0; ; i++ {
			line, err := r.ReadString('\n')
			require.NoError(t, err)
			f := strings.Fields(line)
			require.NotEmpty(t, f, "empty reply from %s", addr)
			if f[0] == "MN" {
				require.Equal(t, len(chunk), i, "replies from %s", addr)
				break
			}
			require.Less(t, i, len(chunk), "more replies than requests from %s", addr)
			require.Contains(t, f, "k"+chunk[i], "reply %d from %s: %q", i, addr, line)
			switch f[0] {
			case "HD":
				held = append(held, chunk[i])
			case "EN":
			default:
				t.Fatalf("unexpected reply from %s: %q", addr, line)
			}
		}
	}
	return held
}

type interopCase struct {
	lib     string // "pylibmc" or "memcache"
	d       Distribution
	weights []int
}

func interopCases() []interopCase {
	var out []interopCase
	for _, lib := range []struct {
		name string
		d    Distribution
	}{{"pylibmc", DistributionKetama}, {"memcache", DistributionModula}} {
		for _, w := range [][]int{{1, 2, 3}, {1, 1, 1}} {
			out = append(out, interopCase{lib.name, lib.d, w})
		}
	}
	return out
}

func (c interopCase) name() string { return fmt.Sprintf("%s %v weights %v", c.lib, c.d, c.weights) }

// TestInteropPythonWrites has the Python clients write keys to three real
// servers and requires that every key sits on the server pick names.
func TestInteropPythonWrites(t *testing.T) {
	requirePython(t, "import memcache, pylibmc", "python-memcached and pylibmc", "python3-memcache python3-pylibmc")
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	addrs := memcachetest.Addrs(srvs)
	keys := interopKeys(600)
	for _, tc := range interopCases() {
		t.Run(tc.name(), func(t *testing.T) {
			flushRaw(t, addrs)
			servers := make([]Server, len(addrs))
			wire := make([][2]any, len(addrs))
			for i, a := range addrs {
				servers[i] = Server{Addr: a, Weight: tc.weights[i]}
				wire[i] = [2]any{a, tc.weights[i]}
			}
			var res struct{ Failed []string }
			runPython(t, pythonWriteScript, map[string]any{"lib": tc.lib, "servers": wire, "keys": keys}, &res)
			require.Empty(t, res.Failed, "python could not store these keys")

			s := mustSelector(t, tc.d, servers)
			where := whereStored(t, addrs, keys)
			perServer := make([]int, len(addrs))
			for _, k := range keys {
				require.NotEqual(t, -1, where[k], "key %q written by %s is on no server", k, tc.lib)
				require.Equal(t, where[k], s.pick(k), "key %q", k)
				perServer[where[k]]++
			}
			t.Logf("keys per server: %v", perServer)
			for i, n := range perServer {
				require.Positive(t, n, "server %d got no keys", i)
			}
		})
	}
}

// flushRaw empties every server.
func flushRaw(t *testing.T, addrs []string) {
	t.Helper()
	for _, a := range addrs {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
		_, err = c.Write([]byte("flush_all\r\n"))
		require.NoError(t, err)
		line, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "OK\r\n", line)
		c.Close()
	}
}

// pythonReadScript reads every key back through the Python client named in
// the request and reports the keys it missed or read wrong. Values are
// plain bytes with flags 0, which both clients return as bytes.
const pythonReadScript = `
import json, sys
req = json.load(sys.stdin)
if req["lib"] == "pylibmc":
    import pylibmc
    c = pylibmc.Client(["%s:%d" % (s, w) for s, w in req["servers"]], behaviors={"ketama_weighted": True})
else:
    import memcache
    c = memcache.Client([(s, w) for s, w in req["servers"]])
missing, wrong = [], []
for k in req["keys"]:
    v = c.get(k)
    if v is None:
        missing.append(k)
    elif v != ("go:" + k).encode():
        wrong.append([k, repr(v)])
got = c.get_multi(req["keys"])
json.dump({"missing": missing, "wrong": wrong, "multi": len(got)}, sys.stdout)
`

// TestInteropGoWrites has the Go client write keys to three real servers,
// over both protocols, and requires that the Python clients read every one
// of them back, and that each sits on the server pick names.
func TestInteropGoWrites(t *testing.T) {
	requirePython(t, "import memcache, pylibmc", "python-memcached and pylibmc", "python3-memcache python3-pylibmc")
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	addrs := memcachetest.Addrs(srvs)
	keys := interopKeys(600)
	for _, tc := range interopCases() {
		for _, proto := range []Protocol{ProtocolMeta, ProtocolText} {
			t.Run(tc.name()+" "+proto.String(), func(t *testing.T) {
				flushRaw(t, addrs)
				servers := make([]Server, len(addrs))
				wire := make([][2]any, len(addrs))
				for i, a := range addrs {
					servers[i] = Server{Addr: a, Weight: tc.weights[i]}
					wire[i] = [2]any{a, tc.weights[i]}
				}
				c, err := NewFromConfig(Config{Servers: servers, Distribution: tc.d, Protocol: proto, Timeout: 5 * time.Second})
				require.NoError(t, err)
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				// Half one by one, half in one SetMulti.
				var multi []*Item
				for i, k := range keys {
					item := &Item{Key: k, Value: []byte("go:" + k)}
					if i%2 == 0 {
						require.NoError(t, c.Set(ctx, item))
					} else {
						multi = append(multi, item)
					}
				}
				require.NoError(t, c.SetMulti(ctx, multi))
				require.NoError(t, c.Close())

				var res struct {
					Missing []string
					Wrong   [][2]string
					Multi   int
				}
				runPython(t, pythonReadScript, map[string]any{"lib": tc.lib, "servers": wire, "keys": keys}, &res)
				require.Empty(t, res.Missing, "keys written by Go that %s cannot find", tc.lib)
				require.Empty(t, res.Wrong, "keys %s read with the wrong value", tc.lib)
				require.Equal(t, len(keys), res.Multi, "%s get_multi", tc.lib)

				s := mustSelector(t, tc.d, servers)
				where := whereStored(t, addrs, keys)
				for _, k := range keys {
					require.Equal(t, s.pick(k), where[k], "key %q", k)
				}
			})
		}
	}
}
