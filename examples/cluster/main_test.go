package main

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

func TestMeasure(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	servers := []memclient.Server{{Addr: srvs[0].Addr, Weight: 1}, {Addr: srvs[1].Addr, Weight: 2}, {Addr: srvs[2].Addr, Weight: 3}}
	const n = 3000
	for _, d := range []memclient.Distribution{memclient.DistributionKetama, memclient.DistributionModula} {
		t.Run(d.String(), func(t *testing.T) {
			res, err := measure(context.Background(), servers, d, n)
			require.NoError(t, err)
			require.Len(t, res.Shares, 3)
			var sum float64
			keys := 0
			for i, s := range res.Shares {
				assert.Equal(t, servers[i].Addr, s.Addr)
				assert.Equal(t, servers[i].Weight, s.Weight)
				assert.Positive(t, s.Keys, "every server gets keys")
				// The weight shows: within 8 points of weight/total.
				assert.InDelta(t, s.Expected, s.Percent, 8, "%s", s.Addr)
				sum += s.Percent
				keys += s.Keys
			}
			assert.InDelta(t, 100, sum, 1e-9, "percentages sum to 100")
			assert.Equal(t, n, keys)
			assert.Less(t, res.Shares[0].Keys, res.Shares[2].Keys, "weight 1 gets fewer keys than weight 3")

			// The keys are deleted afterwards.
			stats, err := statsItems(t, servers)
			require.NoError(t, err)
			assert.Zero(t, stats, "keys left behind")
		})
	}
}

// statsItems sums curr_items over servers.
func statsItems(t *testing.T, servers []memclient.Server) (int, error) {
	cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers})
	require.NoError(t, err)
	defer cl.Close()
	st, err := cl.Stats(context.Background())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range st {
		var v int
		v, _ = strconv.Atoi(m["curr_items"])
		n += v
	}
	return n, nil
}

func TestRunPrintsBothDistributions(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	list := srvs[0].Addr + ":1," + srvs[1].Addr + ":2," + srvs[2].Addr + ":3"
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, list, 600))
	s := out.String()
	assert.Contains(t, s, "3 servers, 600 keys")
	assert.Contains(t, s, "ketama:")
	assert.Contains(t, s, "modula:")
	for _, srv := range srvs {
		assert.Equal(t, 2, bytes.Count(out.Bytes(), []byte(srv.Addr)), "each server in both tables")
	}
}

func TestParseFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	none := env(nil)
	t.Run("spread is the default", func(t *testing.T) {
		o, err := parseFlags(nil, env(map[string]string{"MEMKIT_MEMCACHED": "127.0.0.1:7"}), io.Discard)
		require.NoError(t, err)
		assert.Equal(t, modeSpread, o.mode)
		assert.Equal(t, "127.0.0.1:7", o.memcached, "$MEMKIT_MEMCACHED is the default of -memcached")
		assert.Equal(t, 10000, o.keys)
	})
	t.Run("gutter defaults", func(t *testing.T) {
		o, err := parseFlags([]string{"-mode", "gutter"}, none, io.Discard)
		require.NoError(t, err)
		assert.Equal(t, loadConfig{Keys: 10000, Rate: 20000, Workers: 16, Before: 2 * time.Second, After: 10 * time.Second,
			Zipf: 1.01, Seed: 1, GutterTTL: 4 * time.Second, WarmUp: 10 * time.Second}, o.load)
	})
	t.Run("warmup defaults: the issue's workload", func(t *testing.T) {
		o, err := parseFlags([]string{"-mode", "warmup"}, none, io.Discard)
		require.NoError(t, err)
		assert.Equal(t, 100000, o.load.Keys)
		assert.Equal(t, 20000, o.load.Rate)
		assert.Equal(t, time.Minute, o.load.After)
		assert.Equal(t, time.Minute, o.load.WarmUp, "warm-up covers the time measured")
	})
	t.Run("short run", func(t *testing.T) {
		o, err := parseFlags([]string{"-mode", "warmup", "-keys", "500", "-rate", "100", "-duration", "2s", "-warmup-for", "1s", "-before", "0s"}, none, io.Discard)
		require.NoError(t, err)
		assert.Equal(t, loadConfig{Keys: 500, Rate: 100, Workers: 16, After: 2 * time.Second, Zipf: 1.01, Seed: 1, GutterTTL: 4 * time.Second, WarmUp: time.Second}, o.load)
	})
	for _, mode := range []string{"gutter", "warmup"} {
		t.Run(mode+" refuses -memcached", func(t *testing.T) {
			_, err := parseFlags([]string{"-mode", mode, "-memcached", "127.0.0.1:11211"}, none, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "does not take -memcached")
		})
		t.Run(mode+" ignores $MEMKIT_MEMCACHED, saying so", func(t *testing.T) {
			var stderr bytes.Buffer
			o, err := parseFlags([]string{"-mode", mode}, env(map[string]string{"MEMKIT_MEMCACHED": "127.0.0.1:11211"}), &stderr)
			require.NoError(t, err)
			assert.Empty(t, o.memcached)
			assert.Contains(t, stderr.String(), "ignoring $MEMKIT_MEMCACHED")
		})
	}
	for _, args := range [][]string{
		{"-mode", "nope"},
		{"-keys", "-1"},
		{"-mode", "gutter", "-rate", "0"},
		{"-mode", "gutter", "-zipf", "1"},
		{"-mode", "gutter", "-gutter-ttl", "500ms"},
		{"-mode", "warmup", "-duration", "100ms"},
		{"-mode", "warmup", "-freeze"},
		{"extra"},
	} {
		_, err := parseFlags(args, none, io.Discard)
		assert.Error(t, err, "%q", args)
	}
}

