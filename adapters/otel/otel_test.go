package memkitotel_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/otlptranslator"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	memkitotel "github.com/memkit/memkit/adapters/otel"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/internal/serverwatch"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

var keys = [][]byte{[]byte("a test hash key of 32 bytes!!!!!"), nil}

// telemetry is an SDK set up as an application would, with an in-memory
// span recorder and a manual metric reader.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	tracer trace.Tracer // the test's own, for the request spans
	reader *sdkmetric.ManualReader
	obs    *memkitotel.Observer
}

func newTelemetry(t *testing.T, cfg memkitotel.Config) *telemetry {
	t.Helper()
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	t.Cleanup(func() {
		assert.NoError(t, tp.Shutdown(context.Background()))
		assert.NoError(t, mp.Shutdown(context.Background()))
	})
	tel.tracer = tp.Tracer("test")
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = tp
	}
	cfg.MeterProvider = mp
	obs, err := memkitotel.NewFromConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, obs.Close()) })
	tel.obs = obs
	return tel
}

// TestTracesAndMetrics drives a real client, cache and session manager
// over two memcached servers, one of which is killed and restarted, all
// within a request's span, and checks the spans (one per operation, the
// request's children, named and attributed by the database conventions,
// timed by the operation, an error only for a failure), the span events
// of the cache and the sessions, and the metrics (names, attributes,
// counts; server.up 1, then 0, then 1; the objcache and session counters
// equal to Stats).
func TestTracesAndMetrics(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	tel := newTelemetry(t, memkitotel.Config{})
	watch := serverwatch.New(tel.obs)
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
	tel.obs.WatchClient(mc)
	assert.Equal(t, map[string]int64{srvs[0].Addr: 1, srvs[1].Addr: 1}, tel.serverUp(t), "up from the start")

	base, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx, request := tel.tracer.Start(base, "GET /product")

	// One of each outcome, timed from outside.
	before := time.Now()
	require.NoError(t, mc.Set(ctx, &memclient.Item{Key: "user@example.com", Value: []byte("12345")}))
	_, err = mc.Get(ctx, "user@example.com")
	require.NoError(t, err)
	_, err = mc.Get(ctx, "nope")
	require.ErrorIs(t, err, memclient.ErrCacheMiss)
	require.ErrorIs(t, mc.Add(ctx, &memclient.Item{Key: "user@example.com", Value: []byte("x")}), memclient.ErrNotStored)
	require.ErrorIs(t, mc.CompareAndSwap(ctx, &memclient.Item{Key: "user@example.com", Value: []byte("x"), CAS: 1 << 40}), memclient.ErrCASConflict)
	_, err = mc.Get(ctx, "bad key")
	require.ErrorIs(t, err, memclient.ErrMalformedKey)
	after := time.Now()

	spans := tel.spans.Ended()
	require.Len(t, spans, 6)
	want := []struct{ op, outcome, errType string }{
		{"set", "ok", ""}, {"get", "ok", ""}, {"get", "miss", ""},
		{"add", "not_stored", ""}, {"cas", "conflict", ""}, {"get", "failed", "malformed-key"},
	}
	for i, w := range want {
		s := spans[i]
		a := attrs(s)
		assert.Equal(t, trace.SpanKindClient, s.SpanKind(), "span %d", i)
		assert.Equal(t, request.SpanContext().SpanID(), s.Parent().SpanID(), "span %d: a child of the request", i)
		assert.Equal(t, request.SpanContext().TraceID(), s.SpanContext().TraceID())
		assert.Equal(t, "memcached", a["db.system.name"].AsString(), "span %d", i)
		assert.Equal(t, w.op, a["db.operation.name"].AsString(), "span %d", i)
		assert.Equal(t, w.outcome, a["memkit.memcached.outcome"].AsString(), "span %d", i)
		assert.False(t, s.StartTime().Before(before), "span %d starts when the operation did", i)
		assert.False(t, s.EndTime().After(after), "span %d", i)
		assert.False(t, s.EndTime().Before(s.StartTime()), "span %d", i)
		if w.errType == "" {
			assert.Equal(t, codes.Unset, s.Status().Code, "span %d: a %s is not an error", i, w.outcome)
			assert.NotContains(t, a, "error.type")
			assert.Equal(t, "127.0.0.1", a["server.address"].AsString(), "span %d", i)
			assert.Positive(t, a["server.port"].AsInt64(), "span %d", i)
			assert.Equal(t, fmt.Sprintf("%s 127.0.0.1:%d", w.op, a["server.port"].AsInt64()), s.Name())
		} else {
			assert.Equal(t, codes.Error, s.Status().Code)
			assert.Equal(t, w.errType, s.Status().Description)
			assert.Equal(t, w.errType, a["error.type"].AsString())
			assert.NotContains(t, a, "server.address", "refused before a server was chosen")
			assert.Equal(t, w.op, s.Name())
		}
	}

	// A GetMulti: one span per server, with its share of the keys.
	var many []string
	for i := range 40 {
		many = append(many, fmt.Sprintf("k%d", i))
	}
	tel.spans.Reset()
	_, err = mc.GetMulti(ctx, many)
	require.NoError(t, err)
	spans = tel.spans.Ended()
	require.Len(t, spans, 2)
	batch := int64(0)
	servers := map[int64]bool{}
	for _, s := range spans {
		a := attrs(s)
		assert.Equal(t, "get_multi", a["db.operation.name"].AsString())
		assert.Equal(t, request.SpanContext().SpanID(), s.Parent().SpanID())
		batch += a["db.operation.batch.size"].AsInt64()
		servers[a["server.port"].AsInt64()] = true
	}
	assert.Equal(t, int64(40), batch)
	assert.Len(t, servers, 2)

	// Metrics so far.
	assert.Equal(t, int64(3), tel.sum(t, "memkit.memcached.operations", "operation", "get"))
	assert.Equal(t, int64(1), tel.sum(t, "memkit.memcached.operations", "operation", "get", "server", ""))
	assert.Equal(t, map[string]int64{"operation=get,reason=malformed-key,server=": 1}, tel.series(t, "memkit.memcached.operation.failures"),
		"a miss, a not-stored and a conflict are not failures")
	assert.Equal(t, int64(1), tel.sum(t, "memkit.memcached.operation.outcomes", "operation", "get", "outcome", "miss"))
	assert.Equal(t, int64(1), tel.sum(t, "memkit.memcached.operation.outcomes", "operation", "cas", "outcome", "conflict"))
	assert.Equal(t, int64(3), tel.sum(t, "memkit.memcached.operation.duration", "operation", "get"), "histogram count")
	assert.Equal(t, int64(5), tel.sum(t, "memkit.memcached.value.received", "operation", "get"))
	assert.Equal(t, int64(40), tel.sum(t, "memkit.memcached.operation.keys", "operation", "get_multi"))

	// A server killed: failed spans and failures by reason; the gauge
	// goes to 0 and back to 1.
	dead := srvs[1].Addr
	srvs[1].Kill()
	tel.spans.Reset()
	watch.Await(t, dead, false, func() { _, _ = mc.GetMulti(ctx, many) })
	assert.Equal(t, int64(0), tel.serverUp(t)[dead])
	assert.Equal(t, int64(1), tel.serverUp(t)[srvs[0].Addr])
	assert.Equal(t, int64(1), tel.sum(t, "memkit.memcached.server.marked_down", "server", dead))
	failed := 0
	for _, s := range tel.spans.Ended() {
		if s.Status().Code == codes.Error {
			failed++
			assert.Contains(t, []string{"network", "timeout", "unavailable"}, attrs(s)["error.type"].AsString())
			assert.Contains(t, s.Name(), dead)
		}
	}
	assert.Positive(t, failed)
	for labels := range tel.series(t, "memkit.memcached.operation.failures") {
		if strings.Contains(labels, dead) {
			assert.Regexp(t, `^operation=get_multi,reason=(network|timeout|unavailable),server=`, labels)
		}
	}
	require.NoError(t, srvs[1].Restart())
	watch.Await(t, dead, true, func() {})
	assert.Equal(t, int64(1), tel.serverUp(t)[dead])

	// The object cache, within the request: span events on the request
	// span; counters equal Stats.
	cache, err := objcache.New(mc, objcache.Options{Prefix: "t:", Observer: tel.obs})
	require.NoError(t, err)
	defer cache.Close()
	for range 3 {
		v, err := objcache.GetOrLoad(ctx, cache, "a", time.Minute, func(context.Context) (string, error) { return "v", nil })
		require.NoError(t, err)
		require.Equal(t, "v", v)
	}
	_, err = objcache.GetOrLoad(ctx, cache, "gone", time.Minute, func(context.Context) (string, error) { return "", objcache.ErrNotFound })
	require.ErrorIs(t, err, objcache.ErrNotFound)
	boom := errors.New("database down")
	_, err = objcache.GetOrLoad(ctx, cache, "broken", time.Minute, func(context.Context) (string, error) { return "", boom })
	require.ErrorIs(t, err, boom)
	_, err = objcache.GetOrLoadMulti(ctx, cache, []string{"m1", "m2", "m3", "m4", "m5"}, time.Minute,
		func(_ context.Context, missing []string) (map[string]int, error) {
			out := make(map[string]int, len(missing))
			for i, k := range missing {
				out[k] = i
			}
			return out, nil
		})
	require.NoError(t, err)
	st := cache.Stats()
	assert.Equal(t, int64(2), tel.sum(t, "memkit.objcache.hits"))
	assert.Equal(t, int64(st.Hits), tel.sum(t, "memkit.objcache.hits"))
	assert.Equal(t, int64(st.Misses), tel.sum(t, "memkit.objcache.misses"))
	assert.Equal(t, int64(st.Loads), tel.sum(t, "memkit.objcache.loads"))
	assert.Equal(t, int64(1), tel.sum(t, "memkit.objcache.load_errors"), "a not-found is not a load error")
	assert.Equal(t, int64(1), tel.sum(t, "memkit.objcache.not_found"))
	assert.Equal(t, int64(1), tel.sum(t, "memkit.objcache.batch_loads"))
	assert.Equal(t, int64(1), tel.sum(t, "memkit.objcache.batch_keys"), "histogram count")
	assert.Equal(t, int64(st.BatchKeys), tel.histSum(t, "memkit.objcache.batch_keys"))
	assert.Zero(t, tel.sum(t, "memkit.objcache.stale_served"))

	// Sessions within the request: a save, a conflict, a login and a
	// revocation.
	mgr := &session.Manager{Store: session.NewMemcacheStore(mc), Keys: keys, Observer: tel.obs}
	defer mgr.Close()
	cookie := doRequest(t, ctx, mgr, nil, func(r *http.Request, s *session.Session) { require.NoError(t, s.Set("n", 1)) })
	require.NotNil(t, cookie)
	r1, c1, _ := begin(ctx, mgr, cookie)
	r2, c2, _ := begin(ctx, mgr, cookie)
	for _, r := range []*http.Request{r1, r2} {
		s := session.FromContext(r.Context())
		n, ok := session.Get[int](r.Context(), s, "n")
		require.True(t, ok)
		require.Equal(t, 1, n)
		require.NoError(t, s.Set("n", 2))
	}
	require.NoError(t, c1.Save(ctx))
	require.NoError(t, c2.Save(ctx), "merged after the conflict")
	doRequest(t, ctx, mgr, cookie, func(r *http.Request, s *session.Session) { require.NoError(t, s.Login(r.Context(), "ann@example.com")) })
	require.NoError(t, mgr.RevokeUser(ctx, "ann@example.com"))
	sst := mgr.Stats()
	assert.Equal(t, sst.Loads, tel.sum(t, "memkit.session.loads"))
	assert.Equal(t, sst.Saves, tel.sum(t, "memkit.session.saves"))
	assert.Equal(t, int64(1), tel.sum(t, "memkit.session.conflicts"))
	assert.Equal(t, int64(1), tel.sum(t, "memkit.session.revocations"))
	assert.Equal(t, sst.Loads, tel.sum(t, "memkit.session.store.duration", "operation", "load"), "histogram count")
	assert.Zero(t, tel.sum(t, "memkit.session.store.failures"))

	request.End()
	var req sdktrace.ReadOnlySpan
	for _, s := range tel.spans.Ended() {
		if s.Name() == "GET /product" {
			req = s
		}
		for _, kv := range s.Attributes() {
			for _, k := range []string{"user@example.com", "nope", "bad key", "k1", "m1", "gone", "ann@example.com"} {
				assert.NotContains(t, kv.Value.Emit(), k, "a key in span %s, %s", s.Name(), kv.Key)
			}
		}
	}
	require.NotNil(t, req)
	events := map[string]int64{}
	for _, ev := range req.Events() {
		n := int64(1)
		for _, kv := range ev.Attributes {
			if kv.Key == "memkit.objcache.count" {
				n = kv.Value.AsInt64()
			}
		}
		events[ev.Name] += n
	}
	assert.Equal(t, int64(st.Hits), events["memkit.objcache.hit"])
	assert.Equal(t, int64(st.Misses), events["memkit.objcache.miss"])
	assert.Equal(t, int64(st.Loads), events["memkit.objcache.load"])
	assert.Equal(t, int64(1), events["memkit.objcache.load_error"])
	assert.Equal(t, int64(1), events["memkit.objcache.not_found"])
	assert.Equal(t, int64(5), events["memkit.objcache.batch_load"], "its count is the batch's keys")
	assert.Equal(t, sst.Saves, events["memkit.session.save"])
	assert.Equal(t, sst.Loads, events["memkit.session.load"])
	assert.Equal(t, int64(1), events["memkit.session.conflict"])
	assert.Equal(t, int64(1), events["memkit.session.revocation"])

	// A collection after the watched client closed still works;
	// unwatched, its servers keep the state their last event gave them.
	require.NoError(t, mgr.Close())
	require.NoError(t, cache.Close())
	require.NoError(t, mc.Close())
	assert.Len(t, tel.serverUp(t), 2)
	tel.obs.UnwatchClient(mc)
	assert.Equal(t, map[string]int64{dead: 1}, tel.serverUp(t), "only the server that had events")
}

