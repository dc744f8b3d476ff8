package main

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// needMemcached skips the test when memcached is missing (fails it when
// CI=true) and returns its path.
func needMemcached(t *testing.T) string {
	t.Helper()
	return memcachetest.Binary(t)
}

// waitGoroutines waits, boundedly, until no more than n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := runtime.NumGoroutine(); got > n {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines left, want <= %d:\n%s", got, n, buf[:runtime.Stack(buf, true)])
	}
}

// smokeCases are the benchmarks the smoke test runs: every client and
// every implementation on 100-byte values, and on a few of the bigger
// sizes and server counts (all of them would take a minute under -race).
const smokeCases = `^(get/(1g|64g)/100B/|get/64g/10KB/3srv$|get/1g/1MB/3srv$|get/64g/100KB/6srv$|set/64g/100B/|getmulti100/16g/|session/|session-go/|serializer)`

// TestSmoke runs the comparisons for a handful of operations against real
// memcached servers and checks that the harness measured each of them,
// without errors, and counted the memcached calls of the session handlers.
// The session benchmarks under external load run with the load generator
// in Go (TestWrk runs wrk, when installed).
func TestSmoke(t *testing.T) {
	needMemcached(t)
	scsDefaults() // its leftover goroutine lives as long as the process
	base := runtime.NumGoroutine()
	cfg := config{rounds: 2, duration: time.Second, warmup: 10 * time.Millisecond,
		serialDuration: 5 * time.Millisecond, maxOps: 16, clients: 4, limitDepth: 4, keys: multiKeys,
		loadgen: "go", httpConns: 4}
	require.NoError(t, cfg.compile(smokeCases, ""))
	rep, err := run(context.Background(), cfg, io.Discard)
	require.NoError(t, err)

	want := []string{
		"get/1g/100B/3srv", "get/1g/1MB/3srv", "get/64g/100B/3srv", "get/64g/10KB/3srv", "get/64g/100B/3srv/cancelctx",
		"get/64g/100B/1srv", "get/64g/100B/6srv", "get/64g/100KB/6srv", "set/64g/100B/3srv",
		"getmulti100/16g/100B/3srv", "getmulti100/16g/10KB/3srv",
		"session/rw/4c", "session/untouched/4c", "session-go/rw/4c", "session-go/read/4c",
	}
	var got []string
	for _, cr := range rep.cases {
		got = append(got, cr.name)
		require.Equal(t, "memkit", cr.impls[0], cr.name)
		require.Len(t, cr.samples, len(cr.impls))
		for i, name := range cr.impls {
			assert.Len(t, cr.samples[i], cfg.rounds, "%s %s", cr.name, name)
			if i > 0 {
				iv, ok := cr.paired("memkit", name)
				assert.True(t, ok, "%s memkit/%s", cr.name, name)
				assert.Positive(t, iv.med, "%s memkit/%s", cr.name, name)
			}
		}
		for i, r := range cr.results {
			assert.Positive(t, r.ops, "%s %s", cr.name, cr.impls[i])
			assert.Zero(t, r.errs, "%s %s: %v", cr.name, cr.impls[i], r.firstErr)
			assert.Positive(t, r.opsPerSec, "%s %s", cr.name, cr.impls[i])
			assert.Positive(t, r.p99, "%s %s", cr.name, cr.impls[i])
			if runtime.GOOS == "linux" {
				assert.Positive(t, r.readsPerOp, "%s %s: every operation reads from the network", cr.name, cr.impls[i])
				assert.Positive(t, r.writesPerOp, "%s %s: every operation writes to the network", cr.name, cr.impls[i])
				assert.Positive(t, r.cpuPerOp, "%s %s", cr.name, cr.impls[i])
				if r.callsPerOp != 0 { // -1 (not counted) or positive
					assert.Positive(t, r.srvCPUPerOp, "%s %s: memcached did the work", cr.name, cr.impls[i])
				}
			}
		}
	}
	require.Equal(t, want, got)
	for _, cr := range rep.cases {
		switch {
		case strings.HasSuffix(cr.name, "/cancelctx"):
			assert.Equal(t, []string{"memkit", "gomemcache", "limit"}, cr.impls, cr.name)
		case strings.HasPrefix(cr.name, "get/"):
			assert.Equal(t, []string{"memkit", "memkit-into", "gomemcache", "grafana", "rainycape", "quangtung97", "limit"}, cr.impls, cr.name)
			// The batched client did whole batches: 4 Gets on each of 8
			// connections per server, at least once per round.
			lim := cr.results[len(cr.impls)-1]
			servers := map[string]int{"1srv": 1, "3srv": 3, "6srv": 6}[strings.Split(cr.name, "/")[3]]
			assert.Zero(t, lim.ops%4, cr.name)
			assert.GreaterOrEqual(t, lim.ops, cfg.rounds*limitConns*servers*4, cr.name)
		case strings.HasPrefix(cr.name, "getmulti"):
			assert.Equal(t, []string{"memkit", "gomemcache", "memkit-text"}, cr.impls, cr.name)
		case strings.HasPrefix(cr.name, "session-go/"):
			assert.Equal(t, []string{"memkit", "scs", "gorilla", "bare"}, cr.impls, cr.name)
			assert.Equal(t, "go", cr.ext)
			_, ok := cr.aboveBareRatio("memkit", "scs")
			assert.True(t, ok, cr.name)
		}
	}

	// memcached calls per request, from the servers' stats.
	calls := map[string]float64{}
	for _, cr := range rep.cases {
		for i, r := range cr.results {
			if strings.HasPrefix(cr.name, "session") {
				calls[cr.name+" "+cr.impls[i]] = r.callsPerOp
			} else {
				assert.Equal(t, -1.0, r.callsPerOp, "client benchmarks do not count calls")
			}
		}
	}
	assert.Equal(t, map[string]float64{
		"session/rw/4c memkit":         2, // get + cas
		"session/rw/4c scs":            2, // get + set
		"session/rw/4c gorilla":        2, // get + set
		"session/untouched/4c memkit":  0, // lazy: no call at all
		"session/untouched/4c scs":     1, // scs loads every request's session
		"session/untouched/4c gorilla": 0, // never asked for the session
		"session-go/rw/4c memkit":      2, // get + cas
		"session-go/rw/4c scs":         2,
		"session-go/rw/4c gorilla":     2,
		"session-go/rw/4c bare":        0,
		"session-go/read/4c memkit":    1, // get
		"session-go/read/4c scs":       1,
		"session-go/read/4c gorilla":   1,
		"session-go/read/4c bare":      0,
	}, calls)

	require.Len(t, rep.serial, 2*len(serialFormats()))
	for _, s := range rep.serial {
		assert.NoError(t, s.err, "%s %s", s.payload, s.format)
		assert.Positive(t, s.size, "%s %s", s.payload, s.format)
		assert.Positive(t, s.marshal.ops, "%s %s", s.payload, s.format)
		assert.Positive(t, s.unmarshal.ops, "%s %s", s.payload, s.format)
	}

	var out bytes.Buffer
	printReport(&out, rep)
	assert.NotRegexp(t, `(?m) $`, out.String(), "no trailing blanks")
	for _, s := range []string{"memkit/peer", "95% interval", "of limit", "targets:", "get/64g/100B/1srv", "gomemcache", "grafana", "rainycape", "quangtung97", "limit",
		"scs", "gorilla", "msgpack+zstd", "50 DB rows", "reads/writes per op", "CPU/op",
		"Get@64 100B 3srv >= 0.3 of the limit", "GetInto 100KB, 1MB >= 1.2x gomemcache", "no allocation per GetInto", "judge on >= 10",
		"sessions under an external load generator", "server CPU/req", "loadgen CPU/req", "above bare", "session CPU above bare <= 1/3 of scs's"} {
		assert.Contains(t, out.String(), s)
	}
	waitGoroutines(t, base)
}

