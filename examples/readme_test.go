package examples_test

// The README's code snippets, each an Example run against real memcached
// (started in TestMain), and a test that keeps the README and this file in
// sync: every line of every Go block of ../README.md must appear, in order,
// in one of the examples below.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/internal/readmecheck"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

var (
	ctx = context.Background()
	// servers are three memcached servers with weights 1:2:3, as
	// "host:port:weight"; addrs are the same as "host:port".
	servers, addrs []string
	// secureAddr is a memcached with TLS and ASCII auth (user "app",
	// password $MEMCACHED_PASSWORD); tlsConfig trusts its certificate.
	secureAddr string
	tlsConfig  *tls.Config
	// keys are the session cookie keys: a 32-byte hash key, no block key.
	keys = [][]byte{[]byte("an example hash key of 32 bytes!"), nil}
)

func TestMain(m *testing.M) {
	os.Exit(memcachetest.Main(m, launch))
}

// launch starts the servers the examples use.
func launch() (stop func(), err error) {
	var procs []*memcachetest.Server
	stop = func() {
		for _, p := range procs {
			p.Close()
		}
	}
	for w := 1; w <= 3; w++ {
		p, err := memcachetest.Launch(memcachetest.Options{})
		if err != nil {
			stop()
			return nil, err
		}
		procs = append(procs, p)
		servers = append(servers, fmt.Sprintf("%s:%d", p.Addr, w))
		addrs = append(addrs, p.Addr)
	}
	os.Setenv("MEMCACHED_PASSWORD", "example-secret")
	p, err := memcachetest.Launch(memcachetest.Options{TLS: true, Username: "app", Password: "example-secret"})
	if err != nil {
		stop()
		return nil, err
	}
	procs = append(procs, p)
	secureAddr, tlsConfig = p.Addr, p.TLSConfig
	return stop, nil
}

