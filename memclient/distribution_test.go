package memclient

// Placement shared with the other clients and proxies people run, tried
// with the real ones: pymemcache's HashClient (DistributionRendezvous),
// libmemcached's default modula as pylibmc and libmemcached's own tools
// use it (DistributionLibmemcachedModula), and twemproxy's ketama with md5
// and fnv1a_64, servers named or not (DistributionKetama, Config.Hash,
// Server.Name). Each real client writes keys to real servers and memkit
// must find every one on the server it picks, reading the servers
// directly; then memkit writes and the real client must read them all.
// Without the clients the tests skip, except under CI=true, where they
// fail.

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/stretchr/testify/require"
)

// pymemcachePlaceScript maps keys to server indexes with pymemcache's own
// HashClient (its default RendezvousHash), servers given as "host:port"
// strings as an application gives them, the dead ones removed from its
// hasher as HashClient removes a dead server. Nothing connects anywhere.
const pymemcachePlaceScript = `
import json, sys
from pymemcache.client.hash import HashClient
req = json.load(sys.stdin)
out = []
for cfg in req["configs"]:
    c = HashClient(cfg["servers"], allow_unicode_keys=True)
    nodes = list(c.clients)
    for d in cfg["dead"] or []:
        c.hasher.remove_node(nodes[d])
    index = {id(cl): i for i, cl in enumerate(c.clients.values())}
    out.append([index[id(c._get_client(k))] for k in req["keys"]])
json.dump(out, sys.stdout)
`

// TestRendezvousMatchesPymemcache compares pick and pickLive with
// pymemcache's HashClient over many server lists (1 to 9 servers, ports
// of every length, 11211, hostnames, IPv6) and 3000 keys of assorted
// shapes, UTF-8 ones among them. Only hashing happens.
func TestRendezvousMatchesPymemcache(t *testing.T) {
	requirePython(t, "import pymemcache.client.hash", "pymemcache", "python3-pymemcache")
	type config struct {
		Servers []string `json:"servers"`
		Dead    []int    `json:"dead"`
	}
	var configs []config
	for n := 1; n <= 9; n++ {
		var c config
		for i := 0; i < n; i++ {
			c.Servers = append(c.Servers, "127.0.0.1:"+strconv.Itoa(21000+i))
		}
		configs = append(configs, c)
	}
	configs = append(configs,
		config{Servers: []string{"127.0.0.1:11211", "127.0.0.2:11211", "127.0.0.3:11211"}},
		config{Servers: []string{"10.0.0.1:80", "10.0.0.2:8080", "cache-a.example:11211", "localhost:5"}},
		config{Servers: []string{"[::1]:24000", "[::1]:24001", "[fe80::1]:11211"}},
		config{Servers: []string{"127.0.0.1:21000", "127.0.0.1:21001", "127.0.0.1:21002"}, Dead: []int{1}},
		config{Servers: []string{"127.0.0.1:21000", "127.0.0.1:21001", "127.0.0.1:21002", "127.0.0.1:21003", "127.0.0.1:21004"}, Dead: []int{0, 3}},
	)
	keys := interopKeys(3000)
	var want [][]int
	runPython(t, pymemcachePlaceScript, map[string]any{"keys": keys, "configs": configs}, &want)
	require.Len(t, want, len(configs))
	for i, c := range configs {
		t.Run(fmt.Sprintf("%v dead %v", c.Servers, c.Dead), func(t *testing.T) {
			servers := make([]Server, len(c.Servers))
			for j, a := range c.Servers {
				servers[j] = Server{Addr: a}
			}
			s := mustSelector(t, DistributionRendezvous, servers)
			down := func(j int) bool { return slicesContains(c.Dead, j) }
			mismatches := 0
			for k, key := range keys {
				if got := s.pickLive(key, down); got != want[i][k] {
					if mismatches++; mismatches <= 5 {
						t.Errorf("key %q: pickLive = %d, pymemcache = %d", key, got, want[i][k])
					}
				}
			}
			require.Zero(t, mismatches, "of %d keys", len(keys))
		})
	}
}

