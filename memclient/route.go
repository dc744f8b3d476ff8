package memclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Routing: which servers a key's operation goes to.
//
// A key's owners are its server and, with Config.Replicas = R > 1, the
// next R-1 distinct servers of the ring. An owner is bypassed while it is
// down: failed, or owing deletes it has not replayed yet. Each operation
// has a kind that says where it goes (see opKind). Without replicas, a
// gutter or a warm-up (topology.simple), a key has one server and every
// operation goes there, as serverFor says.

// topology is an immutable server list and its key distribution.
type topology struct {
	servers  []*server
	sel      selector
	gutter   []*server
	gsel     selector // nil without a gutter
	replicas int      // >= 1
	// simple: one copy, no gutter, no warm-up: serverFor alone routes.
	simple bool
	// prev is the topology before the last SetServers, consulted on misses
	// until warmUntil (unix nanos); nil when not warming up.
	prev      *topology
	warmUntil int64
}

// warming reports whether misses consult prev at now (unix nanos).
func (t *topology) warming(now int64) bool {
	return t.prev != nil && now < t.warmUntil
}

// opKind says how an operation is routed over a key's owners and the
// gutter.
type opKind uint8

const (
	// kindRead goes to one live owner, chosen at random, falling back to
	// the others when it fails or misses, then to the gutter when no
	// owner answered.
	kindRead opKind = iota
	// kindWrite goes to every live owner; a bypassed owner is owed a
	// delete. With no live owner it goes to the gutter, TTL clamped.
	kindWrite
	// kindTouch is kindWrite that owes nothing: a touch changes no value.
	kindTouch
	// kindFirst goes to the first live owner, or the gutter; with
	// replicas, a stored value is then copied to the other owners.
	kindFirst
	// kindRelative goes to every live owner, never to the gutter.
	kindRelative
	// kindCAS goes to the owner that served the item, never to the
	// gutter, and is then copied to the other owners.
	kindCAS
)

func (op opcode) kind() opKind {
	switch op {
	case opSet, opDelete, opInvalidate:
		return kindWrite
	case opTouch:
		return kindTouch
	case opAdd, opReplace, opLease:
		return kindFirst
	case opIncr, opDecr, opAppend, opPrepend:
		return kindRelative
	case opCAS:
		return kindCAS
	}
	return kindRead
}

// changes reports whether op changes a key's value: one that skips a
// bypassed owner, or fails on one replica while the others take it,
// leaves that owner stale, so it is owed a delete.
func (op opcode) changes() bool {
	switch op {
	case opSet, opAdd, opReplace, opAppend, opPrepend, opCAS, opDelete, opInvalidate, opIncr, opDecr:
		return true
	}
	return false
}

// invalidates reports whether op means to remove a key's value: when it
// fails on the key's only owner (a timeout, a lost connection: it may be
// only unreachable), the delete is owed, so that the server never serves
// that value again. A failed set leaves its caller to decide.
func (op opcode) invalidates() bool {
	return op == opDelete || op == opInvalidate
}

// serverFor returns the server for key in t when t is simple, honouring
// down servers and Config.Failover.
func (c *Client) serverFor(t *topology, key string) (*server, error) {
	switch len(t.servers) {
	case 0:
		return nil, ErrNoServers
	case 1:
		s := t.servers[0]
		if s.down.Load() {
			return nil, s.unavailable()
		}
		return s, nil
	}
	s := t.servers[t.sel.pick(key)]
	if !s.down.Load() {
		return s, nil
	}
	if !c.cfg.Failover {
		return nil, s.unavailable()
	}
	i := t.sel.pickLive(key, func(i int) bool { return t.servers[i].down.Load() })
	if i < 0 {
		return nil, s.unavailable()
	}
	return t.servers[i], nil
}

