// Package memkitprom exports what memkit does as Prometheus metrics: every
// operation of a memclient.Client on every server (counts, failures by
// reason, durations, keys and value bytes), the state of each server, and
// the counters of an objcache.Cache and a session.Manager.
//
// One Collector is the Observer of all three and a prometheus.Collector:
//
//	metrics := memkitprom.New()
//	prometheus.MustRegister(metrics)
//	mc, err := memclient.NewFromConfig(memclient.Config{Servers: servers, Observer: metrics})
//	metrics.WatchClient(mc) // memkit_memcached_server_up from the start
//	cache, err := objcache.New(mc, objcache.Options{Observer: metrics})
//	mgr := &session.Manager{Store: session.NewMemcacheStore(mc), Keys: keys, Observer: metrics}
//	http.Handle("GET /metrics", promhttp.Handler())
//
// # Metrics
//
// The names are fixed, so that dashboards and alerts are written once (the
// OpenTelemetry adapter, github.com/memkit/memkit/adapters/otel, exports the
// same ones):
//
//	memkit_memcached_operations_total{operation,server}                 counter
//	memkit_memcached_operation_failures_total{operation,server,reason}  counter
//	memkit_memcached_operation_duration_seconds{operation,server}       histogram
//	memkit_memcached_operation_outcomes_total{operation,server,outcome} counter
//	memkit_memcached_operation_keys_total{operation,server}             counter
//	memkit_memcached_value_received_bytes_total{operation,server}       counter
//	memkit_memcached_value_sent_bytes_total{operation,server}           counter
//	memkit_memcached_server_up{server}                                  gauge, 1 or 0
//	memkit_memcached_server_marked_down_total{server}                   counter
//	memkit_objcache_hits_total, _misses_total, _loads_total, _load_errors_total,
//	  _stale_served_total, _failsafe_served_total, _batch_loads_total,
//	  _background_loads_total, _not_found_total, _lease_waits_total,
//	  _decode_errors_total, _coalesced_total, _refreshes_total,
//	  _negative_hits_total, _errors_total                               counters
//	memkit_objcache_batch_keys                                          histogram of keys per batch load
//	memkit_session_loads_total, _saves_total, _conflicts_total,
//	  _revocations_total, _revoked_total                                counters
//	memkit_session_store_failures_total{operation}                      counter (load, save)
//	memkit_session_store_duration_seconds{operation}                    histogram (load, save)
//
// operation is the memclient.Op name (get, get_multi, set, add, replace,
// append, prepend, cas, delete, incr, decr, touch, gat, lease, invalidate,
// flush_all, stats, ping); server is the server's address, "" for a call
// refused before a server was chosen (a malformed key); reason is one of
// timeout, network, server-error, malformed-key, too-large, protocol,
// unavailable, other; outcome is ok, miss, not_stored, conflict or failed.
// A miss, a not-stored and a CAS conflict are outcomes, not failures.
// Operations count per server: a GetMulti over three servers is three
// get_multi operations. Keys and values never appear in a label.
//
// Two clients (or caches, or managers) in one process need a Collector
// each, registered with a label that tells them apart:
//
//	prometheus.WrapRegistererWith(prometheus.Labels{"cache": "sessions"}, reg).MustRegister(c)
//
// Each objcache counter means what the objcache.Stats field of the same
// name says; memkit_objcache_batch_loads_total counts loader calls and
// memkit_objcache_batch_keys their sizes. Session counters mean what the
// session.Stats fields say (revocations: revocations made; revoked:
// requests that found their session revoked).
package memkitprom

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/memkit/memkit/internal/serverstate"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
	"github.com/prometheus/client_golang/prometheus"
)

