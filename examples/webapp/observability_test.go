package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// shopWithExporters starts the shop over real memcached with the
// exporters the shop runs with (newObservability).
func shopWithExporters(t *testing.T) *shopServers {
	t.Helper()
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	obs, err := newObservability(context.Background(), nil)
	require.NoError(t, err)
	a, err := newApp(context.Background(), config{
		Memcached:     memclient.Config{Servers: []memclient.Server{{Addr: srvs[0].Addr}, {Addr: srvs[1].Addr}}},
		DBPath:        filepath.Join(t.TempDir(), "shop.db"),
		Observability: obs,
	})
	require.NoError(t, err)
	ts := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		ts.Close()
		require.NoError(t, a.Close())
		require.NoError(t, obs.Shutdown(context.Background()))
	})
	return &shopServers{shop: &shop{t: t, app: a, srv: ts, c: newBrowser(t)}, srvs: srvs}
}

// shopServers is a shop and its memcached servers.
type shopServers struct {
	*shop
	srvs []*memcachetest.Server
}

// metricValue sums the samples of a metric in a Prometheus text
// exposition whose labels contain every one of with.
func metricValue(t *testing.T, body, name string, with ...string) float64 {
	t.Helper()
	var sum float64
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		ok := true
		for _, w := range with {
			ok = ok && strings.Contains(m[1], w)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(m[2], 64)
		require.NoError(t, err)
		sum += v
	}
	return sum
}

// TestShopMetrics: /metrics carries memkit's metric names, and they move
// with the shop's traffic.
func TestShopMetrics(t *testing.T) {
	leakcheck.Check(t)
	s := shopWithExporters(t)
	var p Product
	s.json("GET", "/api/products/7", nil, &p)
	code, before := get(t, s.srv.URL+"/metrics")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, 2.0, metricValue(t, before, "memkit_memcached_server_up"), "both servers up")

	for i := 1; i <= 20; i++ {
		s.json("GET", "/api/products/"+strconv.Itoa(i), nil, &p)
		s.json("GET", "/api/products/"+strconv.Itoa(i), nil, &p)
	}
	code, _ = get(t, s.srv.URL+"/")
	require.Equal(t, http.StatusOK, code)
	s.srvs[1].Kill() // failures, and a server down
	for i := 21; i <= 40; i++ {
		s.json("GET", "/api/products/"+strconv.Itoa(i), nil, &p)
	}
	_, after := get(t, s.srv.URL+"/metrics")
	for _, name := range []string{
		"memkit_memcached_operations_total", "memkit_memcached_operation_failures_total",
		"memkit_memcached_operation_duration_seconds_bucket", "memkit_memcached_server_up",
		"memkit_objcache_hits_total", "memkit_objcache_misses_total", "memkit_objcache_loads_total",
		"memkit_objcache_load_errors_total", "memkit_objcache_stale_served_total",
		"memkit_objcache_batch_loads_total", "memkit_objcache_batch_keys_bucket",
		"memkit_objcache_failsafe_served_total", "memkit_objcache_background_loads_total",
		"memkit_session_loads_total", "memkit_session_saves_total",
		"memkit_session_conflicts_total", "memkit_session_revocations_total",
	} {
		assert.Contains(t, after, "\n"+name, "metric %s on /metrics", name)
	}
	assert.Positive(t, metricValue(t, after, "memkit_memcached_operation_failures_total"), "the dead server's failures")
	for _, name := range []string{"memkit_memcached_operations_total", "memkit_objcache_hits_total", "memkit_objcache_loads_total"} {
		assert.Greater(t, metricValue(t, after, name), metricValue(t, before, name), "%s moves with traffic", name)
	}
	assert.NotContains(t, after, "product:", "no key in a label")
}

// TestShopTrace: a trace of one shop request shows its memcached calls as
// child spans of the request's span.
func TestShopTrace(t *testing.T) {
	leakcheck.Check(t)
	s := shopWithExporters(t)
	var p Product
	s.json("GET", "/api/products/11", nil, &p) // a miss: lookups, a load, a store
	code, body := get(t, s.srv.URL+"/debug/traces?limit=50")
	require.Equal(t, http.StatusOK, code)
	var got struct {
		Traces []traceView `json:"traces"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	var found *traceView
	for i, tr := range got.Traces {
		if tr.Root.Name == "GET /api/products/{id}" {
			found = &got.Traces[i]
			break
		}
	}
	require.NotNil(t, found, "the request's trace: %s", body)
	assert.Equal(t, "server", found.Root.Kind)
	var memcached int
	for _, c := range found.Children {
		if c.Attributes["db.system.name"] == "memcached" {
			memcached++
			assert.Equal(t, "client", c.Kind)
			assert.NotEmpty(t, c.Attributes["db.operation.name"])
			assert.NotEmpty(t, c.Attributes["server.address"])
			for k, v := range c.Attributes {
				assert.NotContains(t, v, "product", "no key in attribute %s", k)
			}
		}
	}
	assert.GreaterOrEqual(t, memcached, 2, "the request's memcached calls are its children: %+v", found.Children)
}
