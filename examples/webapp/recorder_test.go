package main

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

func TestHistogram(t *testing.T) {
	for _, d := range []time.Duration{1500 * time.Nanosecond, 17 * time.Microsecond, 250 * time.Microsecond,
		3 * time.Millisecond, 90 * time.Millisecond, 2 * time.Second} {
		v := histValue(histIndex(d))
		assert.InEpsilon(t, float64(d), float64(v), 0.13, "%v lands in a bucket whose middle is %v", d, v)
	}
	assert.Equal(t, 0, histIndex(0))
	assert.Equal(t, 0, histIndex(-time.Second))
	assert.Equal(t, histBuckets-1, histIndex(time.Hour))
	for i := 1; i < histBuckets; i++ {
		require.Greater(t, histValue(i), histValue(i-1), "bucket %d", i)
		require.Equal(t, i, histIndex(histValue(i)), "the middle of bucket %d is in it", i)
	}

	var h hist
	_, ok := h.quantile(0.5)
	assert.False(t, ok, "no durations, no quantile")
	for range 98 {
		h.add(100 * time.Microsecond)
	}
	h.add(10 * time.Millisecond)
	h.add(10 * time.Millisecond)
	p50, _ := h.quantile(0.5)
	p99, _ := h.quantile(0.99)
	assert.InEpsilon(t, float64(100*time.Microsecond), float64(p50), 0.13)
	assert.InEpsilon(t, float64(10*time.Millisecond), float64(p99), 0.13)
}

// TestRecorder feeds a recorder operations and cache events over a few
// seconds of a fake clock and checks the series it returns.
func TestRecorder(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	r := newRecorder(time.Minute, []string{"a:1", "b:2"})
	r.now = func() time.Time { return now }
	ctx := context.Background()
	op := func(server string, keys int, d time.Duration, o memclient.Outcome) {
		r.ObserveOp(ctx, memclient.Op{Name: "get", Server: server, Keys: keys, Duration: d, Outcome: o})
	}
	cache := func(kind objcache.EventKind, n uint64) { r.ObserveCache(ctx, objcache.Event{Kind: kind, Count: n}) }

	s := r.series()
	assert.Empty(t, s.Ops, "nothing recorded yet")
	assert.Equal(t, 60, s.WindowSeconds)

	// Second 0: 3 ops on a (one failed), 1 on b; keys 1+1+1 on a, 3 on b.
	op("a:1", 1, 100*time.Microsecond, memclient.OutcomeOK)
	op("a:1", 1, 100*time.Microsecond, memclient.OutcomeMiss)
	op("a:1", 1, 50*time.Millisecond, memclient.OutcomeFailed)
	op("b:2", 3, time.Millisecond, memclient.OutcomeOK)
	op("", 1, 0, memclient.OutcomeFailed) // a malformed key: no server
	cache(objcache.EventHit, 3)
	cache(objcache.EventMiss, 1)
	cache(objcache.EventLoad, 1) // not charted
	// Second 1: nothing. Second 2: one op on a new server (a gutter).
	now = now.Add(2 * time.Second)
	op("g:3", 2, time.Millisecond, memclient.OutcomeOK)
	now = now.Add(time.Second)

	s = r.series()
	require.Len(t, s.Ops, 3, "seconds 0 to 2; second 3 is not over")
	assert.Equal(t, time.Unix(1_000_000, 0).UTC(), s.Start)
	assert.Equal(t, points{5, 0, 1}, s.Ops)
	assert.Equal(t, points{2, 0, 0}, s.Failures)
	assert.InDelta(t, 0.75, s.HitRatio[0], 1e-9)
	assert.True(t, math.IsNaN(s.HitRatio[1]), "no lookups: no ratio")
	require.Len(t, s.Servers, 3)
	a, b, g := s.Servers[0], s.Servers[1], s.Servers[2]
	assert.Equal(t, []string{"a:1", "b:2", "g:3"}, []string{a.Addr, b.Addr, g.Addr}, "configured servers first, in order")
	assert.Equal(t, points{3, 0, 0}, a.Ops)
	assert.InDelta(t, 0.5, a.KeyShare[0], 1e-9)
	assert.InDelta(t, 0.5, b.KeyShare[0], 1e-9)
	assert.InDelta(t, 1, g.KeyShare[2], 1e-9)
	assert.True(t, math.IsNaN(a.KeyShare[1]))
	assert.InEpsilon(t, 100e-6, a.P50[0], 0.13)
	assert.InEpsilon(t, 50e-3, a.P99[0], 0.13)
	assert.True(t, math.IsNaN(a.P50[2]), "no operations on a in second 2")
	assert.InEpsilon(t, 1e-3, b.P99[0], 0.13)
	assert.InDelta(t, 0.6, s.Last10s.Ops, 1e-9, "6 operations in 10 s")
	require.NotNil(t, s.Last10s.HitRatio)
	assert.InDelta(t, 0.75, *s.Last10s.HitRatio, 1e-9)

	// JSON: numbers, and null where a second has no value.
	b2, err := json.Marshal(s)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b2, &m))
	assert.Equal(t, []any{0.75, nil, nil}, m["hit_ratio"])
	assert.Equal(t, []any{5.0, 0.0, 1.0}, m["ops_per_second"])

	// A minute later the old seconds have left the window, and the ring
	// reuses their buckets without mixing them up.
	now = now.Add(time.Minute)
	op("b:2", 1, time.Millisecond, memclient.OutcomeOK)
	now = now.Add(time.Second)
	s = r.series()
	require.Len(t, s.Ops, 60)
	assert.Equal(t, 1.0, s.Ops[59])
	total := 0.0
	for _, v := range s.Ops {
		total += v
	}
	assert.Equal(t, 1.0, total, "only the last operation is in the window")
	assert.True(t, math.IsNaN(s.Servers[0].P50[59]))
}