// owners appends key's owners in t to dst: its server, then with
// replicas the next distinct ones on the ring.
func (t *topology) owners(key string, dst []*server) []*server {
	if len(t.servers) == 0 {
		return dst
	}
	start := len(dst)
	dst = append(dst, t.servers[t.sel.pick(key)])
	n := min(t.replicas, len(t.servers))
	for len(dst)-start < n {
		chosen := dst[start:]
		j := t.sel.pickLive(key, func(j int) bool { return holds(chosen, t.servers[j]) })
		if j < 0 || holds(chosen, t.servers[j]) {
			for j = 0; holds(chosen, t.servers[j]); j++ {
			}
		}
		dst = append(dst, t.servers[j])
	}
	return dst
}

func anyLive(list []*server) bool {
	for _, s := range list {
		if !s.down.Load() {
			return true
		}
	}
	return false
}

func holds(list []*server, s *server) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// gutterFor returns key's gutter server, or nil when there is no gutter
// or no live gutter server.
func (t *topology) gutterFor(key string) *server {
	if len(t.gutter) == 0 {
		return nil
	}
	s := t.gutter[t.gsel.pick(key)]
	if !s.down.Load() {
		return s
	}
	i := t.gsel.pickLive(key, func(i int) bool { return t.gutter[i].down.Load() })
	if i < 0 {
		return nil
	}
	return t.gutter[i]
}

// doOn runs r on s and returns its outcome; owned reports whether r is
// still the caller's.
func (c *Client) doOn(ctx context.Context, s *server, r *request, now, deadline time.Time) (owned bool, err error) {
	var ab [1]bool
	reqs := [1]*request{r}
	op, out := r.op, 0
	if r.item != nil {
		out = len(r.item.Value)
	}
	if err := c.roundTrip(ctx, s, now, deadline, reqs[:], ab[:]); err != nil {
		if c.cfg.Observer != nil {
			c.observe(ctx, s, op.String(), now, 1, 0, out, err)
		}
		return !ab[0], err
	}
	if r.err != nil {
		if se := (*ServerError)(nil); errors.As(r.err, &se) {
			s.errors.Add(1)
		}
	}
	if c.cfg.Observer != nil {
		in := 0
		if r.resItem != nil {
			in = len(r.resItem.Value)
		} else if r.resLease.Item != nil {
			in = len(r.resLease.Item.Value)
		}
		c.observe(ctx, s, op.String(), now, 1, in, out, r.err)
	}
	return true, r.err
}

// budget is how long a key's own servers get when a gutter stands behind
// them: half the time left, so that a server that does not answer (frozen,
// partitioned) leaves the other half for the gutter ("Scaling Memcache at
// Facebook": no response means go to the gutter). Without a gutter, all.
func (t *topology) budget(now, deadline time.Time) time.Time {
	if len(t.gutter) == 0 {
		return deadline
	}
	return now.Add(deadline.Sub(now) / 2)
}

// tryOn runs r on s until budget, before the call's deadline: on a
// clone when the budget is shorter, so that r stays the caller's, to go
// to the gutter, if s does not answer in time. owned is as doOn's.
func (c *Client) tryOn(ctx context.Context, s *server, r *request, now, budget, deadline time.Time) (owned bool, err error) {
	if !budget.Before(deadline) {
		return c.doOn(ctx, s, r, now, deadline)
	}
	x := r.clone()
	owned, err = c.doOn(ctx, s, x, now, budget)
	if !owned {
		return true, err // x is the connection's; r is still ours
	}
	r.takeResults(x)
	putRequest(x)
	return true, err
}

// isTransport reports whether err says the server did not (or may not
// have) done the operation: a timeout, a broken or refused connection, a
// protocol error, a server down. Outcomes (a miss, not stored, a CAS
// conflict) and error replies are not.
func isTransport(err error) bool {
	if err == nil {
		return false
	}
	for _, outcome := range []error{ErrCacheMiss, ErrNotStored, ErrCASConflict, ErrValueTooLarge, ErrMalformedKey, ErrNotSupported, ErrClosed} {
		if errors.Is(err, outcome) {
			return false
		}
	}
	var se *ServerError
	return !errors.As(err, &se)
}

// alive reports whether a caller with this ctx and deadline can still try
// another server.
func alive(ctx context.Context, deadline time.Time) bool {
	return ctx.Err() == nil && time.Now().Before(deadline)
}

