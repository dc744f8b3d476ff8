package memkitprom_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	memkitprom "github.com/memkit/memkit/adapters/prometheus"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

// servers is the memcached server the example uses, started by TestMain.
var servers []memclient.Server

func TestMain(m *testing.M) {
	os.Exit(memcachetest.Main(m, func() (func(), error) {
		p, err := memcachetest.Launch(memcachetest.Options{})
		if err != nil {
			return nil, err
		}
		servers = []memclient.Server{{Addr: p.Addr}}
		return p.Close, nil
	}))
}

// One Collector watches a client, an object cache and a session manager,
// and a registry serves what it counts on /metrics. The README's
// "Metrics and traces" shows the first lines (TestReadmeSnippet keeps
// them in sync).
func Example() {
	metrics := memkitprom.New() // the Observer of all three below, and a prometheus.Collector
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics) // or prometheus.MustRegister(metrics)
	mc, err := memclient.NewFromConfig(memclient.Config{Servers: servers, Observer: metrics})
	if err != nil {
		log.Fatal(err)
	}
	metrics.WatchClient(mc) // memkit_memcached_server_up for every server from the first scrape
	cache, err := objcache.New(mc, objcache.Options{Observer: metrics})
	if err != nil {
		log.Fatal(err)
	}
	mgr := &session.Manager{Store: session.NewMemcacheStore(mc), Keys: keys, Observer: metrics}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer mc.Close()
	defer mgr.Close()

	// A miss, a load, then a hit; and a scrape.
	ctx := context.Background()
	for range 2 {
		_, err := objcache.GetOrLoad(ctx, cache, "example", time.Minute, func(context.Context) (string, error) {
			return "loaded", nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	show(resp.Body, servers[0].Addr,
		"memkit_memcached_server_up", "memkit_objcache_hits_total", "memkit_objcache_misses_total",
		"memkit_objcache_loads_total")
	// Output:
	// memkit_memcached_server_up{server="memcached:11211"} 1
	// memkit_objcache_hits_total 1
	// memkit_objcache_loads_total 1
	// memkit_objcache_misses_total 1
}

// show prints the exposition's samples whose line starts with one of
// prefixes, with the server's address (a free port each run) replaced.
func show(r io.Reader, addr string, prefixes ...string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		for _, p := range prefixes {
			if strings.HasPrefix(line, p+" ") || strings.HasPrefix(line, p+"{") {
				fmt.Println(strings.ReplaceAll(line, addr, "memcached:11211"))
			}
		}
	}
}
