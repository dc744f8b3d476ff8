package memkitotel

import (
	"context"
	"net"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/memkit/memkit/memclient"
)

// opKey names the instruments' attributes of one operation on one server.
type opKey struct{ name, server string }

// reasons are the failure reasons memclient reports, in the order of
// opEntry.failures.
var reasons = [...]string{"timeout", "network", "server-error", "malformed-key", "too-large", "protocol", "unavailable", "other"}

// numOutcomes is how many memclient.Outcome values opEntry holds.
const numOutcomes = int(memclient.OutcomeFailed) + 1

// outcomeAttrs are the span attributes of each outcome.
var outcomeAttrs = func() (a [numOutcomes]attribute.KeyValue) {
	for o := range a {
		a[o] = attribute.String("memkit.memcached.outcome", memclient.Outcome(o).String())
	}
	return a
}()

// gutterAttr marks the span of an operation on a gutter server.
var gutterAttr = attribute.Bool("memkit.memcached.gutter", true)

// opEntry is what the reports of one (operation, server) pair need,
// computed once: the measurement options carrying its attribute sets
// (built up front, as slices, so that passing them allocates nothing) and
// its span's name and fixed attributes.
type opEntry struct {
	add      []metric.AddOption    // operation, server
	record   []metric.RecordOption // operation, server
	outcomes [numOutcomes][]metric.AddOption
	failures [len(reasons)][]metric.AddOption

	spanName string
	// start are the span's start options: kind client, and the
	// attributes db.system.name, db.operation.name, server.address and
	// server.port.
	start []trace.SpanStartOption
}

// ObserveOp records one operation on one server: a span, child of ctx's,
// and the metrics; part of memclient.Observer.
func (o *Observer) ObserveOp(ctx context.Context, op memclient.Op) {
	e := o.entry(op.Name, op.Server)
	if !o.requireParent || trace.SpanContextFromContext(ctx).IsValid() {
		ctx = o.span(ctx, e, op)
	}
	o.ops.Add(ctx, 1, e.add...)
	o.duration.Record(ctx, op.Duration.Seconds(), e.record...)
	if op.Keys > 0 {
		o.keys.Add(ctx, int64(op.Keys), e.add...)
	}
	if op.BytesIn > 0 {
		o.bytesIn.Add(ctx, int64(op.BytesIn), e.add...)
	}
	if op.BytesOut > 0 {
		o.bytesOut.Add(ctx, int64(op.BytesOut), e.add...)
	}
	if oc := int(op.Outcome); oc < numOutcomes {
		o.outcomes.Add(ctx, 1, e.outcomes[oc]...)
	} else {
		o.outcomes.Add(ctx, 1, metric.WithAttributes(attribute.String("operation", op.Name),
			attribute.String("server", op.Server), attribute.String("outcome", op.Outcome.String())))
	}
	if op.Outcome == memclient.OutcomeFailed {
		if r := reasonIndex(op.Reason); r >= 0 {
			o.failures.Add(ctx, 1, e.failures[r]...)
		} else {
			o.failures.Add(ctx, 1, metric.WithAttributes(attribute.String("operation", op.Name),
				attribute.String("server", op.Server), attribute.String("reason", op.Reason)))
		}
	}
}

// span records op as a span, child of ctx's, and returns the context
// that carries it. The attributes a sampler may look at (system,
// operation, server) are given at the start; the others only to a span
// that records.
func (o *Observer) span(ctx context.Context, e *opEntry, op memclient.Op) context.Context {
	opts := e.start
	if !op.Start.IsZero() {
		opts = append(opts[:len(opts):len(opts)], trace.WithTimestamp(op.Start))
	}
	ctx, span := o.tracer.Start(ctx, e.spanName, opts...)
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 4)
		if op.Keys > 1 {
			attrs = append(attrs, semconv.DBOperationBatchSize(op.Keys))
		}
		if oc := int(op.Outcome); oc < numOutcomes {
			attrs = append(attrs, outcomeAttrs[oc])
		}
		if op.Gutter {
			attrs = append(attrs, gutterAttr)
		}
		if op.Outcome == memclient.OutcomeFailed {
			attrs = append(attrs, semconv.ErrorTypeKey.String(op.Reason))
			span.SetStatus(codes.Error, op.Reason)
		}
		span.SetAttributes(attrs...)
	}
	if op.Start.IsZero() {
		span.End()
	} else {
		span.End(trace.WithTimestamp(op.Start.Add(op.Duration)))
	}
	return ctx
}

// ObserveServer records a server marked down or up; part of
// memclient.Observer.
func (o *Observer) ObserveServer(ctx context.Context, ev memclient.ServerEvent) {
	o.servers.Observe(ev.Server, ev.Up)
	if !ev.Up {
		o.markedDown.Add(ctx, 1, metric.WithAttributes(attribute.String("server", ev.Server)))
	}
}

// entry returns the entry of (name, server), making it on first use.
func (o *Observer) entry(name, server string) *opEntry {
	if e := (*o.entries.Load())[opKey{name, server}]; e != nil {
		return e
	}
	return o.addEntry(name, server)
}

// addEntry makes the entry of (name, server) and publishes it in a new
// copy of the entries map. The pairs are few (operations times servers),
// so copying on each new one costs nothing that matters.
func (o *Observer) addEntry(name, server string) *opEntry {
	o.entryMu.Lock()
	defer o.entryMu.Unlock()
	old := *o.entries.Load()
	k := opKey{name, server}
	if e := old[k]; e != nil {
		return e
	}
	e := newEntry(name, server)
	m := make(map[opKey]*opEntry, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = e
	o.entries.Store(&m)
	return e
}

// newEntry computes the attributes of (name, server).
func newEntry(name, server string) *opEntry {
	opAttr, serverAttr := attribute.String("operation", name), attribute.String("server", server)
	set := attribute.NewSet(opAttr, serverAttr)
	e := &opEntry{
		add:      []metric.AddOption{metric.WithAttributeSet(set)},
		record:   []metric.RecordOption{metric.WithAttributeSet(set)},
		spanName: name,
	}
	attrs := []attribute.KeyValue{semconv.DBSystemNameMemcached, semconv.DBOperationName(name)}
	for oc := range e.outcomes {
		s := attribute.NewSet(opAttr, serverAttr, attribute.String("outcome", memclient.Outcome(oc).String()))
		e.outcomes[oc] = []metric.AddOption{metric.WithAttributeSet(s)}
	}
	for r, reason := range reasons {
		s := attribute.NewSet(opAttr, serverAttr, attribute.String("reason", reason))
		e.failures[r] = []metric.AddOption{metric.WithAttributeSet(s)}
	}
	if server != "" {
		e.spanName = name + " " + server
		host, port, err := net.SplitHostPort(server)
		if err != nil {
			host, port = server, "" // not host:port (a socket path)
		}
		attrs = append(attrs, semconv.ServerAddress(host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, semconv.ServerPort(p))
		}
	}
	e.start = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)}
	return e
}

// reasonIndex returns reason's index in reasons, or -1 for a reason this
// package does not know (recorded all the same, with attributes built
// for the occasion).
func reasonIndex(reason string) int {
	for i, r := range reasons {
		if r == reason {
			return i
		}
	}
	return -1
}