// do runs one single-key request and returns its outcome. owned reports
// whether r is still the caller's (it is not once abandoned).
func (c *Client) do(ctx context.Context, r *request) (owned bool, err error) {
	t := c.topo.Load()
	now, deadline := c.times(ctx)
	if t.simple {
		s, err := c.serverFor(t, r.key)
		if err != nil {
			if r.op.invalidates() && len(t.servers) > 0 {
				t.servers[t.sel.pick(r.key)].owe(r.key) // invalidations are not lost
			}
			return true, err
		}
		op, key := r.op, r.key // r is not ours once abandoned
		owned, err = c.doOn(ctx, s, r, now, deadline)
		if isTransport(err) && op.invalidates() {
			s.owe(key) // invalidations are not lost
		}
		return owned, err
	}
	var buf [8]*server
	owners := t.owners(r.key, buf[:0])
	if len(owners) == 0 {
		return true, ErrNoServers
	}
	switch r.op.kind() {
	case kindRead:
		return c.routeRead(ctx, t, r, owners, now, deadline)
	case kindFirst:
		return c.routeFirst(ctx, t, r, owners, now, deadline)
	case kindCAS:
		return c.routeCAS(ctx, t, r, owners, now, deadline)
	default:
		return c.routeAll(ctx, t, r, owners, now, deadline)
	}
}

// routeRead reads r's key from one live owner, falling back to the others
// on a failure or a miss, then to the previous server while warming up,
// then to the gutter when no owner answered.
func (c *Client) routeRead(ctx context.Context, t *topology, r *request, owners []*server, now, deadline time.Time) (bool, error) {
	start := 0
	if len(owners) > 1 {
		start = rand.IntN(len(owners))
	}
	var lastErr error
	missed := false
	budget := t.budget(now, deadline)
	for i := range owners {
		s := owners[(start+i)%len(owners)]
		if s.down.Load() {
			if lastErr == nil {
				lastErr = s.unavailable()
			}
			continue
		}
		r.reset()
		owned, err := c.tryOn(ctx, s, r, now, budget, deadline)
		switch {
		case !owned:
			return false, err
		case err == nil:
			if len(owners) > 1 {
				r.resItem.from = s
			}
			return true, nil
		case errors.Is(err, ErrCacheMiss):
			missed = true
		case !isTransport(err):
			return true, err
		default:
			lastErr = err
		}
		if !alive(ctx, deadline) {
			return true, err
		}
	}
	if missed {
		if t.warming(now.UnixNano()) {
			return c.warmRead(ctx, t, r, owners, now, deadline)
		}
		return true, ErrCacheMiss
	}
	g := t.gutterFor(r.key)
	if g == nil || !alive(ctx, deadline) {
		return true, lastErr
	}
	r.reset()
	c.clampForGutter(r)
	return c.doOn(ctx, g, r, now, deadline)
}

// routeFirst runs r on the first live owner, or the gutter when none is
// live (or it failed); with replicas, a value stored by Add or Replace is
// then copied to the other live owners.
func (c *Client) routeFirst(ctx context.Context, t *topology, r *request, owners []*server, now, deadline time.Time) (bool, error) {
	var target *server
	for _, s := range owners {
		if !s.down.Load() {
			target = s
			break
		}
		if r.op.changes() {
			s.oweIfBypassed(r.key)
		}
	}
	var err error
	if target != nil {
		var owned bool
		owned, err = c.tryOn(ctx, target, r, now, t.budget(now, deadline), deadline)
		if !owned {
			return false, err
		}
		if err == nil && r.op == opLease && r.resLease.Won && r.resLease.Placeholder() && t.warming(now.UnixNano()) {
			c.warmLease(ctx, t, r, target, now, deadline)
		}
		if !isTransport(err) {
			if err == nil && r.item != nil && len(owners) > 1 {
				err = c.copyValue(ctx, owners, target, r.item, now, deadline)
			}
			return true, err
		}
		if len(t.gutter) == 0 || !alive(ctx, deadline) {
			return true, err
		}
		if r.op.changes() {
			target.owe(r.key) // it may hold it, or an older value: replay a delete
		}
	} else {
		err = owners[0].unavailable()
	}
	g := t.gutterFor(r.key)
	if g == nil {
		return true, err
	}
	r.reset()
	c.clampForGutter(r)
	return c.doOn(ctx, g, r, now, deadline)
}

