package memkitprom_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	memkitprom "github.com/memkit/memkit/adapters/prometheus"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/internal/serverwatch"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

// fixedNames are the metric names dashboards are written against: they
// must appear exactly so.
var fixedNames = []string{
	"memkit_memcached_operations_total",
	"memkit_memcached_operation_failures_total",
	"memkit_memcached_operation_duration_seconds",
	"memkit_memcached_server_up",
	"memkit_objcache_hits_total",
	"memkit_objcache_misses_total",
	"memkit_objcache_loads_total",
	"memkit_objcache_load_errors_total",
	"memkit_objcache_stale_served_total",
	"memkit_objcache_batch_loads_total",
	"memkit_objcache_batch_keys",
	"memkit_objcache_failsafe_served_total",
	"memkit_objcache_background_loads_total",
	"memkit_session_loads_total",
	"memkit_session_saves_total",
	"memkit_session_conflicts_total",
	"memkit_session_revocations_total",
}

// extraNames are the other metrics the Collector exports.
var extraNames = []string{
	"memkit_memcached_operation_outcomes_total",
	"memkit_memcached_operation_keys_total",
	"memkit_memcached_value_received_bytes_total",
	"memkit_memcached_value_sent_bytes_total",
	"memkit_memcached_server_marked_down_total",
	"memkit_objcache_not_found_total",
	"memkit_objcache_lease_waits_total",
	"memkit_objcache_decode_errors_total",
	"memkit_objcache_coalesced_total",
	"memkit_objcache_refreshes_total",
	"memkit_objcache_negative_hits_total",
	"memkit_objcache_errors_total",
	"memkit_session_revoked_total",
	"memkit_session_store_failures_total",
	"memkit_session_store_duration_seconds",
}

var keys = [][]byte{[]byte("a test hash key of 32 bytes!!!!!"), nil}

