package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	memkitotel "github.com/memkit/memkit/adapters/otel"
	memkitprom "github.com/memkit/memkit/adapters/prometheus"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

// observability is where metrics and traces plug into the shop: the
// handler behind GET /metrics, observers that hear what memclient,
// objcache and the session manager do, and a wrapper around the shop's
// routes (a span per request). Every field is optional; the zero value
// exports nothing. The shop's own dashboard recorder hears the same
// events beside these observers (see fanOut), so both run at once.
type observability struct {
	// Metrics serves GET /metrics (on the admin listener when there is
	// one). nil: /metrics answers 404 saying that no exporter is wired.
	Metrics http.Handler
	// Memcached hears every memcached operation and every server marked
	// down or up; Cache every objcache hit, miss, load and the rest (the
	// in-memory mode's memo reports the same events); Sessions every
	// session load, save, conflict and revocation. nil: none.
	Memcached memclient.Observer
	Cache     objcache.Observer
	Sessions  session.Observer
	// Watch, when set, is given the shop's memcached client once it is
	// made (metrics read each server's state from it).
	Watch func(*memclient.Client)
	// Wrap, when set, wraps the shop's routes, health checks and admin
	// routes (for example to start a server span per request, whose
	// context the observers then receive).
	Wrap func(http.Handler) http.Handler
	// Traces, when set, serves GET /debug/traces: the last requests'
	// spans, with their memcached calls as children.
	Traces http.Handler
	// Shutdown, when set, flushes and stops the exporters after the shop
	// has stopped serving.
	Shutdown func(context.Context) error
}

// newObservability builds what the shop exports: Prometheus metrics
// (adapters/prometheus) at /metrics, and OpenTelemetry traces
// (adapters/otel): a server span per request, a child span per memcached
// call, kept in memory for /debug/traces, since no collector is reachable
// from here. A real deployment would hand the TracerProvider an OTLP
// exporter instead.
func newObservability(_ context.Context, _ *slog.Logger) (observability, error) {
	reg := prometheus.NewRegistry()
	prom := memkitprom.New()
	if err := errors.Join(
		reg.Register(prom),
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	); err != nil {
		return observability{}, err
	}
	spans := newSpanRing(DefaultTraceSpans)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	traces, err := memkitotel.NewFromConfig(memkitotel.Config{
		TracerProvider: tp,
		MeterProvider:  metricnoop.NewMeterProvider(), // metrics go through Prometheus
		RequireParent:  true,                          // spans within a request's trace only
	})
	if err != nil {
		return observability{}, err
	}
	return observability{
		Metrics:   promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		Memcached: memclient.Observers(prom, traces),
		Cache:     objcache.Observers(prom, traces),
		Sessions:  session.Observers(prom, traces),
		Watch: func(mc *memclient.Client) {
			prom.WatchClient(mc)
			traces.WatchClient(mc)
		},
		Wrap: func(h http.Handler) http.Handler {
			// The span is renamed after the route once the shop's mux has
			// matched it (routeNamed).
			return otelhttp.NewHandler(h, "shop",
				otelhttp.WithTracerProvider(tp),
				otelhttp.WithSpanNameFormatter(spanName))
		},
		Traces: spans,
		Shutdown: func(ctx context.Context) error {
			return errors.Join(traces.Close(), tp.Shutdown(ctx))
		},
	}, nil
}

// spanName names a request's span: its method when it starts, and once
// the request is served (otelhttp asks again when a mux has routed it)
// the name routeNamed gave it after the shop's route, if it did.
func spanName(_ string, r *http.Request) string {
	if r.Pattern != "" {
		if s, ok := trace.SpanFromContext(r.Context()).(interface{ Name() string }); ok && s.Name() != "" {
			return s.Name()
		}
	}
	return r.Method
}

// The fan-outs pass each event to several observers, in order.

type memclientObservers []memclient.Observer

func (obs memclientObservers) ObserveOp(ctx context.Context, op memclient.Op) {
	for _, o := range obs {
		o.ObserveOp(ctx, op)
	}
}

func (obs memclientObservers) ObserveServer(ctx context.Context, ev memclient.ServerEvent) {
	for _, o := range obs {
		o.ObserveServer(ctx, ev)
	}
}

type cacheObservers []objcache.Observer

func (obs cacheObservers) ObserveCache(ctx context.Context, ev objcache.Event) {
	for _, o := range obs {
		o.ObserveCache(ctx, ev)
	}
}

type sessionObservers []session.Observer

func (obs sessionObservers) ObserveSession(ctx context.Context, ev session.Event) {
	for _, o := range obs {
		o.ObserveSession(ctx, ev)
	}
}

// fanOut returns one observer that tells every non-nil one of obs: nil
// when there is none (which costs the libraries nothing), the observer
// itself when there is one, else a fan-out.
func fanOut[O any, F ~[]O](obs ...O) O {
	var f F
	for _, o := range obs {
		if any(o) != nil {
			f = append(f, o)
		}
	}
	var none O
	switch len(f) {
	case 0:
		return none
	case 1:
		return f[0]
	}
	return any(f).(O)
}