// TestPrometheusNames: exported through OpenTelemetry's Prometheus
// exporter with underscore names, the instruments are the Prometheus
// adapter's metrics, names and labels alike, and lint-clean.
func TestPrometheusNames(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes),
		otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	require.NoError(t, err)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())
	obs, err := memkitotel.NewFromConfig(memkitotel.Config{MeterProvider: mp, TracerProvider: tracenoop.NewTracerProvider()})
	require.NoError(t, err)
	defer obs.Close()

	ctx := context.Background()
	obs.ObserveOp(ctx, memclient.Op{Name: "get", Server: "127.0.0.1:11211", Start: time.Now(), Duration: time.Millisecond, Keys: 1, BytesIn: 10, BytesOut: 0})
	obs.ObserveOp(ctx, memclient.Op{Name: "set", Server: "127.0.0.1:11211", Start: time.Now(), Duration: time.Millisecond, Keys: 1, BytesOut: 10})
	obs.ObserveOp(ctx, memclient.Op{Name: "get", Server: "127.0.0.1:11212", Start: time.Now(), Duration: time.Second, Outcome: memclient.OutcomeFailed, Reason: "timeout"})
	obs.ObserveServer(ctx, memclient.ServerEvent{Server: "127.0.0.1:11212", Up: false, Reason: errors.New("timeout")})
	obs.ObserveCache(ctx, objcache.Event{Kind: objcache.EventBatchLoad, Count: 7, Time: time.Now()})
	obs.ObserveSession(ctx, session.Event{Kind: session.EventSave, Start: time.Now(), Duration: time.Millisecond})

	mfs, err := reg.Gather()
	require.NoError(t, err)
	labels := map[string][]string{}
	for _, mf := range mfs {
		var names []string
		for _, l := range mf.GetMetric()[0].GetLabel() {
			names = append(names, l.GetName())
		}
		sort.Strings(names)
		labels[mf.GetName()] = names
	}
	var names []string
	for n := range labels {
		names = append(names, n)
	}
	assert.ElementsMatch(t, append(slices.Clone(fixedNames), extraNames...), names)
	assert.Equal(t, []string{"operation", "server"}, labels["memkit_memcached_operations_total"])
	assert.Equal(t, []string{"operation", "reason", "server"}, labels["memkit_memcached_operation_failures_total"])
	assert.Equal(t, []string{"operation", "server"}, labels["memkit_memcached_operation_duration_seconds"])
	assert.Equal(t, []string{"server"}, labels["memkit_memcached_server_up"])
	assert.Equal(t, []string{"operation"}, labels["memkit_session_store_duration_seconds"])
	assert.Empty(t, labels["memkit_objcache_hits_total"])
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// The Prometheus adapter's metric names (adapters/prometheus's tests
// hold the same lists).
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