// TestMetrics drives a real client, cache and session manager over two
// memcached servers, one of which is killed and restarted, and checks
// what the registry exposes: names, labels, counts; a miss, a not-stored
// and a conflict are not failures; server_up exists from the start, goes
// to 0 and back to 1; the objcache and session counters equal Stats.
func TestMetrics(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	metrics := memkitprom.New()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(metrics))
	watch := serverwatch.New(metrics)
	mc, err := memclient.NewFromConfig(memclient.Config{
		Servers:          []memclient.Server{{Addr: srvs[0].Addr}, {Addr: srvs[1].Addr}},
		Timeout:          2 * time.Second,
		FailureThreshold: 2,
		RetryInterval:    20 * time.Millisecond,
		MaxRetryInterval: 100 * time.Millisecond,
		Observer:         watch,
	})
	require.NoError(t, err)
	defer mc.Close()

	// Before any operation: every server is up, read from ServerStatus.
	assert.Empty(t, series(t, reg, "memkit_memcached_server_up"), "nothing watched, nothing reported yet")
	metrics.WatchClient(mc)
	assert.Equal(t, map[string]float64{
		"server=" + srvs[0].Addr: 1,
		"server=" + srvs[1].Addr: 1,
	}, series(t, reg, "memkit_memcached_server_up"))

	// One of each outcome.
	require.NoError(t, mc.Set(ctx, &memclient.Item{Key: "user@example.com", Value: []byte("12345")}))
	_, err = mc.Get(ctx, "user@example.com")
	require.NoError(t, err)
	_, err = mc.Get(ctx, "nope")
	require.ErrorIs(t, err, memclient.ErrCacheMiss)
	require.ErrorIs(t, mc.Add(ctx, &memclient.Item{Key: "user@example.com", Value: []byte("x")}), memclient.ErrNotStored)
	require.ErrorIs(t, mc.CompareAndSwap(ctx, &memclient.Item{Key: "user@example.com", Value: []byte("x"), CAS: 1 << 40}), memclient.ErrCASConflict)
	_, err = mc.Get(ctx, "bad key")
	require.ErrorIs(t, err, memclient.ErrMalformedKey)

	assert.Equal(t, 1.0, sum(t, reg, "memkit_memcached_operations_total", "operation", "set"))
	assert.Equal(t, 3.0, sum(t, reg, "memkit_memcached_operations_total", "operation", "get"))
	assert.Equal(t, 1.0, sum(t, reg, "memkit_memcached_operations_total", "operation", "get", "server", ""), "the malformed key reached no server")
	assert.Equal(t, map[string]float64{"operation=get,reason=malformed-key,server=": 1},
		series(t, reg, "memkit_memcached_operation_failures_total"), "a miss, a not-stored and a conflict are not failures")
	assert.Equal(t, 1.0, sum(t, reg, "memkit_memcached_operation_outcomes_total", "operation", "get", "outcome", "miss"))
	assert.Equal(t, 1.0, sum(t, reg, "memkit_memcached_operation_outcomes_total", "operation", "add", "outcome", "not_stored"))
	assert.Equal(t, 1.0, sum(t, reg, "memkit_memcached_operation_outcomes_total", "operation", "cas", "outcome", "conflict"))
	assert.Equal(t, 5.0, sum(t, reg, "memkit_memcached_value_sent_bytes_total", "operation", "set"))
	assert.Equal(t, 5.0, sum(t, reg, "memkit_memcached_value_received_bytes_total", "operation", "get"))
	assert.Equal(t, 3.0, histCount(t, reg, "memkit_memcached_operation_duration_seconds", "operation", "get"))

	// A GetMulti reports once per server, with its keys.
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("k%d", i))
	}
	_, err = mc.GetMulti(ctx, many)
	require.NoError(t, err)
	getMulti := series(t, reg, "memkit_memcached_operations_total")
	assert.Equal(t, 1.0, getMulti["operation=get_multi,server="+srvs[0].Addr])
	assert.Equal(t, 1.0, getMulti["operation=get_multi,server="+srvs[1].Addr])
	assert.Equal(t, 40.0, sum(t, reg, "memkit_memcached_operation_keys_total", "operation", "get_multi"))

	// A server killed: its failures are counted by reason, it goes down,
	// and comes back up once restarted.
	dead := srvs[1].Addr
	srvs[1].Kill()
	watch.Await(t, dead, false, func() { _, _ = mc.GetMulti(ctx, many) })
	assert.Equal(t, 0.0, series(t, reg, "memkit_memcached_server_up")["server="+dead])
	assert.Equal(t, 1.0, series(t, reg, "memkit_memcached_server_up")["server="+srvs[0].Addr])
	assert.Equal(t, 1.0, series(t, reg, "memkit_memcached_server_marked_down_total")["server="+dead])
	for labels, n := range series(t, reg, "memkit_memcached_operation_failures_total") {
		if strings.Contains(labels, "server="+dead) {
			assert.Regexp(t, `^operation=get_multi,reason=(network|timeout|unavailable),server=`, labels)
			assert.Positive(t, n)
		}
	}
	assert.Positive(t, sum(t, reg, "memkit_memcached_operation_failures_total", "server", dead))
	assert.Zero(t, sum(t, reg, "memkit_memcached_operation_failures_total", "server", srvs[0].Addr))
	require.NoError(t, srvs[1].Restart())
	watch.Await(t, dead, true, func() {})
	assert.Equal(t, 1.0, series(t, reg, "memkit_memcached_server_up")["server="+dead])

	// The object cache: hits, misses, loads, a loader's not-found (not a
	// load error), a load error, a batch; the counters equal Stats.
	cache, err := objcache.New(mc, objcache.Options{Prefix: "t:", Observer: metrics})
	require.NoError(t, err)
	defer cache.Close()
	load := func(context.Context) (string, error) { return "v", nil }
	for range 3 {
		v, err := objcache.GetOrLoad(ctx, cache, "a", time.Minute, load)
		require.NoError(t, err)
		require.Equal(t, "v", v)
	}
	_, err = objcache.GetOrLoad(ctx, cache, "gone", time.Minute, func(context.Context) (string, error) { return "", objcache.ErrNotFound })
	require.ErrorIs(t, err, objcache.ErrNotFound)
	boom := errors.New("database down")
	_, err = objcache.GetOrLoad(ctx, cache, "broken", time.Minute, func(context.Context) (string, error) { return "", boom })
	require.ErrorIs(t, err, boom)
	got, err := objcache.GetOrLoadMulti(ctx, cache, []string{"m1", "m2", "m3", "m4", "m5"}, time.Minute,
		func(_ context.Context, missing []string) (map[string]int, error) {
			out := make(map[string]int, len(missing))
			for i, k := range missing {
				out[k] = i
			}
			return out, nil
		})
	require.NoError(t, err)
	require.Len(t, got, 5)

	st := cache.Stats()
	assert.Equal(t, 2.0, counter(t, reg, "memkit_objcache_hits_total"))
	assert.Equal(t, float64(st.Hits), counter(t, reg, "memkit_objcache_hits_total"))
	assert.Equal(t, float64(st.Misses), counter(t, reg, "memkit_objcache_misses_total"))
	assert.Equal(t, float64(st.Loads), counter(t, reg, "memkit_objcache_loads_total"))
	assert.Equal(t, 1.0, counter(t, reg, "memkit_objcache_load_errors_total"), "the not-found is not a load error")
	assert.Equal(t, float64(st.LoadErrors), counter(t, reg, "memkit_objcache_load_errors_total"))
	assert.Equal(t, 1.0, counter(t, reg, "memkit_objcache_not_found_total"))
	assert.Equal(t, 1.0, counter(t, reg, "memkit_objcache_batch_loads_total"))
	assert.Equal(t, float64(st.BatchLoads), counter(t, reg, "memkit_objcache_batch_loads_total"))
	assert.Equal(t, uint64(1), histogram(t, reg, "memkit_objcache_batch_keys").GetSampleCount())
	assert.Equal(t, float64(st.BatchKeys), histogram(t, reg, "memkit_objcache_batch_keys").GetSampleSum())
	assert.Zero(t, counter(t, reg, "memkit_objcache_stale_served_total"))

	// Sessions: a save, a conflict (two requests saving one session), a
	// login and a revocation; the counters equal Stats.
	mgr := &session.Manager{Store: session.NewMemcacheStore(mc), Keys: keys, Observer: metrics}
	defer mgr.Close()
	cookie := request(t, mgr, nil, func(r *http.Request, s *session.Session) {
		require.NoError(t, s.Set("n", 1))
	})
	require.NotNil(t, cookie)
	r1, c1, _ := begin(mgr, cookie)
	r2, c2, _ := begin(mgr, cookie)
	for _, r := range []*http.Request{r1, r2} {
		s := session.FromContext(r.Context())
		n, ok := session.Get[int](r.Context(), s, "n")
		require.True(t, ok)
		require.Equal(t, 1, n)
		require.NoError(t, s.Set("n", 2))
	}
	require.NoError(t, c1.Save(ctx))
	require.NoError(t, c2.Save(ctx), "merged after the conflict")
	request(t, mgr, cookie, func(r *http.Request, s *session.Session) {
		require.NoError(t, s.Login(r.Context(), "ann@example.com"))
	})
	require.NoError(t, mgr.RevokeUser(ctx, "ann@example.com"))

	sst := mgr.Stats()
	assert.Equal(t, float64(sst.Loads), counter(t, reg, "memkit_session_loads_total"))
	assert.Equal(t, float64(sst.Saves), counter(t, reg, "memkit_session_saves_total"))
	assert.Positive(t, sst.Saves)
	assert.Equal(t, 1.0, counter(t, reg, "memkit_session_conflicts_total"))
	assert.Equal(t, float64(sst.Conflicts), counter(t, reg, "memkit_session_conflicts_total"))
	assert.Equal(t, 1.0, counter(t, reg, "memkit_session_revocations_total"))
	assert.Equal(t, float64(sst.Loads), histCount(t, reg, "memkit_session_store_duration_seconds", "operation", "load"))
	assert.Zero(t, sum(t, reg, "memkit_session_store_failures_total"))

	// Every name, exactly; lint-clean; no key in any label.
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				for _, k := range []string{"user@example.com", "nope", "bad key", "k1", "m1", "ann@example.com"} {
					assert.NotEqual(t, k, l.GetValue(), "a key in %s", mf.GetName())
					assert.NotContains(t, l.GetValue(), "example.com", "a key in %s", mf.GetName())
				}
			}
		}
	}
	assert.ElementsMatch(t, append(slices.Clone(fixedNames), extraNames...), names)
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
	problems, err = testutil.CollectAndLint(metrics)
	require.NoError(t, err)
	assert.Empty(t, problems)

	// The exposition, as a scraper reads it, names them too.
	count, err := testutil.GatherAndCount(reg, fixedNames...)
	require.NoError(t, err)
	assert.Positive(t, count)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP memkit_objcache_batch_loads_total Calls of a batch loader (GetOrLoadMulti, MemoizeMulti).
