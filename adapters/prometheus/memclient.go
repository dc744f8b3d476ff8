package memkitprom

import (
	"context"
	"sync/atomic"

	"github.com/memkit/memkit/memclient"
	"github.com/prometheus/client_golang/prometheus"
)

// opKey names the metrics of one operation on one server.
type opKey struct{ name, server string }

// reasons are the failure reasons memclient reports, in the order of
// opChildren.failures.
var reasons = [...]string{"timeout", "network", "server-error", "malformed-key", "too-large", "protocol", "unavailable", "other"}

// numOutcomes is how many memclient.Outcome values opChildren caches.
const numOutcomes = int(memclient.OutcomeFailed) + 1

// opChildren are the metrics of one (operation, server) pair, bound to
// their labels once so that a report looks nothing up by label. The
// outcome and failure counters are bound on first use (a set never
// misses; most pairs never fail), so that no series exists that nothing
// can move.
type opChildren struct {
	key      opKey
	ops      prometheus.Counter
	duration prometheus.Observer
	keys     prometheus.Counter
	bytesIn  prometheus.Counter
	bytesOut prometheus.Counter
	outcomes [numOutcomes]atomic.Pointer[prometheus.Counter]
	failures [len(reasons)]atomic.Pointer[prometheus.Counter]
}

// ObserveOp counts one operation on one server; part of
// memclient.Observer.
func (c *Collector) ObserveOp(_ context.Context, op memclient.Op) {
	ch := c.child(op.Name, op.Server)
	ch.ops.Inc()
	ch.duration.Observe(op.Duration.Seconds())
	if op.Keys > 0 {
		ch.keys.Add(float64(op.Keys))
	}
	if op.BytesIn > 0 {
		ch.bytesIn.Add(float64(op.BytesIn))
	}
	if op.BytesOut > 0 {
		ch.bytesOut.Add(float64(op.BytesOut))
	}
	if o := int(op.Outcome); o < numOutcomes {
		if p := ch.outcomes[o].Load(); p != nil {
			(*p).Inc()
		} else {
			c.bindOutcome(ch, op.Outcome).Inc()
		}
	} else {
		c.outcomes.WithLabelValues(op.Name, op.Server, op.Outcome.String()).Inc()
	}
	if op.Outcome == memclient.OutcomeFailed {
		if r := reasonIndex(op.Reason); r >= 0 {
			if p := ch.failures[r].Load(); p != nil {
				(*p).Inc()
			} else {
				c.bindFailure(ch, r).Inc()
			}
		} else {
			c.failures.WithLabelValues(op.Name, op.Server, op.Reason).Inc()
		}
	}
}

// ObserveServer records a server marked down or up; part of
// memclient.Observer.
func (c *Collector) ObserveServer(_ context.Context, ev memclient.ServerEvent) {
	c.servers.Observe(ev.Server, ev.Up)
	if !ev.Up {
		c.markedDown.WithLabelValues(ev.Server).Inc()
	}
}

// child returns the metrics of (name, server), binding them on first use.
func (c *Collector) child(name, server string) *opChildren {
	if ch := (*c.children.Load())[opKey{name, server}]; ch != nil {
		return ch
	}
	return c.addChild(name, server)
}

// addChild binds the metrics of (name, server) and publishes them in a
// new copy of the children map. The pairs are few (operations times
// servers), so copying on each new one costs nothing that matters.
func (c *Collector) addChild(name, server string) *opChildren {
	c.childMu.Lock()
	defer c.childMu.Unlock()
	old := *c.children.Load()
	k := opKey{name, server}
	if ch := old[k]; ch != nil {
		return ch
	}
	ch := &opChildren{
		key:      k,
		ops:      c.ops.WithLabelValues(name, server),
		duration: c.duration.WithLabelValues(name, server),
		keys:     c.keys.WithLabelValues(name, server),
		bytesIn:  c.bytesIn.WithLabelValues(name, server),
		bytesOut: c.bytesOut.WithLabelValues(name, server),
	}
	m := make(map[opKey]*opChildren, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = ch
	c.children.Store(&m)
	return ch
}

// bindOutcome binds ch's counter of outcome o (< numOutcomes). Two
// goroutines may both bind it: the vector returns the same counter.
func (c *Collector) bindOutcome(ch *opChildren, o memclient.Outcome) prometheus.Counter {
	cnt := c.outcomes.WithLabelValues(ch.key.name, ch.key.server, o.String())
	ch.outcomes[o].Store(&cnt)
	return cnt
}

// bindFailure binds ch's failure counter of reasons[r].
func (c *Collector) bindFailure(ch *opChildren, r int) prometheus.Counter {
	cnt := c.failures.WithLabelValues(ch.key.name, ch.key.server, reasons[r])
	ch.failures[r].Store(&cnt)
	return cnt
}

// reasonIndex returns reason's index in reasons, or -1 for a reason this
// package does not know (counted all the same, by label lookup).
func reasonIndex(reason string) int {
	for i, r := range reasons {
		if r == reason {
			return i
		}
	}
	return -1
}