// TestRequireParent: with RequireParent, an operation outside any trace is
// counted but makes no span; without it, it makes a root span.
func TestRequireParent(t *testing.T) {
	op := memclient.Op{Name: "get", Server: "127.0.0.1:11211", Start: time.Now(), Duration: time.Millisecond}
	for _, require := range []bool{false, true} {
		t.Run(fmt.Sprint("RequireParent=", require), func(t *testing.T) {
			tel := newTelemetry(t, memkitotel.Config{RequireParent: require})
			tel.obs.ObserveOp(context.Background(), op)
			ctx, parent := tel.tracer.Start(context.Background(), "request")
			tel.obs.ObserveOp(ctx, op)
			parent.End()
			assert.Equal(t, int64(2), tel.sum(t, "memkit.memcached.operations"))
			var roots, children int
			for _, s := range tel.spans.Ended() {
				switch {
				case s.Name() == "request":
				case s.Parent().IsValid():
					children++
				default:
					roots++
				}
			}
			assert.Equal(t, 1, children)
			if require {
				assert.Zero(t, roots)
			} else {
				assert.Equal(t, 1, roots)
			}
		})
	}
}

// TestSpanTiming: the span covers exactly [Op.Start, Op.Start+Duration],
// and a gutter server is marked.
func TestSpanTiming(t *testing.T) {
	tel := newTelemetry(t, memkitotel.Config{})
	start := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	tel.obs.ObserveOp(context.Background(), memclient.Op{Name: "gat", Server: "[::1]:11311", Gutter: true, Start: start, Duration: 1500 * time.Microsecond, Keys: 1})
	spans := tel.spans.Ended()
	require.Len(t, spans, 1)
	assert.Equal(t, start, spans[0].StartTime())
	assert.Equal(t, start.Add(1500*time.Microsecond), spans[0].EndTime())
	a := attrs(spans[0])
	assert.Equal(t, "::1", a["server.address"].AsString())
	assert.Equal(t, int64(11311), a["server.port"].AsInt64())
	assert.True(t, a["memkit.memcached.gutter"].AsBool())
	assert.NotContains(t, a, "db.operation.batch.size", "one key is no batch")
	assert.Equal(t, "gat [::1]:11311", spans[0].Name())
}

