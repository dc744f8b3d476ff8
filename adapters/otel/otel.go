// Package memkitotel exports what memkit does through OpenTelemetry: a
// span for every memcached operation, following the database client
// semantic conventions, and the same metrics as the Prometheus adapter
// (github.com/memkit/memkit/adapters/prometheus), through the
// OpenTelemetry metric API. It uses the API only: the application picks
// the SDK and the exporters.
//
// One Observer is the Observer of a memclient.Client, an objcache.Cache
// and a session.Manager:
//
//	tel, err := memkitotel.New() // the global TracerProvider and MeterProvider
//	mc, err := memclient.NewFromConfig(memclient.Config{Servers: servers, Observer: tel})
//	tel.WatchClient(mc) // memkit.memcached.server.up from the start
//	cache, err := objcache.New(mc, objcache.Options{Observer: tel})
//	mgr := &session.Manager{Store: session.NewMemcacheStore(mc), Keys: keys, Observer: tel}
//
// # Spans
//
// Each memclient.Op is one span of kind client, a child of the span in
// the operation's context, started at Op.Start and ended Op.Duration
// later. A call that uses several servers (GetMulti, SetMulti) makes one
// span per server, siblings under the caller's span. Its name is
// "{operation} {server}" ("get 10.0.0.1:11211"; "get" alone for a call
// refused before a server was chosen), as the conventions ask of an
// operation that targets no database or collection, and its attributes:
//
//	db.system.name           "memcached"
//	db.operation.name        get, get_multi, set, ... (memclient.Op.Name)
//	server.address           the server's host
//	server.port              the server's port
//	db.operation.batch.size  the keys of a multi-key operation, when 2 or more
//	error.type               the failure reason (timeout, network, server-error,
//	                         malformed-key, too-large, protocol, unavailable, other),
//	                         with the span status Error and the reason as its description
//	memkit.memcached.outcome ok, miss, not_stored, conflict or failed
//	memkit.memcached.gutter  true for a gutter server (absent otherwise)
//
// A miss, a not-stored and a CAS conflict are outcomes, not errors: their
// span status stays unset. No key, value or session ID is ever an
// attribute.
//
// objcache and session events become span events on the span of their
// context, when it is recording ("memkit.objcache.hit" with
// memkit.objcache.count, "memkit.session.save" with memkit.session.failed
// when it failed...), so that a request's trace shows its cache hits and
// misses, loads and session saves beside the memcached spans they made.
// They are counted in the metrics either way. They get no spans of their
// own: they are reported once done, when the memcached operations they
// made are already spans of the caller.
//
// # Metrics
//
// Instrument names are the Prometheus adapter's metric names with dots
// between their parts and without the suffixes an OpenTelemetry
// Prometheus exporter adds back (_total for a counter, _seconds for the
// unit s, _bytes for By), so that exported to Prometheus they are the
// very same names, labels included (TestPrometheusNames checks it). The
// middle column is the kind of instrument, or its unit: s for the
// duration histograms, By for the byte counters.
//
//	memkit.memcached.operations{operation,server}                  counter  memkit_memcached_operations_total
//	memkit.memcached.operation.failures{operation,server,reason}   counter  memkit_memcached_operation_failures_total
//	memkit.memcached.operation.duration{operation,server}          s        memkit_memcached_operation_duration_seconds
//	memkit.memcached.operation.outcomes{operation,server,outcome}  counter  memkit_memcached_operation_outcomes_total
//	memkit.memcached.operation.keys{operation,server}              counter  memkit_memcached_operation_keys_total
//	memkit.memcached.value.received{operation,server}              By       memkit_memcached_value_received_bytes_total
//	memkit.memcached.value.sent{operation,server}                  By       memkit_memcached_value_sent_bytes_total
//	memkit.memcached.server.up{server}                             gauge    memkit_memcached_server_up
//	memkit.memcached.server.marked_down{server}                    counter  memkit_memcached_server_marked_down_total
//	memkit.objcache.hits, .misses, .loads, .load_errors, .stale_served,
//	  .failsafe_served, .batch_loads, .background_loads, .not_found,
//	  .lease_waits, .decode_errors, .coalesced, .refreshes,
//	  .negative_hits, .errors                                      counter  memkit_objcache_<name>_total
//	memkit.objcache.batch_keys                                     {key}    memkit_objcache_batch_keys (histogram)
//	memkit.session.loads, .saves, .conflicts, .revocations,
//	  .revoked                                                     counter  memkit_session_<name>_total
//	memkit.session.store.failures{operation}                       counter  memkit_session_store_failures_total
//	memkit.session.store.duration{operation}                       s        memkit_session_store_duration_seconds
//
// The attributes are operation, server, reason and outcome, as the
// Prometheus labels are, so that one dashboard serves both adapters.
// Their values and meaning are the Prometheus adapter's: see its package
// documentation. To get those names from OpenTelemetry's Prometheus
// exporter (go.opentelemetry.io/otel/exporters/prometheus), ask it for
// underscores and suffixes, since its default for a UTF-8 registry keeps
// the dots:
//
//	otelprom.New(otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithSuffixes))
//
// (it also adds otel_scope_* labels to every series unless given
// otelprom.WithoutScopeInfo()). A measurement of an operation is recorded in the
// context of its span, so that an SDK that keeps exemplars links the
// duration histogram to the trace.
package memkitotel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/memkit/memkit/internal/serverstate"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