// Default bucket layouts; Config fields left nil use them. They are
// shared: do not modify them.
var (
	// DefaultDurationBuckets spans 50µs to 1s, for memcached round trips
	// (tens of microseconds on a LAN) up to timeouts.
	DefaultDurationBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
	// DefaultBatchKeyBuckets are powers of two from 1 to 1024 keys.
	DefaultBatchKeyBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

// Config holds the Collector's settings; the zero value is the default.
type Config struct {
	// DurationBuckets are the upper bounds, in seconds, of the buckets of
	// memkit_memcached_operation_duration_seconds and
	// memkit_session_store_duration_seconds, in increasing order. nil
	// means DefaultDurationBuckets.
	DurationBuckets []float64
	// BatchKeyBuckets are the upper bounds of the buckets of
	// memkit_objcache_batch_keys, in increasing order. nil means
	// DefaultBatchKeyBuckets.
	BatchKeyBuckets []float64
}

// Collector turns what memkit reports into Prometheus metrics. It is a
// memclient.Observer, an objcache.Observer, a session.Observer and a
// prometheus.Collector: set it as the Observer of a Client, a Cache and a
// Manager, and register it. It is safe for concurrent use; an operation's
// report allocates nothing once its (operation, server) pair has been seen.
type Collector struct {
	ops        *prometheus.CounterVec
	failures   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	outcomes   *prometheus.CounterVec
	keys       *prometheus.CounterVec
	bytesIn    *prometheus.CounterVec
	bytesOut   *prometheus.CounterVec
	markedDown *prometheus.CounterVec
	upDesc     *prometheus.Desc

	// children holds an immutable map, replaced whole (under childMu)
	// when a new (operation, server) pair appears, so that reports read
	// it without a lock.
	children atomic.Pointer[map[opKey]*opChildren]
	childMu  sync.Mutex // serializes replacements of children

	cache      [numCacheKinds]prometheus.Counter // by objcache.EventKind; nil for EventBatchLoad
	batchLoads prometheus.Counter
	batchKeys  prometheus.Histogram

	sessionCounts   [numSessionKinds]prometheus.Counter // by session.EventKind
	sessionDuration [2]prometheus.Observer              // load, save
	sessionFailures [2]prometheus.Counter               // load, save
	sessionVecs     []prometheus.Collector

	servers serverstate.Tracker // ServerEvents and watched clients: server_up
}

// Compile-time checks: a Collector is every Observer and a
// prometheus.Collector.
var (
	_ memclient.Observer   = (*Collector)(nil)
	_ objcache.Observer    = (*Collector)(nil)
	_ session.Observer     = (*Collector)(nil)
	_ prometheus.Collector = (*Collector)(nil)
)

// New returns a Collector with the default buckets. Register it (for
// example prometheus.MustRegister) and set it as the Observer of the
// Client, Cache and Manager to watch.
func New() *Collector {
	c, err := NewFromConfig(Config{})
	if err != nil {
		panic(err) // the defaults are valid
	}
	return c
}

// NewFromConfig returns a Collector with cfg's settings. It returns an
// error when a bucket layout is empty or not strictly increasing.
func NewFromConfig(cfg Config) (*Collector, error) {
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
	opLabels := []string{"operation", "server"}
	c := &Collector{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memkit_memcached_operations_total",
			Help: "Operations on a memcached server, whatever their outcome.",
		}, opLabels),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memkit_memcached_operation_failures_total",
			Help: "Operations on a memcached server that failed, by reason (a miss, a not-stored and a CAS conflict are not failures).",
		}, []string{"operation", "server", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "memkit_memcached_operation_duration_seconds",
			Help:    "How long operations on a memcached server took.",
			Buckets: cfg.DurationBuckets,
		}, opLabels),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memkit_memcached_operation_outcomes_total",
			Help: "Operations on a memcached server by outcome: ok, miss, not_stored, conflict or failed.",
		}, []string{"operation", "server", "outcome"}),
		keys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memkit_memcached_operation_keys_total",
			Help: "Keys carried by operations on a memcached server.",
		}, opLabels),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memkit_memcached_value_received_bytes_total",
			Help: "Value bytes received from a memcached server.",
		}, opLabels),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memkit_memcached_value_sent_bytes_total",
			Help: "Value bytes sent to a memcached server.",
		}, opLabels),
		markedDown: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "memkit_memcached_server_marked_down_total",
			Help: "Times a memcached server was marked down.",
		}, []string{"server"}),
		upDesc: prometheus.NewDesc("memkit_memcached_server_up",
			"Whether the client counts a memcached server as up (1) or down (0).", []string{"server"}, nil),
	}
	c.children.Store(&map[opKey]*opChildren{})
	for _, k := range cacheKinds {
		c.cache[k.kind] = prometheus.NewCounter(prometheus.CounterOpts{Name: k.name, Help: k.help})
	}
	c.batchLoads = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "memkit_objcache_batch_loads_total",
		Help: "Calls of a batch loader (GetOrLoadMulti, MemoizeMulti).",
	})
	c.batchKeys = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "memkit_objcache_batch_keys",
		Help:    "Keys asked of each batch loader call.",
		Buckets: cfg.BatchKeyBuckets,
	})
	for _, k := range sessionKinds {
		c.sessionCounts[k.kind] = prometheus.NewCounter(prometheus.CounterOpts{Name: k.name, Help: k.help})
	}
	sessionDuration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "memkit_session_store_duration_seconds",
		Help:    "How long a session store call took: load (a request's first read of its session) or save.",
		Buckets: cfg.DurationBuckets,
	}, []string{"operation"})
	sessionFailures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "memkit_session_store_failures_total",
		Help: "Session store calls that failed: load or save.",
	}, []string{"operation"})
	for i, op := range [2]string{"load", "save"} {
		c.sessionDuration[i] = sessionDuration.WithLabelValues(op)
		c.sessionFailures[i] = sessionFailures.WithLabelValues(op)
	}
	c.sessionVecs = []prometheus.Collector{sessionDuration, sessionFailures}
	return c, nil
}