// TestNewFromConfig: bucket layouts are checked.
func TestNewFromConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  memkitotel.Config
		ok   bool
	}{
		{"defaults", memkitotel.Config{}, true},
		{"custom", memkitotel.Config{DurationBuckets: []float64{.001, .01}, BatchKeyBuckets: []float64{10, 100}}, true},
		{"empty", memkitotel.Config{DurationBuckets: []float64{}}, false},
		{"unsorted", memkitotel.Config{BatchKeyBuckets: []float64{10, 1}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			tc.cfg.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			o, err := memkitotel.NewFromConfig(tc.cfg)
			if !tc.ok {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.NoError(t, o.Close())
		})
	}
}

// TestObserveAllocs measures what a report costs: nothing for the metrics
// in the steady state; spans cost what the tracer makes them cost.
func TestObserveAllocs(t *testing.T) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	obs, err := memkitotel.NewFromConfig(memkitotel.Config{MeterProvider: mp, TracerProvider: tracenoop.NewTracerProvider(), RequireParent: true})
	require.NoError(t, err)
	defer obs.Close()
	ctx := context.Background()
	ops := []memclient.Op{
		{Name: "get", Server: "127.0.0.1:11211", Start: time.Now(), Duration: 300 * time.Microsecond, Keys: 1, BytesIn: 100},
		{Name: "get", Server: "127.0.0.1:11211", Start: time.Now(), Duration: 200 * time.Microsecond, Keys: 1, Outcome: memclient.OutcomeMiss},
		{Name: "get_multi", Server: "127.0.0.1:11212", Start: time.Now(), Duration: time.Second, Keys: 40, Outcome: memclient.OutcomeFailed, Reason: "timeout"},
	}
	for _, op := range ops {
		obs.ObserveOp(ctx, op)
		assert.Zero(t, testing.AllocsPerRun(1000, func() { obs.ObserveOp(ctx, op) }), "metrics of %s %v", op.Name, op.Outcome)
	}
	ev := objcache.Event{Kind: objcache.EventHit, Count: 3, Time: time.Now()}
	assert.Zero(t, testing.AllocsPerRun(1000, func() { obs.ObserveCache(ctx, ev) }))
	sev := session.Event{Kind: session.EventSave, Start: time.Now(), Duration: time.Millisecond}
	assert.Zero(t, testing.AllocsPerRun(1000, func() { obs.ObserveSession(ctx, sev) }))

	// With the noop tracer and a span per operation: the span's options.
	traced, err := memkitotel.NewFromConfig(memkitotel.Config{MeterProvider: mp, TracerProvider: tracenoop.NewTracerProvider()})
	require.NoError(t, err)
	defer traced.Close()
	traced.ObserveOp(ctx, ops[0])
	t.Logf("allocations per traced report, noop tracer: %v", testing.AllocsPerRun(1000, func() { traced.ObserveOp(ctx, ops[0]) }))
}

