package memcachetest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ProxyOptions configure a twemproxy (nutcracker) process: one server pool
// in front of memcached servers, configured in YAML as nutcracker's own
// configuration files are. The zero value of each field but Servers leaves
// nutcracker's default.
type ProxyOptions struct {
	// Servers are the pool's memcached servers, in configuration order.
	Servers []ProxyServer
	// Distribution is the pool's "distribution:": ketama, modula or
	// random. Empty means nutcracker's default, ketama.
	Distribution string
	// Hash is the pool's "hash:" for keys: md5, fnv1a_64,
	// one_at_a_time, ... Empty means nutcracker's default, fnv1a_64.
	Hash string
	// Settings are further "key: value" lines of the pool, such as
	// "timeout: 400" or "auto_eject_hosts: true".
	Settings []string
	// Binary is the nutcracker binary. Empty means nutcracker on PATH, or
	// /usr/sbin/nutcracker, where Debian installs it.
	Binary string
}

// ProxyServer is one server of a nutcracker pool: "addr:weight [name]".
type ProxyServer struct {
	Addr   string // "127.0.0.1:port"
	Weight int    // 0 means 1 (nutcracker requires a weight)
	// Name, when set, names the server in nutcracker's configuration; on
	// the ketama ring it then replaces host:port.
	Name string
}

// ProxyServers returns servers as a pool of unnamed servers of weight 1.
func ProxyServers(servers []*Server) []ProxyServer {
	out := make([]ProxyServer, len(servers))
	for i, s := range servers {
		out[i] = ProxyServer{Addr: s.Addr, Weight: 1}
	}
	return out
}

// Proxy is one nutcracker process. Its embedded Server is the process:
// Addr is the address the proxy listens on, and Kill, Freeze, Resume,
// Restart and Close work as they do for memcached.
type Proxy struct {
	*Server
	// Config is the YAML configuration nutcracker runs.
	Config string
}

// ErrNoProxy is returned by LaunchProxy and LookupProxy when nutcracker
// is not installed.
var ErrNoProxy = errors.New("memcachetest: nutcracker not found: run `make deps` (or `apt-get install nutcracker`)")

// debianNutcracker is where Debian's nutcracker package puts the binary,
// off the PATH of users other than root.
const debianNutcracker = "/usr/sbin/nutcracker"

// LookupProxy returns the nutcracker binary that LaunchProxy would run for
// opts, or ErrNoProxy.
func LookupProxy(opts ProxyOptions) (string, error) {
	if opts.Binary != "" {
		path, err := exec.LookPath(opts.Binary)
		if err != nil {
			return "", fmt.Errorf("%w (%v)", ErrNoProxy, err)
		}
		return path, nil
	}
	path, err := exec.LookPath("nutcracker")
	if err == nil {
		return path, nil
	}
	if _, statErr := os.Stat(debianNutcracker); statErr == nil {
		return debianNutcracker, nil
	}
	return "", fmt.Errorf("%w (%v)", ErrNoProxy, err)
}

// StartProxy starts nutcracker in front of opts.Servers and waits until
// it accepts connections. The process is killed when the test ends. When
// nutcracker is missing the test is skipped with a hint on how to install
// it, or fails when CI=true.
func StartProxy(t testing.TB, opts ProxyOptions) *Proxy {
	t.Helper()
	if _, err := LookupProxy(opts); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	p, err := LaunchProxy(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	p.tb = t
	t.Cleanup(p.Close)
	return p
}

// LaunchProxy starts nutcracker without a testing.TB. The caller must
// call Close. It listens on a free loopback port, and so does its stats
// server (nutcracker's defaults, 22121 and 22222, are never used).
func LaunchProxy(opts ProxyOptions) (*Proxy, error) {
	bin, err := LookupProxy(opts)
	if err != nil {
		return nil, err
	}
	if len(opts.Servers) == 0 {
		return nil, errors.New("memcachetest: a proxy needs servers")
	}
	for _, s := range opts.Servers {
		if s.Name != "" && strings.ContainsAny(s.Name, " \t\r\n#'\"") {
			return nil, fmt.Errorf("memcachetest: bad nutcracker server name %q", s.Name)
		}
	}
	dir, err := os.MkdirTemp("", "memcachetest-nutcracker")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Server: &Server{prog: "nutcracker", dir: dir}}
	conf := filepath.Join(dir, "nutcracker.yml")
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("memcachetest: free port: %w", err)
		}
		statsPort, err := freePort()
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("memcachetest: free port: %w", err)
		}
		p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p.Config = proxyConfig(p.Addr, opts)
		if err := os.WriteFile(conf, []byte(p.Config), 0o600); err != nil {
			p.Close()
			return nil, err
		}
		p.args = []string{bin, "-c", conf, "-s", strconv.Itoa(statsPort), "-a", "127.0.0.1", "-v", "4"}
		if lastErr = p.start(); lastErr == nil {
			return p, nil
		}
	}
	p.Close()
	return nil, fmt.Errorf("memcachetest: starting nutcracker: %w\nconfiguration:\n%s", lastErr, p.Config)
}

// proxyConfig is nutcracker's YAML for one pool listening on addr.
func proxyConfig(addr string, opts ProxyOptions) string {
	var b strings.Builder
	b.WriteString("memkit:\n")
	fmt.Fprintf(&b, "  listen: %s\n", addr)
	if opts.Distribution != "" {
		fmt.Fprintf(&b, "  distribution: %s\n", opts.Distribution)
	}
	if opts.Hash != "" {
		fmt.Fprintf(&b, "  hash: %s\n", opts.Hash)
	}
	for _, s := range opts.Settings {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	b.WriteString("  servers:\n")
	for _, s := range opts.Servers {
		w := s.Weight
		if w <= 0 {
			w = 1
		}
		fmt.Fprintf(&b, "   - %s:%d", s.Addr, w)
		if s.Name != "" {
			b.WriteString(" " + s.Name)
		}
		b.WriteString("\n")
	}
	return b.String()
}
