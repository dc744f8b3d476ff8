package main

import (
	"context"
	"log/slog"
	"net/http"

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
	// Wrap, when set, wraps the shop's routes, health checks and admin
	// routes (for example to start a server span per request, whose
	// context the observers then receive).
	Wrap func(http.Handler) http.Handler
	// Shutdown, when set, flushes and stops the exporters after the shop
	// has stopped serving.
	Shutdown func(context.Context) error
}

// newObservability builds what the shop exports. It is the one place
// where exporters are wired in: today none is (the Prometheus and
// OpenTelemetry adapters are modules of their own), so /metrics says so
// and no span is made.
func newObservability(ctx context.Context, log *slog.Logger) (observability, error) {
	return observability{}, nil
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