// checkBuckets reports an empty or unsorted bucket layout, which
// client_golang would panic on.
func checkBuckets(field string, b []float64) error {
	if len(b) == 0 {
		return fmt.Errorf("memkitprom: Config.%s is empty", field)
	}
	for i := 1; i < len(b); i++ {
		if !(b[i-1] < b[i]) {
			return fmt.Errorf("memkitprom: Config.%s is not strictly increasing at %v", field, b[i])
		}
	}
	return nil
}

// errNilClient is WatchClient's panic value: a programmer error.
var errNilClient = errors.New("memkitprom: WatchClient(nil)")

// WatchClient makes each scrape read mc.ServerStatus, so that
// memkit_memcached_server_up has a value for every server of mc from the
// first scrape on, before any server changes state. Where a watched
// client and the ServerEvents disagree, the client's status, read at the
// scrape, wins; a server that several watched clients share is up only
// when it is up in all of them. Call UnwatchClient before dropping a
// client that the Collector outlives.
func (c *Collector) WatchClient(mc *memclient.Client) {
	if mc == nil {
		panic(errNilClient)
	}
	c.servers.Watch(mc)
}

// UnwatchClient stops reading mc.ServerStatus at each scrape. Its servers
// keep the state their last ServerEvent gave them, if any.
func (c *Collector) UnwatchClient(mc *memclient.Client) {
	c.servers.Unwatch(mc)
}

// Describe sends the descriptors of every metric the Collector exports;
// part of prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.collectors() {
		m.Describe(ch)
	}
	ch <- c.upDesc
}

// Collect sends the current value of every metric; part of
// prometheus.Collector. memkit_memcached_server_up is computed here, from
// the ServerEvents seen and the watched clients' ServerStatus.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.collectors() {
		m.Collect(ch)
	}
	for server, up := range c.servers.States() {
		v := 0.0
		if up {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, v, server)
	}
}

// collectors lists the metrics Describe and Collect delegate to.
func (c *Collector) collectors() []prometheus.Collector {
	out := []prometheus.Collector{c.ops, c.failures, c.duration, c.outcomes, c.keys, c.bytesIn, c.bytesOut, c.markedDown}
	for _, m := range c.cache {
		if m != nil {
			out = append(out, m)
		}
	}
	out = append(out, c.batchLoads, c.batchKeys)
	for _, m := range c.sessionCounts {
		out = append(out, m)
	}
	return append(out, c.sessionVecs...)
}