// TestCases checks the full list of benchmarks and who takes part in
// each, without running them.
func TestCases(t *testing.T) {
	var names []string
	need := 0
	for _, bc := range append(clientCases(clientParams{limitDepth: limitDepth}), sessionCases(16, 0)...) {
		names = append(names, bc.name)
		need = max(need, bc.servers)
		var impls []string
		for _, im := range bc.impls {
			impls = append(impls, im.name)
		}
		if strings.HasPrefix(bc.name, "get/") && !strings.HasSuffix(bc.name, "/cancelctx") {
			assert.Equal(t, []string{"memkit", "memkit-into", "gomemcache", "grafana", "rainycape", "quangtung97", "limit"}, impls, bc.name)
			lim := bc.impls[len(bc.impls)-1]
			assert.Equal(t, limitConns*bc.servers, lim.workers, bc.name)
			assert.Equal(t, limitDepth, lim.batch, bc.name)
		}
	}
	assert.Equal(t, []string{
		"get/1g/100B/3srv", "get/1g/10KB/3srv", "get/1g/100KB/3srv", "get/1g/1MB/3srv",
		"get/64g/100B/3srv", "get/64g/10KB/3srv", "get/64g/100KB/3srv", "get/64g/1MB/3srv",
		"get/64g/100B/3srv/cancelctx",
		"get/64g/100B/1srv", "get/64g/10KB/1srv", "get/64g/100KB/1srv", "get/64g/1MB/1srv",
		"get/64g/100B/6srv", "get/64g/10KB/6srv", "get/64g/100KB/6srv", "get/64g/1MB/6srv",
		"set/64g/100B/3srv", "set/64g/10KB/3srv",
		"getmulti100/1g/100B/3srv", "getmulti100/1g/10KB/3srv", "getmulti100/16g/100B/3srv", "getmulti100/16g/10KB/3srv",
		"session/rw/16c", "session/untouched/16c",
	}, names)
	assert.Equal(t, 6, need)
	assert.Equal(t, 1000, keysPerImpl(100, 0))
	assert.Equal(t, 1000, keysPerImpl(10<<10, 0))
	assert.Equal(t, 163, keysPerImpl(100<<10, 0))
	assert.Equal(t, 16, keysPerImpl(1<<20, 0))
	assert.Equal(t, 100, keysPerImpl(100, 100))
	assert.Equal(t, 16, keysPerImpl(1<<20, 100))
	assert.Equal(t, "1MB", sizeName(1<<20))
	assert.Equal(t, "100KB", sizeName(100<<10))
}

