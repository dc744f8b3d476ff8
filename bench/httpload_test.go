package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary serve as the server process of the
// external-load benchmarks (see serveEnv) when re-executed as one.
func TestMain(m *testing.M) {
	serveIfAsked()
	os.Exit(m.Run())
}

func TestHTTPCases(t *testing.T) {
	var names []string
	for _, hc := range httpCases("wrk", DefaultHTTPConns) {
		names = append(names, hc.name)
	}
	assert.Equal(t, []string{"session-wrk/rw/32c", "session-wrk/read/32c"}, names)

	cfg := config{rounds: 1, duration: time.Second, maxOps: 1, clients: 1}
	require.NoError(t, cfg.compile("", ""))
	assert.Empty(t, cfg.httpCases(), "no load generator, no such benchmark")
	cfg.loadgen = "go"
	require.NoError(t, cfg.compile("/read/", ""))
	require.Len(t, cfg.httpCases(), 1)
	assert.Equal(t, "session-go/read/32c", cfg.httpCases()[0].name)
	cfg.loadgen = "ab"
	assert.ErrorContains(t, cfg.compile("", ""), "-loadgen")
}

// TestWrk drives a memkit server and the bare handler with wrk for one
// short round. ./scripts/install-deps.sh installs wrk; without it the
// test skips, or fails when CI=true.
func TestWrk(t *testing.T) {
	needMemcached(t)
	if _, err := exec.LookPath("wrk"); err != nil {
		msg := "wrk not installed: ./scripts/install-deps.sh installs it (apt-get install wrk)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg := config{rounds: 1, duration: time.Second, warmup: time.Second, maxOps: 1000, clients: 1,
		loadgen: "wrk", wrk: "wrk", httpConns: 4, httpDuration: time.Second}
	require.NoError(t, cfg.compile(`^session-wrk/rw/`, `^(memkit|bare)$`))
	rep, err := run(context.Background(), cfg, io.Discard)
	require.NoError(t, err)
	require.Len(t, rep.cases, 1)
	cr := rep.cases[0]
	assert.Equal(t, "session-wrk/rw/4c", cr.name)
	assert.Equal(t, "wrk", cr.ext)
	assert.Equal(t, []string{"memkit", bareName}, cr.impls)
	for i, r := range cr.results {
		assert.Positive(t, r.ops, cr.impls[i])
		assert.Zero(t, r.errs, "%s: %v", cr.impls[i], r.firstErr)
		assert.Positive(t, r.p99, cr.impls[i])
		assert.Positive(t, r.cpuPerOp, cr.impls[i])
		gen, ok := cr.measure(cr.impls[i], func(s sample) float64 { return s.cpuPerOp(s.genCPU) })
		require.True(t, ok)
		assert.Positive(t, gen.med, "%s: wrk's CPU", cr.impls[i])
	}
	// get + cas; the requests in flight when wrk stops are not counted
	assert.InDelta(t, 2.0, cr.results[0].callsPerOp, 0.01)
	above, ok := cr.aboveBare("memkit")
	require.True(t, ok)
	assert.Positive(t, above.med, "sessions cost something")
}

func TestParseWrk(t *testing.T) {
	out := "Running 1s test @ http://127.0.0.1:1234/rw\n  1 threads and 32 connections\n" +
		"memkit-bench-wrk 12345 1001234 0 2 0 3 1 1500 9000\n"
	r, err := parseWrk(out)
	require.NoError(t, err)
	assert.Equal(t, 12345, r.requests)
	assert.Equal(t, 1001234*time.Microsecond, r.elapsed)
	assert.Equal(t, 1500*time.Microsecond, r.p50)
	assert.Equal(t, 9000*time.Microsecond, r.p99)
	assert.Equal(t, 6, r.errs)
	assert.ErrorContains(t, r.firstErr, "2 read")
	assert.ErrorContains(t, r.firstErr, "3 responses not 2xx")

	r, err = parseWrk("memkit-bench-wrk 10 1000000 0 0 0 0 0 5 9\n")
	require.NoError(t, err)
	assert.Zero(t, r.errs)
	assert.NoError(t, r.firstErr)

	_, err = parseWrk("unable to connect to 127.0.0.1:1 Connection refused\n")
	assert.ErrorContains(t, err, "printed no")
	_, err = parseWrk("memkit-bench-wrk 1 2 x 0 0 0 0 0 0\n")
	assert.Error(t, err)
}