func slicesContains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// libmemcachedHashScript computes, with libmemcached itself through
// ctypes, the key hashes (memcached_generate_hash_value) and the servers
// chosen (memcached_generate_hash) under each configuration's behaviors.
// Keys travel as hex so that any bytes can be tried. Nothing connects.
const libmemcachedHashScript = `
import ctypes, json, sys
lib = ctypes.CDLL("libmemcached.so.11")
lib.memcached_create.restype = ctypes.c_void_p
lib.memcached_create.argtypes = [ctypes.c_void_p]
lib.memcached_free.argtypes = [ctypes.c_void_p]
lib.memcached_server_add_with_weight.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint16, ctypes.c_uint32]
lib.memcached_behavior_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64]
lib.memcached_generate_hash.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.memcached_generate_hash.restype = ctypes.c_uint32
lib.memcached_generate_hash_value.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
lib.memcached_generate_hash_value.restype = ctypes.c_uint32
req = json.load(sys.stdin)
keys = [bytes.fromhex(k) for k in req["keys"]]
out = {"hashes": {}, "picks": []}
for h in req["hashes"]:
    out["hashes"][str(h)] = [lib.memcached_generate_hash_value(k, len(k), h) for k in keys]
for cfg in req["configs"]:
    m = lib.memcached_create(None)
    for b, v in cfg["behaviors"]:
        assert lib.memcached_behavior_set(m, b, v) == 0
    for host, port, weight in cfg["servers"]:
        assert lib.memcached_server_add_with_weight(m, host.encode(), port, weight) == 0
    out["picks"].append([lib.memcached_generate_hash(m, k, len(k)) for k in keys])
    lib.memcached_free(m)
json.dump(out, sys.stdout)
`

// libmemcached's enums (libmemcached-1.0/types/behavior.h, hash.h).
const (
	lmBehaviorHash           = 2
	lmBehaviorKetamaWeighted = 16
	lmHashDefault            = 0
	lmHashMD5                = 1
	lmHashFNV1a64            = 4
)

// TestLibmemcachedHashes compares the key hashes and the modula and
// ketama picks with libmemcached's over keys of every byte, valid UTF-8 or
// not (bytes from 0x80 up are where the sign of a C char shows), and
// server lists with weights, which libmemcached's modula ignores.
func TestLibmemcachedHashes(t *testing.T) {
	requirePython(t, `import ctypes; ctypes.CDLL("libmemcached.so.11")`, "libmemcached", "python3-pylibmc")
	keys := interopKeys(2000)
	rng := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < 1000; i++ {
		b := make([]byte, 1+rng.IntN(40))
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		keys = append(keys, string(b))
	}
	hexKeys := make([]string, len(keys))
	for i, k := range keys {
		hexKeys[i] = hex.EncodeToString([]byte(k))
	}
	type setup struct {
		d       Distribution
		h       Hash
		weights []int // given to libmemcached; memkit's modula takes none
	}
	var setups []setup
	for _, h := range []Hash{HashDefault, HashMD5, HashFNV1a64} {
		for n := 1; n <= 7; n++ {
			setups = append(setups, setup{DistributionLibmemcachedModula, h, make([]int, n)})
		}
		setups = append(setups,
			setup{DistributionLibmemcachedModula, h, []int{1, 5, 2}},
			setup{DistributionKetama, h, []int{1, 1, 1}},
			setup{DistributionKetama, h, []int{1, 2, 3, 4}},
		)
	}
	lmHash := map[Hash]int{HashDefault: lmHashDefault, HashMD5: lmHashMD5, HashFNV1a64: lmHashFNV1a64}
	type lmConfig struct {
		Behaviors [][2]int `json:"behaviors"`
		Servers   [][3]any `json:"servers"`
	}
	configs := make([]lmConfig, len(setups))
	for i, su := range setups {
		if su.d == DistributionKetama {
			configs[i].Behaviors = append(configs[i].Behaviors, [2]int{lmBehaviorKetamaWeighted, 1})
			if su.h == HashDefault {
				su.h = HashMD5
			}
		}
		configs[i].Behaviors = append(configs[i].Behaviors, [2]int{lmBehaviorHash, lmHash[su.h]})
		for j, w := range su.weights {
			configs[i].Servers = append(configs[i].Servers, [3]any{"127.0.0.1", 21000 + j, max(w, 1)})
		}
	}
	var want struct {
		Hashes map[string][]uint32
		Picks  [][]int
	}
	runPython(t, libmemcachedHashScript, map[string]any{
		"keys": hexKeys, "hashes": []int{lmHashDefault, lmHashMD5, lmHashFNV1a64}, "configs": configs,
	}, &want)

	for name, f := range map[int]func(string) uint32{lmHashDefault: oneAtATimeHash, lmHashMD5: md5Hash, lmHashFNV1a64: fnv1a64Hash} {
		got := want.Hashes[strconv.Itoa(name)]
		require.Len(t, got, len(keys))
		for i, k := range keys {
			require.Equal(t, got[i], f(k), "hash %d of %q", name, k)
		}
	}
	require.Len(t, want.Picks, len(setups))
	for i, su := range setups {
		t.Run(fmt.Sprintf("%v %v weights %v", su.d, su.h, su.weights), func(t *testing.T) {
			servers := make([]Server, len(su.weights))
			for j := range servers {
				servers[j] = Server{Addr: "127.0.0.1:" + strconv.Itoa(21000+j)}
				if su.d == DistributionKetama {
					servers[j].Weight = su.weights[j]
				}
			}
			s, err := newSelector(su.d, su.h, servers)
			require.NoError(t, err)
			for k, key := range keys {
				require.Equal(t, want.Picks[i][k], s.pick(key), "key %q", key)
			}
		})
	}
}