func TestOnlyAndImplFilters(t *testing.T) {
	needMemcached(t)
	cfg := config{rounds: 3, duration: time.Second, warmup: time.Millisecond, maxOps: 20, clients: 2, conns: 4}
	require.NoError(t, cfg.compile(`^get/1g/100B`, `^memkit$`))
	rep, err := run(context.Background(), cfg, io.Discard)
	require.NoError(t, err)
	require.Len(t, rep.cases, 1)
	assert.Equal(t, "get/1g/100B/3srv", rep.cases[0].name)
	assert.Equal(t, []string{"memkit"}, rep.cases[0].impls)
	_, ok := rep.cases[0].paired("memkit", "gomemcache")
	assert.False(t, ok, "no peer ran")
	assert.Equal(t, 3*20, rep.cases[0].results[0].ops, "three rounds of max-ops each")
	assert.Empty(t, rep.serial, "-only excludes the serializer")
}

func TestImplMatchingNothing(t *testing.T) {
	needMemcached(t)
	cfg := config{rounds: 1, duration: time.Second, warmup: time.Millisecond, maxOps: 5, clients: 2}
	require.NoError(t, cfg.compile(`^get/1g/100B|^session/untouched`, `^nothing$`))
	rep, err := run(context.Background(), cfg, io.Discard)
	require.NoError(t, err)
	assert.Empty(t, rep.cases)
}

func TestCancelStopsRun(t *testing.T) {
	needMemcached(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := config{rounds: 1, duration: time.Hour, warmup: time.Hour, maxOps: 1 << 30, clients: 2}
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, cfg, io.Discard)
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after its context was cancelled")
	}
}