# TYPE memkit_objcache_batch_loads_total counter
memkit_objcache_batch_loads_total 1
# HELP memkit_session_revocations_total Revocations made: one session, a user's other sessions, or all of them.
# TYPE memkit_session_revocations_total counter
memkit_session_revocations_total 1
`), "memkit_objcache_batch_loads_total", "memkit_session_revocations_total"))

	// A scrape after the watched client closed still works; unwatched,
	// its servers keep the state their last event gave them.
	require.NoError(t, mgr.Close())
	require.NoError(t, cache.Close())
	require.NoError(t, mc.Close())
	assert.Len(t, series(t, reg, "memkit_memcached_server_up"), 2)
	metrics.UnwatchClient(mc)
	assert.Equal(t, map[string]float64{"server=" + dead: 1}, series(t, reg, "memkit_memcached_server_up"),
		"only the server that had events")
}

// TestObserveAllocs: in the steady state, reports allocate nothing.
func TestObserveAllocs(t *testing.T) {
	metrics := memkitprom.New()
	ctx := context.Background()
	ops := []memclient.Op{
		{Name: "get", Server: "127.0.0.1:11211", Duration: 300 * time.Microsecond, Keys: 1, BytesIn: 100, Outcome: memclient.OutcomeOK},
		{Name: "get", Server: "127.0.0.1:11211", Duration: 200 * time.Microsecond, Keys: 1, Outcome: memclient.OutcomeMiss},
		{Name: "set", Server: "127.0.0.1:11212", Duration: time.Millisecond, Keys: 1, BytesOut: 100},
		{Name: "get_multi", Server: "127.0.0.1:11212", Duration: 2 * time.Second, Keys: 40, Outcome: memclient.OutcomeFailed, Reason: "timeout"},
	}
	for _, op := range ops {
		metrics.ObserveOp(ctx, op) // binds the pairs
	}
	for _, op := range ops {
		assert.Zero(t, testing.AllocsPerRun(1000, func() { metrics.ObserveOp(ctx, op) }), "%s %v", op.Name, op.Outcome)
	}
	ev := objcache.Event{Kind: objcache.EventHit, Count: 3, Time: time.Now()}
	assert.Zero(t, testing.AllocsPerRun(1000, func() { metrics.ObserveCache(ctx, ev) }))
	bev := objcache.Event{Kind: objcache.EventBatchLoad, Count: 30, Time: time.Now()}
	assert.Zero(t, testing.AllocsPerRun(1000, func() { metrics.ObserveCache(ctx, bev) }))
	sev := session.Event{Kind: session.EventSave, Start: time.Now(), Duration: time.Millisecond}
	assert.Zero(t, testing.AllocsPerRun(1000, func() { metrics.ObserveSession(ctx, sev) }))
}

// BenchmarkObserveOp measures a report in the steady state.
func BenchmarkObserveOp(b *testing.B) {
	metrics := memkitprom.New()
	ctx := context.Background()
	op := memclient.Op{Name: "get", Server: "127.0.0.1:11211", Duration: 300 * time.Microsecond, Keys: 1, BytesIn: 100}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			metrics.ObserveOp(ctx, op)
		}
	})
}

// TestConcurrent: reports from many goroutines, on pairs first seen
// concurrently, while scrapes run, lose no count (run with -race).
func TestConcurrent(t *testing.T) {
	metrics := memkitprom.New()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(metrics))
	const workers, perWorker = 8, 600 // perWorker a multiple of 3
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range perWorker {
				metrics.ObserveOp(context.Background(), memclient.Op{
					Name:    []string{"get", "set", "delete"}[i%3],
					Server:  fmt.Sprintf("127.0.0.1:%d", 11211+(i+w)%5),
					Outcome: memclient.OutcomeFailed, Reason: []string{"timeout", "network", "brand-new"}[i%3],
				})
				metrics.ObserveServer(context.Background(), memclient.ServerEvent{Server: "127.0.0.1:11211", Up: i%2 == 0})
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		for range 20 {
			_, err := reg.Gather()
			assert.NoError(t, err)
		}
	}()
	close(start)
	wg.Wait()
	assert.Equal(t, float64(workers*perWorker), sum(t, reg, "memkit_memcached_operations_total"))
	assert.Equal(t, float64(workers*perWorker), sum(t, reg, "memkit_memcached_operation_failures_total"))
	assert.Equal(t, float64(workers*perWorker)/3, sum(t, reg, "memkit_memcached_operation_failures_total", "reason", "brand-new"),
		"a reason this version does not know is counted under its own name")
}

// TestNewFromConfig: bucket layouts are checked, not panicked on.
func TestNewFromConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  memkitprom.Config
		ok   bool
	}{
		{"defaults", memkitprom.Config{}, true},
		{"custom", memkitprom.Config{DurationBuckets: []float64{.001, .01, .1}, BatchKeyBuckets: []float64{10, 100}}, true},
		{"empty", memkitprom.Config{DurationBuckets: []float64{}}, false},
		{"unsorted", memkitprom.Config{BatchKeyBuckets: []float64{10, 1}}, false},
		{"repeated", memkitprom.Config{DurationBuckets: []float64{.1, .1}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := memkitprom.NewFromConfig(tc.cfg)
			if !tc.ok {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			reg := prometheus.NewPedanticRegistry()
			require.NoError(t, reg.Register(c))
			c.ObserveOp(context.Background(), memclient.Op{Name: "get", Server: "s", Duration: 5 * time.Millisecond})
			assert.Equal(t, 1.0, histCount(t, reg, "memkit_memcached_operation_duration_seconds"))
		})
	}
}

// request runs one request through mgr with cookie (nil: a new session),
// calling fn with its session, and returns the cookie the response set
// (or the one it had).
func request(t *testing.T, mgr *session.Manager, cookie *http.Cookie, fn func(*http.Request, *session.Session)) *http.Cookie {
	t.Helper()
	r, cm, w := begin(mgr, cookie)
	fn(r, session.FromContext(r.Context()))
	require.NoError(t, cm.Save(r.Context()))
	if cs := w.Result().Cookies(); len(cs) > 0 {
		return cs[len(cs)-1]
	}
	return cookie
}

// begin starts a request of mgr carrying cookie.
func begin(mgr *session.Manager, cookie *http.Cookie) (*http.Request, *session.Commit, *httptest.ResponseRecorder) {
	req := httptest.NewRequest("GET", "https://shop.example/", nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	r, cm := mgr.Begin(w, req)
	return r, cm, w
}

// series returns the values of name's series (counters and gauges) by
// their labels, "k=v,k=v" in label order.
func series(t *testing.T, reg prometheus.Gatherer, name string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range family(t, reg, name) {
		out[labelString(m)] = value(m)
	}
	return out
}

// sum adds up the values of name's series (counters, gauges; histogram
// sample counts) whose labels include the given name/value pairs.
func sum(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	total := 0.0
	for _, m := range family(t, reg, name) {
		if matches(m, labels) {
			total += value(m)
		}
	}
	return total
}

// histCount is sum for a histogram: its sample count.
func histCount(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	return sum(t, reg, name, labels...)
}

// counter returns the value of an unlabelled metric.
func counter(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	ms := family(t, reg, name)
	require.Len(t, ms, 1, name)
	return value(ms[0])
}

// histogram returns an unlabelled histogram.
func histogram(t *testing.T, reg prometheus.Gatherer, name string) *dto.Histogram {
	t.Helper()
	ms := family(t, reg, name)
	require.Len(t, ms, 1, name)
	require.NotNil(t, ms[0].GetHistogram(), name)
	return ms[0].GetHistogram()
}

func family(t *testing.T, reg prometheus.Gatherer, name string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetHistogram() != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return 0
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

func matches(m *dto.Metric, labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
				found = true
			}
		}
		if !found && !(labels[i+1] == "" && !hasLabel(m, labels[i])) {
			return false
		}
	}
	return true
}

func hasLabel(m *dto.Metric, name string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return true
		}
	}
	return false
}