// routeCAS runs a CompareAndSwap on the owner whose CAS value the item
// holds, and copies the new value to the other live owners.
func (c *Client) routeCAS(ctx context.Context, t *topology, r *request, owners []*server, now, deadline time.Time) (bool, error) {
	target := owners[0]
	if from := r.item.from; from != nil && holds(owners, from) {
		target = from
	}
	if target.down.Load() {
		return true, target.unavailable()
	}
	owned, err := c.doOn(ctx, target, r, now, deadline)
	if !owned {
		return false, err
	}
	if err == nil && len(owners) > 1 {
		err = c.copyValue(ctx, owners, target, r.item, now, deadline)
	}
	return true, err
}

// copyValue sets item on every live owner but from, in parallel; an owner
// that fails, or is bypassed, is owed a delete. It returns the failures,
// each naming its server.
func (c *Client) copyValue(ctx context.Context, owners []*server, from *server, item *Item, now, deadline time.Time) error {
	batches := make(map[*server]*batch, len(owners))
	for _, s := range owners {
		if s == from || s.oweIfBypassed(item.Key) {
			continue
		}
		r := getRequest(opSet)
		r.key, r.item, r.exp = item.Key, item, expiration(item.TTL, c.now)
		batches[s] = &batch{srv: s, keys: []string{item.Key}, reqs: []*request{r}}
	}
	err, _ := c.allOutcome(ctx, batches, item.Key, now, deadline, nil, nil)
	return err
}

// routeAll runs r on every live owner in parallel (writes, touches,
// relative writes). A bypassed owner is owed a delete when r changes the
// value; with no live owner, writes and touches go to the gutter.
func (c *Client) routeAll(ctx context.Context, t *topology, r *request, owners []*server, now, deadline time.Time) (bool, error) {
	kind := r.op.kind()
	if kind == kindRelative && !anyLive(owners) {
		return true, owners[0].unavailable() // nothing changes: nothing owed
	}
	var live []*server
	for _, s := range owners {
		if kind != kindTouch && s.oweIfBypassed(r.key) {
			continue
		}
		if !s.down.Load() {
			live = append(live, s)
		}
	}
	warm := t.warming(now.UnixNano()) && kind == kindWrite
	if len(live) == 1 && !warm {
		op, key := r.op, r.key // r is not ours once abandoned
		owned, err := c.tryOn(ctx, live[0], r, now, t.budget(now, deadline), deadline)
		if !owned || !isTransport(err) {
			return owned, err
		}
		if len(owners) > 1 || (!op.invalidates() && len(t.gutter) == 0) {
			return true, err
		}
		if op.changes() {
			live[0].owe(key) // invalidations are not lost; writes meant for it wait in the gutter
		}
		g := t.gutterFor(key)
		if g == nil || kind != kindWrite || !alive(ctx, deadline) {
			return true, err
		}
		r.reset()
		c.clampForGutter(r)
		return c.doOn(ctx, g, r, now, deadline)
	}
	if len(live) == 0 {
		g := t.gutterFor(r.key)
		if g == nil || kind == kindRelative {
			return true, owners[0].unavailable()
		}
		c.clampForGutter(r)
		return c.doOn(ctx, g, r, now, deadline)
	}
	// Several owners, or a warm-up: one request per server, in parallel;
	// r itself carries the first owner's outcome.
	batches := make(map[*server]*batch, len(live)+1)
	for i, s := range live {
		x := r
		if i > 0 {
			x = r.clone()
		}
		batches[s] = &batch{srv: s, keys: []string{r.key}, reqs: []*request{x}}
	}
	if warm {
		c.warmWrite(t, r, owners, batches)
	}
	ignore := error(nil)
	if r.op == opDelete || r.op == opInvalidate {
		ignore = ErrCacheMiss // gone from one owner: gone
	}
	err, missed := c.allOutcome(ctx, batches, r.key, now, deadline, ignore, r)
	if b := batches[live[0]]; b.cn != nil && b.ab[0] {
		return false, err
	}
	if err == nil && missed {
		err = ErrCacheMiss
	}
	return true, err
}

