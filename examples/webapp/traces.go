package main

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultTraceSpans is how many ended spans /debug/traces keeps.
const DefaultTraceSpans = 2000

// spanRing is an OpenTelemetry span processor that keeps the last spans
// that ended, in memory, and serves them at GET /debug/traces grouped by
// trace: each request's server span with its memcached calls as
// children. It is safe for concurrent use.
type spanRing struct {
	mu    sync.Mutex // protects spans, next, full
	spans []sdktrace.ReadOnlySpan
	next  int
	full  bool
}

var _ sdktrace.SpanProcessor = (*spanRing)(nil)

func newSpanRing(n int) *spanRing { return &spanRing{spans: make([]sdktrace.ReadOnlySpan, n)} }

func (r *spanRing) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (r *spanRing) Shutdown(context.Context) error                  { return nil }
func (r *spanRing) ForceFlush(context.Context) error                { return nil }

func (r *spanRing) OnEnd(s sdktrace.ReadOnlySpan) {
	r.mu.Lock()
	r.spans[r.next] = s
	r.next = (r.next + 1) % len(r.spans)
	r.full = r.full || r.next == 0
	r.mu.Unlock()
}

// snapshot returns the spans kept, oldest first.
func (r *spanRing) snapshot() []sdktrace.ReadOnlySpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]sdktrace.ReadOnlySpan(nil), r.spans[:r.next]...)
	}
	return append(append([]sdktrace.ReadOnlySpan(nil), r.spans[r.next:]...), r.spans[:r.next]...)
}

// traceView is one trace of /debug/traces: the request's span and its
// children.
type traceView struct {
	TraceID  string     `json:"trace_id"`
	Root     spanView   `json:"root"`
	Children []spanView `json:"children"`
}

type spanView struct {
	Name       string            `json:"name"`
	Kind       string            `json:"kind"`
	Start      time.Time         `json:"start"`
	Seconds    float64           `json:"seconds"`
	Status     string            `json:"status"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

func viewOf(s sdktrace.ReadOnlySpan) spanView {
	v := spanView{
		Name: s.Name(), Kind: s.SpanKind().String(), Start: s.StartTime().UTC(),
		Seconds: s.EndTime().Sub(s.StartTime()).Seconds(), Status: s.Status().Code.String(),
	}
	for _, kv := range s.Attributes() {
		if v.Attributes == nil {
			v.Attributes = make(map[string]string)
		}
		v.Attributes[string(kv.Key)] = attrString(kv.Value)
	}
	return v
}

func attrString(v attribute.Value) string { return v.Emit() }

// ServeHTTP serves the last requests' traces, newest first, as JSON:
// ?limit=N (default 20) traces.
func (r *spanRing) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	limit := 20
	if n, err := parsePositive(req.URL.Query().Get("limit")); err == nil {
		limit = n
	}
	byTrace := make(map[trace.TraceID]*traceView)
	var order []trace.TraceID
	spans := r.snapshot()
	for _, s := range spans {
		if s.Parent().IsValid() && s.Parent().IsRemote() {
			continue
		}
		if !s.Parent().IsValid() { // a request's own span
			id := s.SpanContext().TraceID()
			byTrace[id] = &traceView{TraceID: id.String(), Root: viewOf(s), Children: []spanView{}}
			order = append(order, id)
		}
	}
	for _, s := range spans {
		if t := byTrace[s.SpanContext().TraceID()]; t != nil && s.Parent().IsValid() {
			t.Children = append(t.Children, viewOf(s))
		}
	}
	out := make([]*traceView, 0, min(limit, len(order)))
	for i := len(order) - 1; i >= 0 && len(out) < limit; i-- {
		t := byTrace[order[i]]
		sort.Slice(t.Children, func(a, b int) bool { return t.Children[a].Start.Before(t.Children[b].Start) })
		out = append(out, t)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"traces": out})
}

// parsePositive parses a positive decimal int.
func parsePositive(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err == nil && n <= 0 {
		err = errors.New("not positive")
	}
	return n, err
}