// The tour, part 1: the client.
func Example_client() {
	mc, err := memclient.New(servers...) // "host:port" or "host:port:weight"
	if err != nil {
		log.Fatal(err)
	}
	defer mc.Close()

	err = mc.Set(ctx, &memclient.Item{Key: "greeting", Value: []byte("hello"), TTL: time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	it, err := mc.Get(ctx, "greeting")
	switch {
	case errors.Is(err, memclient.ErrCacheMiss): // absent, expired or evicted: it is nil
		fmt.Println("no greeting")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(string(it.Value))
	}
	// Output: hello
}

// The tour, part 2: sessions.
func Example_session() {
	mc, err := memclient.New(servers...)
	if err != nil {
		log.Fatal(err)
	}
	defer mc.Close()

	mgr := &session.Manager{Store: session.NewMemcacheStore(mc), Keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /visits", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context()) // loaded on first use, not before
		// Saved by compare-and-swap; re-applied if a concurrent request saved first.
		session.Update(r.Context(), s, "visits", func(n int, _ bool) int { return n + 1 })
		n, _ := session.Get[int](r.Context(), s, "visits")
		fmt.Fprintf(w, "visit %d\n", n)
	})
	handler := middleware.Session(mgr)(mux) // http.ListenAndServe(addr, handler)

	// A browser with a cookie jar. The session cookie is Secure by
	// default, hence TLS.
	srv := httptest.NewTLSServer(handler)
	defer srv.Close()
	browser := srv.Client()
	browser.Jar, _ = cookiejar.New(nil)
	for range 2 {
		resp, err := browser.Get(srv.URL + "/visits")
		if err != nil {
			log.Fatal(err)
		}
		io.Copy(os.Stdout, resp.Body)
		resp.Body.Close()
	}
	// Output:
	// visit 1
	// visit 2
}

// Product and productDB stand in for a database table and its queries.
type Product struct {
	ID   int64
	Name string
}

type productDB struct{ queries atomic.Int64 }

func (d *productDB) ProductByID(ctx context.Context, id int64) (Product, error) {
	d.queries.Add(1) // SELECT ... WHERE id = ?
	return Product{ID: id, Name: fmt.Sprintf("product %d", id)}, nil
}

// The tour, part 3: memoize.
func Example_memoize() {
	mc, err := memclient.New(servers...)
	if err != nil {
		log.Fatal(err)
	}
	defer mc.Close()
	db := &productDB{}

	cache, err := objcache.New(mc, objcache.Options{Prefix: "readme:"})
	if err != nil {
		log.Fatal(err)
	}
	productByID := objcache.Memoize1(cache, "product", 5*time.Minute, db.ProductByID)
	p, err := productByID(ctx, 42) // runs the query once; later calls, in any process, read memcached
	if err != nil {
		log.Fatal(err)
	}
	again, err := productByID(ctx, 42)
	fmt.Println(p.Name, again.Name, err, db.queries.Load(), "query")
	// Output: product 42 product 42 <nil> 1 query
}

// Your own cluster, TLS and auth.
func Example_tlsAndAuth() {
	mc, err := memclient.NewFromConfig(memclient.Config{
		Servers:  []memclient.Server{{Addr: secureAddr, Weight: 1}},
		TLS:      tlsConfig, // &tls.Config{RootCAs: pool}: memcached -Z
		Username: "app",     // memcached -Y authfile: ASCII auth
		Password: os.Getenv("MEMCACHED_PASSWORD"),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer mc.Close()
	if err := mc.Set(ctx, &memclient.Item{Key: "k", Value: []byte("over TLS")}); err != nil {
		log.Fatal(err)
	}
	it, err := mc.Get(ctx, "k")
	fmt.Println(string(it.Value), err)
	// Output: over TLS <nil>
}

// Sharing keys with Python: python-memcached's distribution and flags.
func Example_python() {
	mc, err := memclient.NewFromConfig(memclient.Config{
		Servers:      []memclient.Server{{Addr: addrs[0], Weight: 1}, {Addr: addrs[1], Weight: 2}},
		Distribution: memclient.DistributionModula, // the server python-memcached picks
	})
	if err != nil {
		log.Fatal(err)
	}
	defer mc.Close()
	cache, err := objcache.New(mc, objcache.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if err := cache.Set(ctx, "answer", 42, 0); err != nil { // stored as python-memcached's int
		log.Fatal(err)
	}
	n, err := objcache.Get[int](ctx, cache, "answer") // Python: mc.get("answer") == 42
	fmt.Println(n, err)
	// Output: 42 <nil>
}

// TestPythonReadsWhatGoWrote backs the README's claim: python-memcached,
// given the same servers and weights, finds and decodes what Go stored,
// and the other way round.
func TestPythonReadsWhatGoWrote(t *testing.T) {
	memcachetest.Binary(t) // skips when memcached is missing
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import memcache").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python-memcached: %v (make deps installs python3-memcache)", err)
		}
		t.Skipf("python-memcached not available: %v", err)
	}
	mc, err := memclient.NewFromConfig(memclient.Config{
		Servers:      []memclient.Server{{Addr: addrs[0], Weight: 1}, {Addr: addrs[1], Weight: 2}},
		Distribution: memclient.DistributionModula,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	cache, err := objcache.New(mc, objcache.Options{Prefix: "py:"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	for i := range 20 {
		k := fmt.Sprintf("k%d", i)
		var v any = i * 1000
		if i%2 == 1 {
			v = fmt.Sprintf("value %d é", i)
		}
		want[k] = v
		if err := cache.Set(ctx, k, v, 0); err != nil {
			t.Fatal(err)
		}
	}
	script := `
import json, sys, memcache
mc = memcache.Client([(sys.argv[1], 1), (sys.argv[2], 2)])
got = mc.get_multi(["k%d" % i for i in range(20)], key_prefix="py:")
mc.set("py:from-python", "hello from Python")
mc.set("py:int-from-python", 7)
print(json.dumps(got))
`
	out, err := exec.Command(python, "-c", script, addrs[0], addrs[1]).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	if len(got) != len(want) {
		t.Fatalf("python found %d of %d keys: %s", len(got), len(want), out)
	}
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Errorf("python read %s = %v, Go wrote %v", k, got[k], v)
		}
	}
	if s, err := objcache.Get[string](ctx, cache, "from-python"); err != nil || s != "hello from Python" {
		t.Errorf("Go read %q, %v from Python", s, err)
	}
	if n, err := objcache.Get[int](ctx, cache, "int-from-python"); err != nil || n != 7 {
		t.Errorf("Go read %d, %v from Python", n, err)
	}
}

// TestReadmeInSync checks that every Go block of the README is copied from
// this file, so that the README's code compiles and runs. There are at
// least 4: the tour and TLS.
func TestReadmeInSync(t *testing.T) {
	readmecheck.Check(t, "../README.md", "readme_test.go", "```go", 4)
}