// allOutcome runs batches of one request each (an operation on one key,
// one server each) and combines their outcomes: nil when all succeeded;
// the first outcome (a miss, not stored) otherwise, with every server that
// failed named. A server that failed a value-changing op is owed a
// delete. Batches marked aside (warm-up's deletes on previous servers)
// count for nothing but that. Every request is recycled except keep (the
// caller's own) and the abandoned ones.
//
// allIgnored reports whether every request that counts ended with ignore.
func (c *Client) allOutcome(ctx context.Context, batches map[*server]*batch, key string, now, deadline time.Time, ignore error, keep *request) (err error, allIgnored bool) {
	if len(batches) == 0 {
		return nil, false
	}
	c.runAll(ctx, batches, now, deadline)
	var failed []error
	var outcome error
	allIgnored = ignore != nil
	for s, b := range batches {
		r := b.reqs[0]
		var err error
		switch {
		case b.cn == nil:
			err = b.err
		case b.ab[0]:
			err = b.err
		default:
			err = r.err
		}
		if !b.aside && !errors.Is(err, ignore) {
			allIgnored = false
		}
		if isTransport(err) {
			if (r.op.invalidates() || r.op.changes() && len(batches) > 1) && !s.gutter {
				s.owe(key)
			}
			if !b.aside {
				failed = append(failed, err)
			}
		} else if err != nil && !b.aside && !errors.Is(err, ignore) && outcome == nil {
			outcome = err
		}
		if c.cfg.Observer != nil {
			c.observe(ctx, s, r.op.String(), now, 1, 0, 0, err)
		}
		if r != keep && (b.cn == nil || !b.ab[0]) {
			putRequest(r)
		}
	}
	if len(failed) > 0 {
		return &ReplicaError{Key: key, Errs: failed, Outcome: outcome}, false
	}
	return outcome, allIgnored
}

// ReplicaError reports a write to a key's replicas that some of them
// failed: the others have it. Errs names each server that failed.
type ReplicaError struct {
	Key     string
	Errs    []error // one per failed server, each naming it
	Outcome error   // the outcome from the servers that answered, if not success
}

func (e *ReplicaError) Error() string {
	msg := fmt.Sprintf("memclient: %d replica(s) of %q failed: %v", len(e.Errs), e.Key, errors.Join(e.Errs...))
	if e.Outcome != nil {
		msg += "; the others: " + e.Outcome.Error()
	}
	return msg
}

// Unwrap returns the failures and the outcome, for errors.Is.
func (e *ReplicaError) Unwrap() []error {
	if e.Outcome != nil {
		return append(e.Errs[:len(e.Errs):len(e.Errs)], e.Outcome)
	}
	return e.Errs
}

// clampForGutter bounds r's TTLs for the gutter: GutterTTL at most, and
// GutterTTL for the ones that would never expire.
func (c *Client) clampForGutter(r *request) {
	g := c.cfg.gutterTTL()
	if g >= 2*time.Second {
		// memcached's clock ticks once a second, and a late tick keeps an
		// item a little longer than its TTL: a second less keeps every
		// value served from the gutter younger than GutterTTL.
		g -= time.Second
	}
	clamp := func(ttl time.Duration) time.Duration {
		if ttl <= 0 || ttl > g {
			return g
		}
		return ttl
	}
	switch {
	case r.item != nil:
		r.exp = expiration(clamp(r.item.TTL), c.now)
	case r.op == opGAT, r.op == opTouch:
		r.exp = expiration(clamp(r.ttl), c.now)
	case r.op == opLease:
		if r.lease.VivifyTTL > 0 {
			r.lease.VivifyTTL = clamp(r.lease.VivifyTTL)
		}
		if r.lease.Touch {
			r.exp = expiration(clamp(r.lease.TouchTTL), c.now)
		}
	case r.op == opInvalidate && r.exp != 0:
		r.exp = expiration(clamp(r.ttl), c.now)
	}
}