// A peer is a real client that places keys as one of memkit's
// distributions does.
type peer struct {
	name    string
	d       Distribution
	h       Hash
	require func(t *testing.T)
	// write stores "peer:"+key under every key; read returns the keys it
	// cannot read back as "go:"+key.
	write func(t *testing.T, addrs, keys []string)
	read  func(t *testing.T, addrs, keys []string) (bad []string)
}

// pythonPeerWriteScript and pythonPeerReadScript run a Python client made
// by the request's "make" expression (the server list is in scope as
// servers, "host:port" strings).
const pythonPeerWriteScript = `
import json, sys
req = json.load(sys.stdin)
servers = req["servers"]
import pylibmc
from pymemcache.client.hash import HashClient
c = eval(req["make"])
failed = [k for k in req["keys"] if not c.set(k, ("peer:" + k).encode())]
json.dump({"failed": failed}, sys.stdout)
`

const pythonPeerReadScript = `
import json, sys
req = json.load(sys.stdin)
servers = req["servers"]
import pylibmc
from pymemcache.client.hash import HashClient
c = eval(req["make"])
bad = [k for k in req["keys"] if c.get(k) != ("go:" + k).encode()]
many = c.get_multi(req["keys"])
bad += [k for k in req["keys"] if many.get(k) != ("go:" + k).encode()]
json.dump({"bad": bad}, sys.stdout)
`

func pythonPeer(name string, d Distribution, h Hash, setup, packages, make string) peer {
	return peer{
		name: name, d: d, h: h,
		require: func(t *testing.T) { requirePython(t, setup, name, packages) },
		write: func(t *testing.T, addrs, keys []string) {
			var res struct{ Failed []string }
			runPython(t, pythonPeerWriteScript, map[string]any{"make": make, "servers": addrs, "keys": keys}, &res)
			require.Empty(t, res.Failed, "%s could not store these keys", name)
		},
		read: func(t *testing.T, addrs, keys []string) []string {
			var res struct{ Bad []string }
			runPython(t, pythonPeerReadScript, map[string]any{"make": make, "servers": addrs, "keys": keys}, &res)
			return res.Bad
		},
	}
}

func peers() []peer {
	const pylibmcSetup, pymemcacheSetup = "import pylibmc, pymemcache.client.hash", "import pylibmc, pymemcache.client.hash"
	const pkgs = "python3-pylibmc python3-pymemcache"
	return []peer{
		pythonPeer("pymemcache HashClient", DistributionRendezvous, HashDefault, pymemcacheSetup, pkgs,
			"HashClient(servers, allow_unicode_keys=True)"),
		pythonPeer("pylibmc defaults", DistributionLibmemcachedModula, HashDefault, pylibmcSetup, pkgs,
			"pylibmc.Client(servers)"),
		pythonPeer("pylibmc hash fnv1a_64", DistributionLibmemcachedModula, HashFNV1a64, pylibmcSetup, pkgs,
			`pylibmc.Client(servers, behaviors={"hash": "fnv1a_64"})`),
		pythonPeer("pylibmc hash md5", DistributionLibmemcachedModula, HashMD5, pylibmcSetup, pkgs,
			`pylibmc.Client(servers, behaviors={"hash": "md5"})`),
		libmemcachedToolsPeer(),
	}
}