func TestHistogram(t *testing.T) {
	for _, tc := range []struct {
		name string
		ns   int64
	}{{"zero", 0}, {"small", 31}, {"edge", 32}, {"exact", 64}, {"micro", 1234}, {"milli", 7_654_321}, {"second", 1_500_000_000}, {"huge", 1 << 62}} {
		t.Run(tc.name, func(t *testing.T) {
			b := bucketOf(tc.ns)
			require.Less(t, b, len(histogram{}.counts))
			lo := bucketValue(b)
			assert.LessOrEqual(t, lo, tc.ns)
			assert.GreaterOrEqual(t, float64(lo), float64(tc.ns)*0.97, "bucket lower bound %d too far below %d", lo, tc.ns)
		})
	}
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	assert.InDelta(t, 500*time.Microsecond, h.quantile(0.5), float64(20*time.Microsecond))
	assert.InDelta(t, 990*time.Microsecond, h.quantile(0.99), float64(40*time.Microsecond))
	assert.Equal(t, time.Duration(0), (&histogram{}).quantile(0.5))
}

func TestSummarize(t *testing.T) {
	samples := []sample{
		{ops: 100, elapsed: time.Second, p50: 3, p99: 30, mallocs: 200},
		{ops: 300, elapsed: time.Second, p50: 1, p99: 10, mallocs: 300, errs: 2},
		{ops: 200, elapsed: time.Second, p50: 2, p99: 20, mallocs: 800},
	}
	r := summarize(samples, []float64{2, 0, 1})
	assert.Equal(t, 200.0, r.opsPerSec)
	assert.Equal(t, time.Duration(2), r.p50)
	assert.Equal(t, time.Duration(20), r.p99)
	assert.Equal(t, 2.0, r.allocsPerOp)
	assert.Equal(t, 1.0, r.callsPerOp)
	assert.Equal(t, 600, r.ops)
	assert.Equal(t, 2, r.errs)
	assert.Equal(t, -1.0, summarize(samples, nil).callsPerOp)
	assert.Equal(t, 2.5, medianOf([]float64{4, 1, 3, 2}))
}

func TestPairedRatios(t *testing.T) {
	at := func(ops ...int) []sample {
		var s []sample
		for _, n := range ops {
			s = append(s, sample{ops: n, elapsed: time.Second})
		}
		return s
	}
	// Load changes between rounds; within a round memkit does twice as
	// much, except in one outlier round.
	mk, peer := at(200, 2000, 50, 90), at(100, 1000, 25, 90)
	iv, ok := pairedRatios(mk, peer)
	require.True(t, ok)
	assert.Equal(t, 2.0, iv.med)
	assert.Equal(t, 4, iv.n)
	assert.False(t, iv.ok, "4 rounds give no 95 % interval")
	_, ok = pairedRatios(nil, peer)
	assert.False(t, ok)
	_, ok = pairedRatios(mk, nil)
	assert.False(t, ok)
	_, ok = pairedRatios(mk, at(0, 0))
	assert.False(t, ok, "no round with a peer throughput")

	cr := caseResult{impls: []string{"memkit", "gomemcache"}, samples: [][]sample{mk, peer}}
	iv, ok = cr.paired("memkit", "gomemcache")
	require.True(t, ok)
	assert.Equal(t, 2.0, iv.med)
	_, ok = cr.paired("memkit", "memkit")
	assert.False(t, ok, "memkit against itself")
	_, ok = cr.paired("memkit", "limit")
	assert.False(t, ok, "no limit in this case")
}

