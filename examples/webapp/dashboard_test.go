package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// TestDashboardNumbers: the numbers of /debug/cache mean what they say.
// The hit ratio is the application's; memcached's own, shown beside it,
// is higher because of leases, and the page says why; a missing product
// is a not-found, not a load error; JSON numbers are numbers.
func TestDashboardNumbers(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	s := startShop(t, memclient.Config{Servers: []memclient.Server{{Addr: srvs[0].Addr}, {Addr: srvs[1].Addr, Weight: 3}}})
	for id := 1; id <= 5; id++ {
		for range 2 {
			var p Product
			s.json("GET", fmt.Sprintf("/api/products/%d", id), nil, &p)
		}
	}
	for _, id := range []int{100001, 100002, 100003, 100001} {
		resp, _ := s.do(s.c, "GET", fmt.Sprintf("/api/products/%d", id), nil)
		require.Equal(t, http.StatusNotFound, resp.StatusCode)
	}

	var info debugInfo
	s.json("GET", "/debug/cache?format=json", nil, &info)
	c := info.Cache
	assert.Equal(t, uint64(3), c.NotFound, "three products that do not exist")
	assert.Zero(t, c.LoadErrors, "a missing product is not a load error")
	assert.Equal(t, uint64(1), c.NegativeHits, "the second ask for 100001 is a cached not-found")
	assert.Equal(t, uint64(5), c.Hits, "each product's second read")
	require.NotNil(t, c.HitRatio)
	assert.InDelta(t, float64(c.Hits)/float64(c.Hits+c.Misses), *c.HitRatio, 1e-9)
	require.NotNil(t, info.Memcached)
	require.NotNil(t, info.Memcached.HitRatio)
	assert.Greater(t, *info.Memcached.HitRatio, *c.HitRatio,
		"memcached counts the lease lookups that vivified a placeholder as hits")
	assert.Equal(t, leaseNote, info.Memcached.Note)
	var getHits uint64
	busy := -1 // a server that had gets: which servers get keys depends on the namespace generation, a clock reading
	for i, si := range info.Servers {
		getHits += si.GetHits
		if si.GetHits+si.GetMisses == 0 {
			assert.Nil(t, si.HitRatio, "a server without gets has no hit ratio")
		} else {
			require.NotNil(t, si.HitRatio)
			busy = i
		}
		assert.Positive(t, si.LimitBytes)
	}
	require.GreaterOrEqual(t, busy, 0, "no server had a get")
	assert.Equal(t, getHits, info.Memcached.GetHits)

	// Every number in the JSON is a JSON number: no "57.1%".
	_, body := s.do(s.c, "GET", "/debug/cache?format=json", nil)
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &raw))
	assert.IsType(t, 0.0, raw["cache"].(map[string]any)["hit_ratio"])
	assert.IsType(t, 0.0, raw["memcached"].(map[string]any)["hit_ratio"])
	assert.IsType(t, 0.0, raw["servers"].([]any)[busy].(map[string]any)["hit_ratio"])
	walkJSON(raw, "", func(path string, v any) {
		if s, ok := v.(string); ok {
			assert.NotRegexp(t, `^[0-9.]+ ?%$|^[0-9.]+ ?[KMG]i?B$`, s, "%s is a number in a string", path)
		}
	})

	// The page shows both ratios and says why they differ.
	resp, page := s.do(s.c, "GET", "/debug/cache", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, `<meta name="viewport"`)
	assert.Contains(t, page, `id="tile-hit"`)
	assert.Contains(t, page, fmtRatio(c.HitRatio))
	assert.Contains(t, page, "hit ratio <strong>"+fmtRatio(info.Memcached.HitRatio)+"</strong>")
	assert.Contains(t, page, template.HTMLEscapeString(leaseNote))
	assert.Contains(t, page, "not found")
	for _, id := range []string{"chart-ops", "chart-hit", "chart-p50", "chart-p99", "chart-share"} {
		assert.Contains(t, page, `id="`+id+`"`)
	}
	assert.NotContains(t, page, "http-equiv", "refreshed by its script, not by reloading")

	// The live part alone, which the page's script fetches.
	resp, live := s.do(s.c, "GET", "/debug/cache?part=live", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, live, `id="chart-ops"`)
	assert.NotContains(t, live, "<html")
}