// libmemcachedToolsPeer writes with memccp and reads with memccat, the
// Debian names of libmemcached's memcp and memcat (libmemcached-tools
// 1.1.4). memccp stores each file under its path as given (--relative),
// so keys with slashes are files in directories.
func libmemcachedToolsPeer() peer {
	var memccp, memccat string
	serversFlag := func(addrs []string) string { return "--servers=" + strings.Join(addrs, ",") }
	return peer{
		name: "libmemcached-tools memccp+memccat", d: DistributionLibmemcachedModula,
		require: func(t *testing.T) {
			memccp = requireCommand(t, "memccp", "libmemcached-tools")
			memccat = requireCommand(t, "memccat", "libmemcached-tools")
		},
		write: func(t *testing.T, addrs, keys []string) {
			dir := t.TempDir()
			for _, k := range keys {
				p := filepath.Join(dir, filepath.FromSlash(k))
				require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
				require.NoError(t, os.WriteFile(p, []byte("peer:"+k), 0o644))
			}
			out, err := runTool(t, dir, memccp, append([]string{"--relative", serversFlag(addrs)}, keys...)...)
			require.NoError(t, err, "memccp: %s", out)
		},
		read: func(t *testing.T, addrs, keys []string) []string {
			// memccat -v prints "key: <key>" and "value: <value>" for each
			// key found, and an error on stderr for each key missing.
			out, _ := runTool(t, "", memccat, append([]string{"-v", serversFlag(addrs)}, keys...)...)
			got := map[string]string{}
			var key string
			for _, line := range strings.Split(string(out), "\n") {
				if k, ok := strings.CutPrefix(line, "key: "); ok {
					key = k
				} else if v, ok := strings.CutPrefix(line, "value: "); ok {
					got[key] = v
				}
			}
			var bad []string
			for _, k := range keys {
				if got[k] != "go:"+k {
					bad = append(bad, k)
				}
			}
			return bad
		},
	}
}

// runTool runs a program in dir (the current directory when empty) for at
// most a minute and returns its standard output.
func runTool(t *testing.T, dir, path string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %.500s", err, stderr.String())
	}
	return out, nil
}

// TestPeerPlacement: for each peer, the real client writes 200 keys over
// three real servers and memkit, configured with the matching
// distribution, finds each on the server it picks (read directly from the
// servers) and reads its value; then memkit writes 200 keys and the real
// client reads every one back.
func TestPeerPlacement(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	addrs := memcachetest.Addrs(srvs)
	keys := interopKeys(200)
	for _, p := range peers() {
		t.Run(p.name, func(t *testing.T) {
			p.require(t)
			servers := make([]Server, len(addrs))
			for i, a := range addrs {
				servers[i] = Server{Addr: a}
			}
			s, err := newSelector(p.d, p.h, servers)
			require.NoError(t, err)

			t.Run("peer writes", func(t *testing.T) {
				flushRaw(t, addrs)
				p.write(t, addrs, keys)
				requirePlaced(t, s, addrs, keys)
				c, err := NewFromConfig(Config{Servers: servers, Distribution: p.d, Hash: p.h, Timeout: 5 * time.Second})
				require.NoError(t, err)
				defer c.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				got, err := c.GetMulti(ctx, keys)
				require.NoError(t, err)
				for _, k := range keys {
					require.Contains(t, got, k)
					require.Equal(t, "peer:"+k, string(got[k].Value))
				}
			})
			t.Run("memkit writes", func(t *testing.T) {
				flushRaw(t, addrs)
				goWrite(t, Config{Servers: servers, Distribution: p.d, Hash: p.h}, keys)
				bad := p.read(t, addrs, keys)
				require.Empty(t, bad, "%d keys memkit wrote that %s cannot read, among them %q", len(bad), p.name, bad[:min(len(bad), 5)])
				requirePlaced(t, s, addrs, keys)
			})
		})
	}
}