// shortLoad is a load small and slow enough for a loaded 2-core machine
// under the race detector.
func shortLoad() loadConfig {
	return loadConfig{Keys: 2000, Rate: 2000, Workers: 8, Before: 500 * time.Millisecond, After: 3 * time.Second,
		Zipf: 1.01, Seed: 1, GutterTTL: time.Second, WarmUp: 3 * time.Second}
}

// runMode runs a mode (runGutter or runWarmUp) with cfg, requires it to
// succeed, and returns its report and its output (logged).
func runMode[R any](t *testing.T, run func(context.Context, io.Writer, loadConfig) (R, error), cfg loadConfig) (R, string) {
	t.Helper()
	var out bytes.Buffer
	rep, err := run(context.Background(), &out, cfg)
	require.NoError(t, err)
	s := out.String()
	t.Log("\n" + s)
	return rep, s
}

// assertContainsAll asserts that s contains each of want.
func assertContainsAll(t *testing.T, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		assert.Contains(t, s, w)
	}
}

// assertOneRowPerSecond asserts that the table of a shortLoad run has one
// row per second, one before the event and three after, and the total.
func assertOneRowPerSecond(t *testing.T, s string) {
	t.Helper()
	for _, row := range []string{"\n     -1 |", "\n      0 |", "\n      1 |", "\n      2 |", "\n  after |"} {
		assert.Equal(t, 1, strings.Count(s, row), "row %q", row)
	}
}

func TestGutterMode(t *testing.T) {
	leakcheck.Check(t)
	memcachetest.Binary(t)
	cfg := shortLoad()
	rep, s := runMode(t, runGutter, cfg)
	assertContainsAll(t, s,
		"run 1 of 2: without a gutter ... killed ",
		"run 2 of 2: with a gutter ... killed ",
		"without a gutter",
		"requests    errors  DB loads",
		"gutter hits",
		"<- a server killed",
		"errors returned to callers in the 3s after the kill: ",
		"database loads in the 3s after the kill: ",
		"values served from the gutter: ",
	)
	// One row per second: one before the kill, three after, and the total.
	assertOneRowPerSecond(t, s)
	assert.Equal(t, rep.Without.Victim, rep.With.Victim, "the same server killed on the same ring")

	a, b := rep.Without, rep.With
	assert.Greater(t, a.Errors, int64(100), "killing a server without a gutter fails callers")
	assert.Equal(t, a.Errors, a.Loads, "each failed request went to the database")
	assert.LessOrEqual(t, b.Errors*10, a.Errors, "the gutter cut errors by less than 90%%")
	assert.GreaterOrEqual(t, rep.ErrorsFewer, 90.0)
	assert.Less(t, b.Loads, a.Loads, "the gutter spares the database")
	assert.Positive(t, b.GutterHits)
	assert.GreaterOrEqual(t, b.GutterServerHits, b.GutterHits, "the gutter server saw the hits counted")
	assert.Zero(t, a.GutterHits)
	// Values in the gutter expire within GutterTTL (memcached counts
	// whole seconds on a clock that ticks once a second, so allow it
	// some lateness): unclamped, they would be served up to 3s old.
	assert.Less(t, b.Oldest, cfg.GutterTTL+500*time.Millisecond, "a value older than GutterTTL came from the gutter")
}

// TestGutterModeFreeze: -freeze stops the server (SIGSTOP) instead of
// killing it. Its calls time out before the server is marked down, gutter
// or not (see the README), so only the run and its output are checked.
func TestGutterModeFreeze(t *testing.T) {
	leakcheck.Check(t)
	memcachetest.Binary(t)
	if runtime.GOOS == "windows" {
		t.Skip("no SIGSTOP")
	}
	cfg := shortLoad()
	cfg.Freeze = true
	cfg.After = 2 * time.Second
	rep, s := runMode(t, runGutter, cfg)
	assertContainsAll(t, s,
		"one server frozen after 500ms",
		"run 1 of 2: without a gutter ... frozen ",
		"<- a server frozen",
		"errors returned to callers in the 2s after the freeze: ",
	)
	assert.Positive(t, rep.Without.Errors, "a frozen server fails its callers")
	assert.Less(t, rep.With.Oldest, cfg.GutterTTL+500*time.Millisecond)
}

func TestWarmUpMode(t *testing.T) {
	leakcheck.Check(t)
	memcachetest.Binary(t)
	cfg := shortLoad()
	rep, s := runMode(t, runWarmUp, cfg)
	assertContainsAll(t, s,
		" keys (",
		"move to the new server",
		"run 1 of 2: without warm-up ... done",
		"run 2 of 2: with WarmUp 3s ... done",
		"misses on",
		"moved keys",
		"<- a 4th server added",
		"misses on moved keys in the 3s after the addition: ",
		"the new server holds at the end: ",
	)
	assertOneRowPerSecond(t, s)
	assert.InDelta(t, cfg.Keys/4, rep.Moved, float64(cfg.Keys)/10, "about a quarter of the keys move")

	a, b := rep.Without, rep.With
	assert.Greater(t, a.MovedMisses, int64(20), "adding a server without warm-up makes moved keys miss")
	assert.LessOrEqual(t, b.MovedMisses*5, a.MovedMisses, "warm-up cut misses on moved keys by less than 80%%")
	assert.GreaterOrEqual(t, rep.MissesFewer, 80.0)
	assert.Zero(t, a.OtherMisses, "only moved keys miss")
	assert.Zero(t, b.OtherMisses, "only moved keys miss")
	assert.Zero(t, a.Errors+b.Errors)
	assert.Positive(t, b.NewServerItems, "warm-up filled the new server")
}