// BenchmarkObserveOp measures a report with the SDK's meter and tracer
// (recording every span) and with the meter alone.
func BenchmarkObserveOp(b *testing.B) {
	op := memclient.Op{Name: "get", Server: "127.0.0.1:11211", Start: time.Now(), Duration: 300 * time.Microsecond, Keys: 1, BytesIn: 100}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer mp.Shutdown(context.Background())
	for _, tc := range []struct {
		name string
		tp   trace.TracerProvider
	}{
		{"metrics", tracenoop.NewTracerProvider()},
		{"metrics+spans", sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(nopProcessor{}))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			obs, err := memkitotel.NewFromConfig(memkitotel.Config{MeterProvider: mp, TracerProvider: tc.tp})
			require.NoError(b, err)
			defer obs.Close()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					obs.ObserveOp(context.Background(), op)
				}
			})
		})
	}
}

// nopProcessor drops every span.
type nopProcessor struct{}

func (nopProcessor) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (nopProcessor) OnEnd(sdktrace.ReadOnlySpan)                     {}
func (nopProcessor) Shutdown(context.Context) error                  { return nil }
func (nopProcessor) ForceFlush(context.Context) error                { return nil }

// doRequest runs one request through mgr with cookie (nil: a new
// session) in ctx, calling fn with its session, and returns the cookie
// the response set (or the one it had).
func doRequest(t *testing.T, ctx context.Context, mgr *session.Manager, cookie *http.Cookie, fn func(*http.Request, *session.Session)) *http.Cookie {
	t.Helper()
	r, cm, w := begin(ctx, mgr, cookie)
	fn(r, session.FromContext(r.Context()))
	require.NoError(t, cm.Save(r.Context()))
	if cs := w.Result().Cookies(); len(cs) > 0 {
		return cs[len(cs)-1]
	}
	return cookie
}