// ScopeName is the instrumentation scope of the Observer's tracer and
// meter.
const ScopeName = "github.com/memkit/memkit/adapters/otel"

// Default bucket layouts; Config fields left nil use them. They are
// shared: do not modify them.
var (
	// DefaultDurationBuckets spans 50µs to 1s, for memcached round trips
	// (tens of microseconds on a LAN) up to timeouts.
	DefaultDurationBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
	// DefaultBatchKeyBuckets are powers of two from 1 to 1024 keys.
	DefaultBatchKeyBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

// Config holds the Observer's settings; the zero value is the default.
type Config struct {
	// TracerProvider makes the spans. nil means otel.GetTracerProvider(),
	// the global one (which forwards to a provider set later with
	// otel.SetTracerProvider). A noop provider
	// (go.opentelemetry.io/otel/trace/noop) turns spans off.
	TracerProvider trace.TracerProvider
	// MeterProvider makes the metrics. nil means otel.GetMeterProvider(),
	// the global one. A noop provider turns metrics off.
	MeterProvider metric.MeterProvider
	// RequireParent, when set, makes a span only for an operation whose
	// context carries a span (a request's, typically): background work
	// and calls made outside any trace are counted but not traced. Off
	// by default: every operation is a span, a root one when it has no
	// parent, and the sampler decides.
	RequireParent bool
	// DurationBuckets are the bucket boundaries, in seconds, advised for
	// memkit.memcached.operation.duration and memkit.session.store.duration
	// (a View may override them). nil means DefaultDurationBuckets.
	DurationBuckets []float64
	// BatchKeyBuckets are the bucket boundaries advised for
	// memkit.objcache.batch_keys. nil means DefaultBatchKeyBuckets.
	BatchKeyBuckets []float64
}

// Observer turns what memkit reports into OpenTelemetry spans, span events
// and metrics. It is a memclient.Observer, an objcache.Observer and a
// session.Observer. It is safe for concurrent use. Close it to stop
// observing the server states.
type Observer struct {
	tracer        trace.Tracer
	requireParent bool

	ops        metric.Int64Counter
	failures   metric.Int64Counter
	duration   metric.Float64Histogram
	outcomes   metric.Int64Counter
	keys       metric.Int64Counter
	bytesIn    metric.Int64Counter
	bytesOut   metric.Int64Counter
	markedDown metric.Int64Counter
	upReg      metric.Registration

	// entries holds an immutable map, replaced whole (under entryMu)
	// when a new (operation, server) pair appears, so that reports read
	// it without a lock.
	entries atomic.Pointer[map[opKey]*opEntry]
	entryMu sync.Mutex // serializes replacements of entries

	cache      [numCacheKinds]cacheKind // by objcache.EventKind
	batchLoads metric.Int64Counter
	batchKeys  metric.Int64Histogram

	session         [numSessionKinds]sessionKind // by session.EventKind
	sessionDuration metric.Float64Histogram
	sessionFailures metric.Int64Counter
	sessionAttrs    [2]sessionAttrs // load, save

	servers serverstate.Tracker // ServerEvents and watched clients: server.up
}

// Compile-time checks: an Observer is every memkit Observer.
var (
	_ memclient.Observer = (*Observer)(nil)
	_ objcache.Observer  = (*Observer)(nil)
	_ session.Observer   = (*Observer)(nil)
)

// New returns an Observer on the global TracerProvider and MeterProvider,
// with the default buckets. It returns the errors of the meter's
// instrument creation.
func New() (*Observer, error) {
	return NewFromConfig(Config{})
}

// NewFromConfig returns an Observer with cfg's settings. It returns an
// error when a bucket layout is empty or not strictly increasing, and
// the errors of the meter's instrument creation.
func NewFromConfig(cfg Config) (*Observer, error) {
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	if cfg.MeterProvider == nil {
		cfg.MeterProvider = otel.GetMeterProvider()
	}
	if cfg.DurationBuckets == nil {
		cfg.DurationBuckets = DefaultDurationBuckets
	}
	if cfg.BatchKeyBuckets == nil {
		cfg.BatchKeyBuckets = DefaultBatchKeyBuckets
	}
	if err := checkBuckets("DurationBuckets", cfg.DurationBuckets); err != nil {
		return nil, err
	}
	if err := checkBuckets("BatchKeyBuckets", cfg.BatchKeyBuckets); err != nil {
		return nil, err
	}
	o := &Observer{
		tracer:        cfg.TracerProvider.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		requireParent: cfg.RequireParent,
	}
	o.entries.Store(&map[opKey]*opEntry{})
	m := cfg.MeterProvider.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	var errs []error
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	o.ops = counter("memkit.memcached.operations", "{operation}", "Operations on a memcached server, whatever their outcome.")
	o.failures = counter("memkit.memcached.operation.failures", "{operation}",
		"Operations on a memcached server that failed, by reason (a miss, a not-stored and a CAS conflict are not failures).")
	o.outcomes = counter("memkit.memcached.operation.outcomes", "{operation}",
		"Operations on a memcached server by outcome: ok, miss, not_stored, conflict or failed.")
	o.keys = counter("memkit.memcached.operation.keys", "{key}", "Keys carried by operations on a memcached server.")
	o.bytesIn = counter("memkit.memcached.value.received", "By", "Value bytes received from a memcached server.")
	o.bytesOut = counter("memkit.memcached.value.sent", "By", "Value bytes sent to a memcached server.")
	o.markedDown = counter("memkit.memcached.server.marked_down", "{event}", "Times a memcached server was marked down.")
	var err error
	o.duration, err = m.Float64Histogram("memkit.memcached.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("How long operations on a memcached server took."),
		metric.WithExplicitBucketBoundaries(cfg.DurationBuckets...))
	errs = append(errs, err)
	up, err := m.Int64ObservableGauge("memkit.memcached.server.up",
		metric.WithDescription("Whether the client counts a memcached server as up (1) or down (0)."))
	errs = append(errs, err)
	if err == nil {
		o.upReg, err = m.RegisterCallback(func(_ context.Context, obs metric.Observer) error {
			for server, isUp := range o.servers.States() {
				v := int64(0)
				if isUp {
					v = 1
				}
				obs.ObserveInt64(up, v, metric.WithAttributeSet(attribute.NewSet(attribute.String("server", server))))
			}
			return nil
		}, up)
		errs = append(errs, err)
	}

	for _, k := range cacheKinds {
		o.cache[k.kind] = cacheKind{
			counter: counter("memkit.objcache."+k.name, "{"+k.unit+"}", k.help),
			event:   "memkit.objcache." + k.kind.String(),
		}
	}
	o.cache[objcache.EventBatchLoad].event = "memkit.objcache." + objcache.EventBatchLoad.String()
	o.batchLoads = counter("memkit.objcache.batch_loads", "{call}", "Calls of a batch loader (GetOrLoadMulti, MemoizeMulti).")
	o.batchKeys, err = m.Int64Histogram("memkit.objcache.batch_keys", metric.WithUnit("{key}"),
		metric.WithDescription("Keys asked of each batch loader call."),
		metric.WithExplicitBucketBoundaries(cfg.BatchKeyBuckets...))
	errs = append(errs, err)

	for _, k := range sessionKinds {
		o.session[k.kind] = sessionKind{
			counter: counter("memkit.session."+k.name, "{"+k.unit+"}", k.help),
			event:   "memkit.session." + k.kind.String(),
		}
	}
	o.sessionFailures = counter("memkit.session.store.failures", "{call}", "Session store calls that failed: load or save.")
	o.sessionDuration, err = m.Float64Histogram("memkit.session.store.duration", metric.WithUnit("s"),
		metric.WithDescription("How long a session store call took: load (a request's first read of its session) or save."),
		metric.WithExplicitBucketBoundaries(cfg.DurationBuckets...))
	errs = append(errs, err)
	for i, op := range [2]string{"load", "save"} {
		set := attribute.NewSet(attribute.String("operation", op))
		o.sessionAttrs[i] = sessionAttrs{
			add:    []metric.AddOption{metric.WithAttributeSet(set)},
			record: []metric.RecordOption{metric.WithAttributeSet(set)},
		}
	}
	if err := errors.Join(errs...); err != nil {
		if o.upReg != nil {
			o.upReg.Unregister()
		}
		return nil, err
	}

	// The unlabelled counters and the session failures exist from the
	// start, at 0, as their Prometheus twins do: a rate over them works
	// from the first collection.
	ctx := context.Background()
	for _, k := range o.cache {
		if k.counter != nil {
			k.counter.Add(ctx, 0)
		}
	}
	o.batchLoads.Add(ctx, 0)
	for _, k := range o.session {
		k.counter.Add(ctx, 0)
	}
	for _, a := range o.sessionAttrs {
		o.sessionFailures.Add(ctx, 0, a.add...)
	}
	return o, nil
}

// checkBuckets reports an empty or unsorted bucket layout.
func checkBuckets(field string, b []float64) error {
	if len(b) == 0 {
		return fmt.Errorf("memkitotel: Config.%s is empty", field)
	}
	for i := 1; i < len(b); i++ {
		if !(b[i-1] < b[i]) {
			return fmt.Errorf("memkitotel: Config.%s is not strictly increasing at %v", field, b[i])
		}
	}
	return nil
}

// Close stops reporting memkit.memcached.server.up (it unregisters the
// gauge's callback) and forgets the watched clients. Reports made after
// Close are still counted and traced. It returns the meter's error.
func (o *Observer) Close() error {
	o.servers.Reset()
	return o.upReg.Unregister()
}

// errNilClient is WatchClient's panic value: a programmer error.
var errNilClient = errors.New("memkitotel: WatchClient(nil)")

// WatchClient makes each collection of memkit.memcached.server.up read
// mc.ServerStatus, so that the gauge has a value for every server of mc
// from the first collection on, before any server changes state. Where a
// watched client and the ServerEvents disagree, the client's status wins;
// a server that several watched clients share is up only when it is up in
// all of them. Call UnwatchClient before dropping a client that the
// Observer outlives.
func (o *Observer) WatchClient(mc *memclient.Client) {
	if mc == nil {
		panic(errNilClient)
	}
	o.servers.Watch(mc)
}

// UnwatchClient stops reading mc.ServerStatus at each collection. Its
// servers keep the state their last ServerEvent gave them, if any.
func (o *Observer) UnwatchClient(mc *memclient.Client) {
	o.servers.Unwatch(mc)
}