func TestMedianInterval(t *testing.T) {
	seq := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(n - i) // unsorted
		}
		return v
	}
	for _, tc := range []struct {
		n      int
		ok     bool
		lo, hi float64 // 1-based ranks of the bounds
	}{
		{5, false, 0, 0}, // P(X = 0) = 1/32 > 2.5 %
		{6, true, 1, 6},  // 1/64
		{9, true, 2, 8},  // P(X <= 1) = 10/512
		{10, true, 2, 9}, // 11/1024; P(X <= 2) = 56/1024 > 2.5 %
		{11, true, 2, 10},
		{20, true, 6, 15}, // P(X <= 5) = 2.07 %, P(X <= 6) = 5.77 %
	} {
		iv := medianInterval(seq(tc.n))
		assert.Equal(t, tc.n, iv.n)
		assert.Equal(t, tc.ok, iv.ok, "n=%d", tc.n)
		assert.Equal(t, float64(tc.n+1)/2, iv.med, "n=%d", tc.n)
		if tc.ok {
			assert.Equal(t, tc.lo, iv.lo, "n=%d", tc.n)
			assert.Equal(t, tc.hi, iv.hi, "n=%d", tc.n)
		}
	}
	assert.InDelta(t, 1.0/32, binomialCDF(5, 0), 1e-12)
	assert.InDelta(t, 56.0/1024, binomialCDF(10, 2), 1e-12)
	assert.InDelta(t, 1.0, binomialCDF(7, 7), 1e-12)
}

// TestTargets checks the verdicts and what the target lines say, on made-up
// rounds of get/64g/100B/3srv.
func TestTargets(t *testing.T) {
	rounds := func(n, ops int, writes, mallocs float64) []sample {
		var s []sample
		for r := 0; r < n; r++ {
			o := ops + r // a little spread between rounds
			s = append(s, sample{ops: o, elapsed: time.Second, writes: int64(writes * float64(o)),
				mallocs: uint64(mallocs * float64(o)), reads: 0, cpu: -1, srvCPU: -1})
		}
		return s
	}
	cr := caseResult{name: "get/64g/100B/3srv", impls: []string{"memkit", "memkit-into", "gomemcache", "limit"}}
	cr.samples = [][]sample{
		rounds(11, 3500, 0.05, 1),  // 0.35 of the limit, 5.79x gomemcache
		rounds(11, 3600, 0.05, 0),  // no allocation
		rounds(11, 600, 1, 4),      // gomemcache
		rounds(11, 10000, 0.02, 0), // the batched client
	}
	for _, s := range cr.samples {
		cr.results = append(cr.results, summarize(s, nil))
	}
	slow := cr
	slow.name = "get/64g/100B/1srv"
	slow.samples = [][]sample{rounds(5, 2000, 0.08, 1.2), rounds(5, 2000, 0, 0), rounds(5, 600, 1, 4), rounds(5, 10000, 0, 0)}

	var out bytes.Buffer
	printReport(&out, &report{machine: "test", cases: []caseResult{cr, slow}})
	for _, want := range []string{
		`hit   Get@64 100B 3srv >= 0.3 of the limit +get/64g/100B/3srv +memkit 0.350 of the limit \(95 % interval 0.350-0.351, 11 rounds\)`,
		`hit   Get@64 100B 3srv >= 5x gomemcache +get/64g/100B/3srv +memkit 5.79x gomemcache \(95 % interval 5.76-5.83, 11 rounds\)`,
		`hit   Get@64 100B 3srv <= 0.07 write\(2\) per Get +get/64g/100B/3srv +memkit 0.050 writes/op`,
		`hit   at most 1 allocation per Get +get/64g/100B/3srv +memkit 1.000 allocs/op`,
		`hit   no allocation per GetInto +get/64g/100B/3srv +memkit-into 0.000 allocs/op`,
		`MISS  Get@64 100B 1srv >= 3.5x gomemcache +get/64g/100B/1srv +memkit 3.33x gomemcache \(95 % interval unknown, 5 rounds: judge on >= 10\)`,
		`MISS  at most 1 allocation per Get +get/64g/100B/1srv +memkit 1.200 allocs/op`,
	} {
		assert.Regexp(t, want, out.String())
	}
	assert.NotContains(t, out.String(), "of the limit        get/64g/100B/1srv", "the 0.3 target is for 3 servers")
	// The table: memkit's fraction of the limit, memkit/peer with its
	// interval.
	assert.Regexp(t, `get/64g/100B/3srv +memkit .* 0.350\n`, out.String())
	assert.Regexp(t, `gomemcache .* 0.060 +5.79x +5.76-5.83\n`, out.String())
}