// begin starts a request of mgr carrying cookie, in ctx.
func begin(ctx context.Context, mgr *session.Manager, cookie *http.Cookie) (*http.Request, *session.Commit, *httptest.ResponseRecorder) {
	req := httptest.NewRequestWithContext(ctx, "GET", "https://shop.example/", nil)
	if cookie != nil {
		req.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	r, cm := mgr.Begin(w, req)
	return r, cm, w
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// collect reads every metric.
func (tel *telemetry) collect(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, tel.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != memkitotel.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// points returns name's data points as (attributes, value): counters'
// sums, gauges' values, histograms' counts (or sums, with sums set).
func (tel *telemetry) points(t *testing.T, name string, sums bool) map[string]int64 {
	t.Helper()
	m, ok := tel.collect(t)[name]
	if !ok {
		return nil
	}
	out := map[string]int64{}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out[setString(p.Attributes)] += p.Value
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			out[setString(p.Attributes)] = p.Value
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			if sums {
				out[setString(p.Attributes)] += int64(p.Sum)
			} else {
				out[setString(p.Attributes)] += int64(p.Count)
			}
		}
	case metricdata.Histogram[int64]:
		for _, p := range d.DataPoints {
			if sums {
				out[setString(p.Attributes)] += p.Sum
			} else {
				out[setString(p.Attributes)] += int64(p.Count)
			}
		}
	default:
		t.Fatalf("%s: unexpected data %T", name, m.Data)
	}
	return out
}

// series returns name's points by their attributes, "k=v,k=v" sorted.
func (tel *telemetry) series(t *testing.T, name string) map[string]int64 {
	t.Helper()
	return tel.points(t, name, false)
}

// sum adds up name's points whose attributes include the given
// key/value pairs.
func (tel *telemetry) sum(t *testing.T, name string, kv ...string) int64 {
	t.Helper()
	total := int64(0)
	for set, v := range tel.points(t, name, false) {
		if matches(set, kv) {
			total += v
		}
	}
	return total
}

// histSum is the sum of an unlabelled histogram's samples.
func (tel *telemetry) histSum(t *testing.T, name string) int64 {
	t.Helper()
	return tel.points(t, name, true)[""]
}

// serverUp returns memkit.memcached.server.up by server.
func (tel *telemetry) serverUp(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for set, v := range tel.points(t, "memkit.memcached.server.up", false) {
		out[strings.TrimPrefix(set, "server=")] = v
	}
	return out
}

func setString(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return strings.Join(parts, ",")
}

func matches(set string, kv []string) bool {
	parts := strings.Split(set, ",")
	for i := 0; i+1 < len(kv); i += 2 {
		if !slices.Contains(parts, kv[i]+"="+kv[i+1]) {
			return false
		}
	}
	return true
}
