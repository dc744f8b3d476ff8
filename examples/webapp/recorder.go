package main

import (
	"context"
	"encoding/json"
	"math"
	"math/bits"
	"strconv"
	"sync"
	"time"

	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// The dashboard's time series: what memclient and objcache report to
// their observers, kept per second for the last few minutes. timeline is
// the unsynchronized core; recorder is the locking Observer around it.

// DefaultWindow is how far back the dashboard's charts go.
const DefaultWindow = 5 * time.Minute

// Latency histogram: 4 buckets per power of two (a bucket spans at most
// 19 % of its value) from 1 µs (2^10 ns) to 64 s (2^36 ns); shorter and
// longer durations land in the first and last bucket.
const (
	histMinExp  = 10
	histMaxExp  = 36
	histSub     = 4 // buckets per power of two; a power of two itself
	histBuckets = (histMaxExp - histMinExp) * histSub
)

// hist counts durations in histBuckets log-spaced buckets.
type hist [histBuckets]uint32

func histIndex(d time.Duration) int {
	ns := uint64(max(d, 0))
	e := bits.Len64(ns) // 2^(e-1) <= ns < 2^e
	if e <= histMinExp {
		return 0
	}
	if e > histMaxExp {
		return histBuckets - 1
	}
	sub := int(ns>>(e-3)) & (histSub - 1) // the two bits after the leading one
	return (e-1-histMinExp)*histSub + sub
}

// histValue is the middle of bucket i.
func histValue(i int) time.Duration {
	e, sub := i/histSub+histMinExp, i%histSub
	lo := uint64(histSub+sub) << (e - 2)
	hi := uint64(histSub+sub+1) << (e - 2)
	return time.Duration((lo + hi) / 2)
}

func (h *hist) add(d time.Duration) { h[histIndex(d)]++ }

func (h *hist) merge(o *hist) {
	for i, n := range o {
		h[i] += n
	}
}

// quantile returns the q-quantile (0 < q <= 1) of the durations counted,
// to the bucket's middle, and false when there are none.
func (h *hist) quantile(q float64) (time.Duration, bool) {
	var total uint64
	for _, n := range h {
		total += uint64(n)
	}
	if total == 0 {
		return 0, false
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, n := range h {
		if seen += uint64(n); seen >= max(rank, 1) {
			return histValue(i), true
		}
	}
	return histValue(histBuckets - 1), true
}

// second is what one second saw.
type second struct {
	at           int64 // the Unix second it holds; 0 when unused
	ops, failed  uint64
	hits, misses uint64         // objcache's (the application's)
	servers      []serverSecond // by server index
}

type serverSecond struct {
	ops, keys uint64
	lat       hist
}

// timeline keeps a ring of seconds. It is not safe for concurrent use.
type timeline struct {
	secs    []second // ring: second t lives at t % len
	started int64    // the first second recorded
	servers []string // server addresses by index, in order of first sight
	index   map[string]int
}

func newTimeline(window time.Duration, servers []string) *timeline {
	n := max(int(window/time.Second), 2)
	tl := &timeline{secs: make([]second, n), index: make(map[string]int)}
	for _, s := range servers {
		tl.serverIndex(s)
	}
	return tl
}

func (tl *timeline) serverIndex(addr string) int {
	if i, ok := tl.index[addr]; ok {
		return i
	}
	tl.index[addr] = len(tl.servers)
	tl.servers = append(tl.servers, addr)
	return len(tl.servers) - 1
}

// at returns the bucket of Unix second t, emptied if it held an older one.
func (tl *timeline) at(t int64) *second {
	if tl.started == 0 || t < tl.started {
		tl.started = t
	}
	s := &tl.secs[int(t%int64(len(tl.secs)))]
	if s.at != t {
		*s = second{at: t, servers: s.servers[:0]} // op appends zeroed servers
	}
	return s
}

func (tl *timeline) op(t int64, op memclient.Op) {
	s := tl.at(t)
	s.ops++
	if op.Outcome == memclient.OutcomeFailed {
		s.failed++
	}
	if op.Server == "" {
		return // refused before a server was chosen
	}
	i := tl.serverIndex(op.Server)
	for len(s.servers) <= i {
		s.servers = append(s.servers, serverSecond{})
	}
	ss := &s.servers[i]
	ss.ops++
	ss.keys += uint64(max(op.Keys, 0))
	ss.lat.add(op.Duration)
}

func (tl *timeline) cache(t int64, ev objcache.Event) {
	switch ev.Kind {
	case objcache.EventHit:
		tl.at(t).hits += ev.Count
	case objcache.EventMiss:
		tl.at(t).misses += ev.Count
	}
}

// get returns the bucket of second t, or nil if nothing was recorded then.
func (tl *timeline) get(t int64) *second {
	s := &tl.secs[int(t%int64(len(tl.secs)))]
	if s.at != t {
		return nil
	}
	return s
}

// points is a time series, one value per second; NaN is a second without
// data (no lookups for a ratio, no operations for a latency), written to
// JSON as null.
type points []float64

func (p points) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, v := range p {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, v, 'g', 6, 64)
	}
	return append(b, ']'), nil
}

var _ json.Marshaler = points(nil)

// series is the dashboard's data: one value per second, from Start for
// len(Ops) seconds, ending with the last whole second.
type series struct {
	Start       time.Time `json:"start"` // the first value's second
	StepSeconds int       `json:"step_seconds"`
	// Window is how many seconds the charts span (Start may be later, for a
	// shop that started less than a window ago).
	WindowSeconds int `json:"window_seconds"`
	// Ops and Failures are memcached operations per second, all servers:
	// every operation, and those that failed (a miss is not a failure).
	Ops      points `json:"ops_per_second"`
	Failures points `json:"failures_per_second"`
	// HitRatio is the application's: objcache hits / (hits + misses),
	// 0 to 1, null in a second without lookups.
	HitRatio points         `json:"hit_ratio"`
	Servers  []serverSeries `json:"servers"`
	// Last10s sums up the last ten seconds.
	Last10s summary `json:"last_10s"`
}