// TestCheckFindsLostUpdates proves the end-of-benchmark check: a /rw
// request that did not add to one of the bench's sessions (here: it
// carried no cookie, so it made a session of its own) is a lost update.
func TestCheckFindsLostUpdates(t *testing.T) {
	needMemcached(t)
	srv := memcachetest.Start(t, serverOptions(""))
	base := runtime.NumGoroutine()
	addrs := []string{srv.Addr}
	ctx := context.Background()
	for _, impl := range []string{"memkit", "scs", "gorilla"} {
		t.Run(impl, func(t *testing.T) {
			p, err := startServerProc(ctx, serveConfig{Impl: impl, Servers: addrs, Clients: 2})
			require.NoError(t, err)
			defer p.close()
			require.NoError(t, p.makeSessions(ctx, 3))
			require.NoError(t, p.check(ctx, 0))
			_, body, err := p.get(ctx, "/rw", p.cookies[1])
			require.NoError(t, err)
			assert.Equal(t, "2", string(body))
			require.NoError(t, p.check(ctx, 0))

			_, _, err = p.get(ctx, "/rw", "")
			require.NoError(t, err)
			assert.ErrorContains(t, p.check(ctx, 0), "1 of 5 session updates lost")
			assert.NoError(t, p.check(ctx, 1), "one failed request forgiven")

			st, err := p.stats(ctx)
			require.NoError(t, err)
			assert.Equal(t, int64(5), st.RW)
			if runtime.GOOS == "linux" {
				assert.Positive(t, st.CPU)
				assert.Positive(t, st.Reads)
			}
		})
	}
	waitGoroutines(t, base)
}

// TestAboveBare checks the CPU-above-bare measures and the target line
// on made-up rounds: memkit costs 30 µs above the bare handler's 20 µs,
// scs 100 µs above, in every round but an outlier.
func TestAboveBare(t *testing.T) {
	rounds := func(cpuUs ...float64) []sample {
		var s []sample
		for _, c := range cpuUs {
			s = append(s, sample{ops: 1000, elapsed: time.Second, cpu: time.Duration(c * 1000 * float64(time.Microsecond)), srvCPU: -1, genCPU: -1})
		}
		return s
	}
	const n = 11
	mk, scs, bare := make([]float64, n), make([]float64, n), make([]float64, n)
	for r := range n {
		bare[r] = 20 + float64(r) // the load drifts between rounds
		mk[r], scs[r] = bare[r]+30, bare[r]+100
	}
	mk[3] = bare[3] + 80 // an outlier round
	cr := caseResult{name: "session-wrk/rw/32c", ext: "wrk", impls: []string{"memkit", "scs", bareName},
		samples: [][]sample{rounds(mk...), rounds(scs...), rounds(bare...)}}
	for _, s := range cr.samples {
		cr.results = append(cr.results, summarize(s, nil))
	}
	iv, ok := cr.aboveBare("memkit")
	require.True(t, ok)
	assert.InDelta(t, 30e3, iv.med, 1)
	assert.True(t, iv.ok)
	iv, ok = cr.aboveBareRatio("memkit", "scs")
	require.True(t, ok)
	assert.InDelta(t, 0.3, iv.med, 1e-9)
	_, ok = cr.aboveBareRatio("memkit", "gorilla")
	assert.False(t, ok, "gorilla did not run")
	_, ok = cr.aboveBareRatio("memkit", bareName)
	assert.False(t, ok, "bare is not above itself")

	var out bytes.Buffer
	printReport(&out, &report{machine: "test", cases: []caseResult{cr}, notes: []string{"session-go benchmarks skipped: because"}})
	s := out.String()
	assert.Regexp(t, `hit   session CPU above bare <= 1/3 of scs's +session-wrk/rw/32c +memkit 0.30 of scs's \(95 % interval 0.30-0.30, 11 rounds\), 30.0µs against 100.0µs above bare`, s)
	assert.Contains(t, s, "sessions under an external load generator")
	assert.Regexp(t, `session-wrk/rw/32c +memkit +1000 .* 30.0µs +30.0-30.0µs`, s)
	assert.Regexp(t, `scs +1000 .* 100.0µs +100.0-100.0µs +0.30 +0.30-0.30 +1.00x`, s)
	assert.Contains(t, s, "notes:\n  session-go benchmarks skipped: because")
	assert.NotContains(t, s, "ops/s", "no in-process benchmark, no such table")
	assert.NotRegexp(t, `(?m) $`, s, "no trailing blanks")

	scs[0] = bare[0] - 1 // scs below bare in a round: no ratio from it
	cr.samples[1] = rounds(scs...)
	iv, ok = cr.aboveBareRatio("memkit", "scs")
	require.True(t, ok)
	assert.Equal(t, n-1, iv.n)
	assert.True(t, strings.HasPrefix(fmtNanos(-1), "-"))
}