// requirePlaced requires every key on the server s picks, reading the
// servers directly, and every server to hold some.
func requirePlaced(t *testing.T, s selector, addrs, keys []string) {
	t.Helper()
	where := whereStored(t, addrs, keys)
	perServer := make([]int, len(addrs))
	for _, k := range keys {
		require.NotEqual(t, -1, where[k], "key %q is on no server", k)
		require.Equal(t, s.pick(k), where[k], "key %q", k)
		perServer[where[k]]++
	}
	t.Logf("keys per server: %v", perServer)
	for i, n := range perServer {
		require.Positive(t, n, "server %d got no keys", i)
	}
}

// goWrite stores "go:"+key under every key through a Client made from
// cfg, half one by one and half in one SetMulti.
func goWrite(t *testing.T, cfg Config, keys []string) {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	c, err := NewFromConfig(cfg)
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
}

// TestTwemproxyPlacement: twemproxy (nutcracker) with "distribution:
// ketama" and "hash: md5", "hash: fnv1a_64" or no hash line (its default,
// fnv1a_64), servers named or not,
// weighted or not, in front of three real servers. memkit writes 200 keys
// through the proxy (text protocol) and a memkit client pointed at the
// servers themselves, with DistributionKetama and the matching Hash and
// names, finds each on the server it picks (read from the servers
// directly); then that client writes 200 keys and memkit reads every one
// back through the proxy.
func TestTwemproxyPlacement(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	addrs := memcachetest.Addrs(srvs)
	keys := interopKeys(200)
	for _, hash := range []struct {
		name string
		h    Hash
	}{{"md5", HashMD5}, {"fnv1a_64", HashFNV1a64}, {"", HashFNV1a64}} { // "": no hash line, nutcracker's default
		for _, named := range []bool{false, true} {
			for _, weights := range [][]int{{1, 1, 1}, {1, 2, 3}} {
				t.Run(fmt.Sprintf("hash %s named %v weights %v", hash.name, named, weights), func(t *testing.T) {
					servers := make([]Server, len(addrs))
					pool := make([]memcachetest.ProxyServer, len(addrs))
					for i, a := range addrs {
						servers[i] = Server{Addr: a, Weight: weights[i]}
						if named {
							servers[i].Name = "cache-" + strconv.Itoa(i+1)
						}
						pool[i] = memcachetest.ProxyServer{Addr: a, Weight: weights[i], Name: servers[i].Name}
					}
					proxy := memcachetest.StartProxy(t, memcachetest.ProxyOptions{
						Servers: pool, Distribution: "ketama", Hash: hash.name,
						Settings: []string{"timeout: 5000"},
					})
					through := Config{Servers: []Server{{Addr: proxy.Addr}}, Protocol: ProtocolText}
					direct := Config{Servers: servers, Distribution: DistributionKetama, Hash: hash.h}
					s, err := newSelector(DistributionKetama, hash.h, servers)
					require.NoError(t, err)

					t.Run("through the proxy", func(t *testing.T) {
						flushRaw(t, addrs)
						goWrite(t, through, keys)
						requirePlaced(t, s, addrs, keys)
					})
					t.Run("direct", func(t *testing.T) {
						flushRaw(t, addrs)
						goWrite(t, direct, keys)
						requirePlaced(t, s, addrs, keys)
						requireReadable(t, through, keys)
					})
				})
			}
		}
	}
}

// requireReadable requires a Client made from cfg to read "go:"+key under
// every key, one by one and in one GetMulti.
func requireReadable(t *testing.T, cfg Config, keys []string) {
	t.Helper()
	cfg.Timeout = 5 * time.Second
	c, err := NewFromConfig(cfg)
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range keys {
		it, err := c.Get(ctx, k)
		require.NoError(t, err, "key %q", k)
		require.Equal(t, "go:"+k, string(it.Value))
	}
	got, err := c.GetMulti(ctx, keys)
	require.NoError(t, err)
	require.Len(t, got, len(keys))
}