// serverSeries is one server's share of the traffic and its latencies.
type serverSeries struct {
	Addr string `json:"addr"`
	Ops  points `json:"ops_per_second"`
	// KeyShare is the server's share of the keys sent to any server that
	// second, 0 to 1.
	KeyShare points `json:"key_share"`
	// P50 and P99 are the operations' latencies, in seconds, as the client
	// measured them (queueing in the client included); null in a second
	// without operations on the server.
	P50 points `json:"p50_seconds"`
	P99 points `json:"p99_seconds"`
}

// summary is a few seconds summed up.
type summary struct {
	Ops      float64  `json:"ops_per_second"`
	Failures float64  `json:"failures_per_second"`
	HitRatio *float64 `json:"hit_ratio"`   // null without lookups
	P50      *float64 `json:"p50_seconds"` // all servers; null without operations
	P99      *float64 `json:"p99_seconds"`
}

// series returns the seconds from now-window (or the first recorded) to
// the last whole second before now.
func (tl *timeline) series(now int64) series {
	end := now - 1 // the last whole second
	first := end - int64(len(tl.secs)) + 2
	out := series{StepSeconds: 1, WindowSeconds: len(tl.secs) - 1, Servers: make([]serverSeries, len(tl.servers))}
	if tl.started != 0 && tl.started > first {
		first = tl.started
	}
	if tl.started == 0 || first > end {
		first = end + 1 // nothing yet
	}
	n := int(end - first + 1)
	out.Start = time.Unix(first, 0).UTC()
	out.Ops, out.Failures, out.HitRatio = make(points, n), make(points, n), make(points, n)
	for i, addr := range tl.servers {
		out.Servers[i] = serverSeries{Addr: addr, Ops: make(points, n), KeyShare: make(points, n), P50: make(points, n), P99: make(points, n)}
	}
	for k := range n {
		s := tl.get(first + int64(k))
		out.HitRatio[k] = math.NaN()
		for i := range out.Servers {
			ss := &out.Servers[i]
			ss.KeyShare[k], ss.P50[k], ss.P99[k] = math.NaN(), math.NaN(), math.NaN()
		}
		if s == nil {
			continue
		}
		out.Ops[k], out.Failures[k] = float64(s.ops), float64(s.failed)
		if s.hits+s.misses > 0 {
			out.HitRatio[k] = float64(s.hits) / float64(s.hits+s.misses)
		}
		var keys uint64
		for _, ss := range s.servers {
			keys += ss.keys
		}
		for i := range s.servers {
			ss, o := &s.servers[i], &out.Servers[i]
			o.Ops[k] = float64(ss.ops)
			if keys > 0 {
				o.KeyShare[k] = float64(ss.keys) / float64(keys)
			}
			if p, ok := ss.lat.quantile(0.5); ok {
				o.P50[k] = p.Seconds()
			}
			if p, ok := ss.lat.quantile(0.99); ok {
				o.P99[k] = p.Seconds()
			}
		}
	}
	out.Last10s = tl.summary(end, 10)
	return out
}

// summary sums up the n seconds ending with second end.
func (tl *timeline) summary(end int64, n int) summary {
	var ops, failed, hits, misses uint64
	var lat hist
	for t := end - int64(n) + 1; t <= end; t++ {
		s := tl.get(t)
		if s == nil {
			continue
		}
		ops, failed, hits, misses = ops+s.ops, failed+s.failed, hits+s.hits, misses+s.misses
		for i := range s.servers {
			lat.merge(&s.servers[i].lat)
		}
	}
	out := summary{Ops: float64(ops) / float64(n), Failures: float64(failed) / float64(n)}
	if hits+misses > 0 {
		r := float64(hits) / float64(hits+misses)
		out.HitRatio = &r
	}
	if p, ok := lat.quantile(0.5); ok {
		s := p.Seconds()
		out.P50 = &s
	}
	if p, ok := lat.quantile(0.99); ok {
		s := p.Seconds()
		out.P99 = &s
	}
	return out
}

// recorder keeps the dashboard's time series from what memclient and
// objcache tell it: it is a memclient.Observer and an objcache.Observer
// (and the in-memory mode's memo reports to it as objcache would). Safe
// for concurrent use; each call takes a mutex for a few counter updates.
type recorder struct {
	now func() time.Time // clock seam

	mu sync.Mutex // protects tl
	tl *timeline
}

var (
	_ memclient.Observer = (*recorder)(nil)
	_ objcache.Observer  = (*recorder)(nil)
)

// newRecorder keeps window's worth of seconds; servers, in the client's
// order, fix the order (and colours) of the dashboard's servers.
func newRecorder(window time.Duration, servers []string) *recorder {
	return &recorder{now: time.Now, tl: newTimeline(window+time.Second, servers)}
}

func (r *recorder) ObserveOp(_ context.Context, op memclient.Op) {
	t := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tl.op(t, op)
}

// ObserveServer does nothing: the dashboard reads the servers' state from
// the client when it is drawn.
func (r *recorder) ObserveServer(context.Context, memclient.ServerEvent) {}

func (r *recorder) ObserveCache(_ context.Context, ev objcache.Event) {
	if ev.Kind != objcache.EventHit && ev.Kind != objcache.EventMiss {
		return
	}
	t := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tl.cache(t, ev)
}

// series returns the last window of seconds.
func (r *recorder) series() series {
	t := r.now().Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tl.series(t)
}