func walkJSON(v any, path string, f func(string, any)) {
	f(path, v)
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			walkJSON(e, path+"."+k, f)
		}
	case []any:
		for i, e := range v {
			walkJSON(e, fmt.Sprintf("%s[%d]", path, i), f)
		}
	}
}

// TestDashboardInMemory: the in-memory mode's memo counts a missing
// product as a not-found too, and the dashboard charts its hit ratio.
func TestDashboardInMemory(t *testing.T) {
	leakcheck.Check(t)
	s := startShop(t, memclient.Config{})
	var p Product
	s.json("GET", "/api/products/1", nil, &p)
	s.json("GET", "/api/products/1", nil, &p)
	resp, _ := s.do(s.c, "GET", "/api/products/100001", nil)
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	var info debugInfo
	s.json("GET", "/debug/cache?format=json", nil, &info)
	assert.Equal(t, "in-memory", info.Mode)
	assert.Equal(t, uint64(1), info.Cache.NotFound)
	assert.Zero(t, info.Cache.LoadErrors)
	require.NotNil(t, info.Cache.HitRatio)
	assert.InDelta(t, 1.0/3, *info.Cache.HitRatio, 1e-9)
	assert.Nil(t, info.Memcached)
	_, hits := s.app.rec.totals()
	assert.Equal(t, uint64(1), hits, "the memo reports to the recorder")
	resp, page := s.do(s.c, "GET", "/debug/cache", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, `id="chart-hit"`)
	assert.NotContains(t, page, `id="chart-ops"`)
	assert.Contains(t, page, "in-memory mode")
}

func TestChartLine(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name   string
		vals   points
		off    int
		d      string
		points int
		now    string
	}{
		{name: "empty", vals: nil, d: "", now: "–"},
		{name: "a line", vals: points{0, 5, 10}, off: 2, d: "M2 100.0L3 50.0L4 0.0", points: 3, now: "10"},
		{name: "gaps split it", vals: points{1, nan, 2, 3}, d: "M0 90.0h1M2 80.0L3 70.0", points: 3, now: "3"},
		{name: "a lone last value is a dot", vals: points{nan, 4}, d: "M1 60.0h1", points: 1, now: "4"},
		{name: "clamped to the chart", vals: points{20, -1, nan}, d: "M0 0.0L1 100.0", points: 2, now: "–"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLine("x", "c0", tc.vals, tc.off, 10, fmtCount)
			assert.Equal(t, tc.d, l.D)
			assert.Equal(t, tc.points, l.Points)
			assert.Equal(t, tc.now, l.Now)
		})
	}
}

func TestFormats(t *testing.T) {
	for in, want := range map[float64]float64{0.7: 1, 1: 1, 1.2: 2, 2.2: 2.5, 3: 5, 7: 10, 4200: 5000, 0.00031: 0.0005} {
		assert.InDelta(t, want, niceCeil(in), want*1e-9, "niceCeil(%v)", in)
	}
	for in, want := range map[float64]string{0: "0", 3: "3", 2.5: "2.5", 42.4: "42", 1234: "1.2k", 56789: "57k", 2.5e6: "2.5M"} {
		assert.Equal(t, want, fmtCount(in), "fmtCount(%v)", in)
	}
	for in, want := range map[float64]string{85e-6: "85 µs", 1e-3: "1 ms", 1.234e-3: "1.23 ms", 2.5e-3: "2.5 ms", 0.042: "42 ms", 1.5: "1.5 s", 2: "2 s"} {
		assert.Equal(t, want, fmtSeconds(in), "fmtSeconds(%v)", in)
	}
	assert.Equal(t, "57.1 %", fmtPercent(0.571))
	assert.Equal(t, "–", fmtRatio(nil))
	assert.True(t, strings.HasSuffix(fmtRatio(ratio(1, 1)), " %"))
}
