package memclient

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// multiChunk bounds the keys in one gets line; a larger GetMulti sends
// several lines in one batch.
const multiChunk = 100

// batch is the requests bound for one server.
type batch struct {
	srv  *server
	keys []string // the batch's keys, in order
	reqs []*request
	// asked[i] is the keys reqs[i] asks for: the caller's own copy, since
	// an abandoned request is no longer the caller's to read.
	asked [][]string
	cn    *conn     // where reqs were queued; nil if that failed
	snt   sent      // when
	err   error     // why reqs were not queued, or the first wait that failed
	ab    []bool    // which requests were abandoned
	aside bool      // on the side of the call (warm-up's deletes): its outcome does not count
	done  time.Time // when its replies were all in; set with an Observer
}

// group splits keys by server in a simple topology. Keys whose server is
// unavailable (or that are malformed) go straight into errs.
func (c *Client) group(t *topology, keys []string, errs MultiError) map[*server]*batch {
	batches := make(map[*server]*batch)
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			errs[k] = err
			continue
		}
		s, err := c.serverFor(t, k)
		if err != nil {
			errs[k] = err
			continue
		}
		addKey(batches, s, k)
	}
	return batches
}

// addKey adds key to s's batch.
func addKey(batches map[*server]*batch, s *server, key string) *batch {
	b := batches[s]
	if b == nil {
		b = &batch{srv: s}
		batches[s] = b
	}
	b.keys = append(b.keys, key)
	return b
}

// GetMulti returns the items found for keys, by key; missing keys are
// absent from the map. Keys are grouped by server, each group sent as one
// pipelined batch of "gets" lines (in both protocols: memcached serves a
// multi-key gets faster than the same keys as meta commands), servers in
// parallel. With Replicas, Gutter or WarmUp each key is read as Get reads
// it (one replica, falling back to the others, then the gutter), in as
// many rounds as that takes. If some keys fail (a down server, a timeout,
// a malformed key, a value over MaxItemSize) it returns the items of the
// others together with a MultiError naming exactly the failed keys.
func (c *Client) GetMulti(ctx context.Context, keys []string) (map[string]*Item, error) {
	t := c.topo.Load()
	if len(t.servers) == 0 {
		return nil, ErrNoServers
	}
	now, deadline := c.times(ctx)
	errs := make(MultiError)
	out := make(map[string]*Item, len(keys))
	if t.simple {
		c.getOnce(ctx, c.group(t, keys, errs), now, deadline, out, errs, false)
	} else {
		c.getRouted(ctx, t, keys, now, deadline, out, errs)
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

// getOnce gets the batches' keys, chunked into gets lines, and sorts the
// answers: items found into out, keys that failed into failed; a key in
// neither missed. from marks each item with the server that served it.
func (c *Client) getOnce(ctx context.Context, batches map[*server]*batch, now, deadline time.Time, out map[string]*Item, failed MultiError, from bool) {
	for _, b := range batches {
		for i := 0; i < len(b.keys); i += multiChunk {
			r := getRequest(opGetMulti)
			r.keys = b.keys[i:min(i+multiChunk, len(b.keys))]
			b.reqs = append(b.reqs, r)
			b.asked = append(b.asked, r.keys)
		}
	}
	c.runAll(ctx, batches, now, deadline)
	for _, b := range batches {
		in := 0
		for i, r := range b.reqs {
			if b.cn == nil || b.ab[i] {
				// Not sent, or given up: r is not ours to read.
				for _, k := range b.asked[i] {
					failed[k] = b.err
				}
				if b.cn == nil {
					putRequest(r)
				}
				continue
			}
			for _, it := range r.resItems {
				if from {
					it.from = b.srv
				}
				out[it.Key] = it
				in += len(it.Value)
			}
			for k, err := range r.keyErrs {
				failed[k] = err
			}
			if r.err != nil {
				for _, k := range b.asked[i] {
					if _, ok := out[k]; !ok {
						failed[k] = r.err
					}
				}
			}
			putRequest(r)
		}
		if c.cfg.Observer != nil {
			c.observe(ctx, b.srv, "get_multi", now, len(b.keys), in, 0, batchErr(b))
		}
	}
}

// batchErr is the error that failed a whole batch, if one did: not sent,
// or a wait given up. Keys that failed alone are not the batch's failure.
func batchErr(b *batch) error {
	if b.cn == nil {
		return b.err
	}
	for _, ab := range b.ab {
		if ab {
			return b.err
		}
	}
	return nil
}

// readState is one key's progress through its owners in getRouted.
type readState struct {
	owners      []*server
	start, next int   // owners are tried from start, next of them so far
	missed      bool  // an owner answered that it has no item
	err         error // the last failure
	gutterTried bool
}

// nextLive returns the next owner to try, or nil when none is left.
func (st *readState) nextLive() *server {
	for st.next < len(st.owners) {
		s := st.owners[(st.start+st.next)%len(st.owners)]
		st.next++
		if !s.down.Load() {
			return s
		}
		if st.err == nil {
			st.err = s.unavailable()
		}
	}
	return nil
}

// getRouted is GetMulti over replicas, the gutter and a warm-up: each
// round asks every unanswered key of its next live owner (or, when it has
// none left and none said it missed, of the gutter), until every key is
// found, missed, or failed.
func (c *Client) getRouted(ctx context.Context, t *topology, keys []string, now, deadline time.Time, out map[string]*Item, errs MultiError) {
	states := make(map[string]*readState, len(keys))
	var pending []string
	for _, k := range keys {
		if _, dup := states[k]; dup {
			continue
		}
		if err := checkKey(k); err != nil {
			errs[k] = err
			continue
		}
		st := &readState{owners: t.owners(k, nil)}
		if len(st.owners) > 1 {
			st.start = rand.IntN(len(st.owners))
		}
		states[k] = st
		pending = append(pending, k)
	}
	var missed []string
	for len(pending) > 0 {
		batches := make(map[*server]*batch)
		var asked []string
		for _, k := range pending {
			st := states[k]
			if s := st.nextLive(); s != nil {
				addKey(batches, s, k)
				asked = append(asked, k)
				continue
			}
			if st.missed {
				missed = append(missed, k)
				continue
			}
			if g := t.gutterFor(k); g != nil && !st.gutterTried && alive(ctx, deadline) {
				st.gutterTried = true
				addKey(batches, g, k)
				asked = append(asked, k)
				continue
			}
			if st.err == nil {
				st.err = st.owners[0].unavailable()
			}
			errs[k] = st.err
		}
		if len(batches) == 0 {
			break
		}
		found := make(map[string]*Item)
		failed := make(MultiError)
		c.getOnce(ctx, batches, now, t.budget(time.Now(), deadline), found, failed, t.replicas > 1)
		pending = pending[:0]
		for _, k := range asked {
			st := states[k]
			if it, ok := found[k]; ok {
				out[k] = it
				continue
			}
			err, isErr := failed[k]
			switch {
			case isErr && !isTransport(err):
				errs[k] = err
				continue
			case isErr:
				st.err = err
			case st.gutterTried:
				continue // the gutter missed: a miss
			default:
				st.missed = true
			}
			if !alive(ctx, deadline) {
				if isErr {
					errs[k] = err
				}
				continue
			}
			pending = append(pending, k)
		}
	}
	if len(missed) > 0 && t.warming(now.UnixNano()) {
		c.warmMulti(ctx, t, missed, now, deadline, out)
	}
}

// runAll queues every batch, then waits for all of them: servers work in
// parallel without a goroutine per server.
func (c *Client) runAll(ctx context.Context, batches map[*server]*batch, now, deadline time.Time) {
	for _, b := range batches {
		b.ab = make([]bool, len(b.reqs))
		b.cn, b.snt, b.err = c.start(ctx, b.srv, now, deadline, b.reqs)
	}
	for _, b := range batches {
		if b.cn != nil {
			b.err = c.finish(ctx, b.srv, b.cn, b.snt, deadline, b.reqs, b.ab)
		}
		if c.cfg.Observer != nil {
			b.done = time.Now()
		}
	}
}

// SetMulti stores every item (a set each), pipelined per server, servers
// in parallel, each routed as Set routes it. Items that fail are reported
// in a MultiError by key; the others are stored.
func (c *Client) SetMulti(ctx context.Context, items []*Item) error {
	errs := make(MultiError)
	keys := make([]string, 0, len(items))
	byKey := make(map[string]*Item, len(items))
	for _, it := range items {
		if it == nil {
			return errors.New("memclient: nil item")
		}
		if len(it.Value) > c.cfg.maxItemSize() {
			errs[it.Key] = fmt.Errorf("%w: %d bytes (MaxItemSize %d)", ErrValueTooLarge, len(it.Value), c.cfg.maxItemSize())
			continue
		}
		if _, dup := byKey[it.Key]; !dup {
			keys = append(keys, it.Key)
		}
		byKey[it.Key] = it // the last item for a key wins, as with sequential sets
	}
	return c.writeMulti(ctx, keys, errs, func(k string) *request {
		it := byKey[k]
		r := getRequest(opSet)
		r.key, r.item, r.exp = k, it, expiration(it.TTL, c.now)
		return r
	}, nil)
}

// DeleteMulti deletes keys, pipelined per server, servers in parallel,
// each routed as Delete routes it. Keys that do not exist are not errors;
// failures are reported in a MultiError by key.
func (c *Client) DeleteMulti(ctx context.Context, keys []string) error {
	return c.writeMulti(ctx, keys, make(MultiError), func(k string) *request {
		r := getRequest(opDelete)
		r.key = k
		return r
	}, ErrCacheMiss)
}

// writeMulti runs a write for each key (a request from newReq) on every
// server the key's write goes to, and reports the keys that failed in
// errs, outcomes equal to ignore aside. A server that failed a key, or
// was bypassed, is owed its delete.
func (c *Client) writeMulti(ctx context.Context, keys []string, errs MultiError, newReq func(string) *request, ignore error) error {
	t := c.topo.Load()
	if len(t.servers) == 0 {
		return ErrNoServers
	}
	now, deadline := c.times(ctx)
	batches := make(map[*server]*batch)
	aside := make(map[*request]bool) // warm-up's deletes on previous servers
	add := func(s *server, k string, r *request) {
		b := addKey(batches, s, k)
		b.reqs = append(b.reqs, r)
	}
	var owners []*server
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			errs[k] = err
			continue
		}
		if t.simple {
			s, err := c.serverFor(t, k)
			if err != nil {
				errs[k] = err
				r := newReq(k)
				if r.op.invalidates() {
					t.servers[t.sel.pick(k)].owe(k) // invalidations are not lost
				}
				putRequest(r)
				continue
			}
			add(s, k, newReq(k))
			continue
		}
		owners = t.owners(k, owners[:0])
		live := 0
		for _, s := range owners {
			if s.oweIfBypassed(k) {
				continue
			}
			add(s, k, newReq(k))
			live++
		}
		if live == 0 {
			g := t.gutterFor(k)
			if g == nil {
				errs[k] = owners[0].unavailable()
				continue
			}
			r := newReq(k)
			c.clampForGutter(r)
			add(g, k, r)
		}
		if t.warming(now.UnixNano()) {
			if prev, err := c.serverFor(t.prev, k); err == nil && !holds(owners, prev) {
				r := getRequest(opDelete)
				r.key = k
				aside[r] = true
				add(prev, k, r)
			}
		}
	}
	c.runAll(ctx, batches, now, deadline)
	for _, b := range batches {
		if c.cfg.Observer != nil && len(b.reqs) > 0 {
			out := 0
			for _, r := range b.reqs {
				if r.item != nil && (b.cn == nil || !b.ab[0]) {
					out += len(r.item.Value)
				}
			}
			c.observe(ctx, b.srv, b.reqs[0].op.String(), now, len(b.keys), 0, out, batchErr(b))
		}
		for i, r := range b.reqs {
			k := b.keys[i]
			var err error
			switch {
			case b.cn == nil:
				err = b.err
			case b.ab[i]:
				err = b.err // r is not ours to read
			default:
				err = r.err
			}
			if isTransport(err) && !b.srv.gutter && (r.op.invalidates() || len(t.gutter) > 0 && r.op.changes()) {
				b.srv.owe(k) // invalidations are not lost; with a gutter, nor are writes
			}
			if err != nil && !aside[r] && !errors.Is(err, ignore) {
				if _, ok := errs[k]; !ok {
					errs[k] = err
				}
			}
			if b.cn == nil || !b.ab[i] {
				putRequest(r)
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// finishSingles runs batches of one-key requests (reqs[i] for keys[i])
// and collects their errors, outcomes equal to ignore aside.
func (c *Client) finishSingles(ctx context.Context, batches map[*server]*batch, errs MultiError, ignore error) error {
	now, deadline := c.times(ctx)
	c.runAll(ctx, batches, now, deadline)
	for _, b := range batches {
		for i, r := range b.reqs {
			k := b.keys[i]
			switch {
			case b.cn == nil:
				errs[k] = b.err
				putRequest(r)
			case b.ab[i]:
				errs[k] = b.err // r is not ours to read
			default:
				if r.err != nil && !errors.Is(r.err, ignore) {
					errs[k] = r.err
				}
				putRequest(r)
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// perServer runs one request of op on every live server in parallel.
func (c *Client) perServer(ctx context.Context, op opcode, args []string) (map[string]*request, error) {
	t := c.topo.Load()
	if len(t.servers) == 0 {
		return nil, ErrNoServers
	}
	batches := make(map[*server]*batch, len(t.servers)+len(t.gutter))
	var errs []error
	for _, s := range append(t.servers[:len(t.servers):len(t.servers)], t.gutter...) {
		if s.down.Load() {
			errs = append(errs, s.unavailable())
			continue
		}
		r := getRequest(op)
		r.args = args
		batches[s] = &batch{srv: s, reqs: []*request{r}}
	}
	now, deadline := c.times(ctx)
	c.runAll(ctx, batches, now, deadline)
	out := make(map[string]*request, len(batches))
	for _, b := range batches {
		if c.cfg.Observer != nil {
			err := batchErr(b)
			if err == nil {
				err = b.reqs[0].err
			}
			c.observe(ctx, b.srv, op.String(), now, 0, 0, 0, err)
		}
		if b.ab[0] {
			errs = append(errs, b.err)
			continue
		}
		r := b.reqs[0]
		if err := b.err; err != nil {
			errs = append(errs, err)
			putRequest(r)
			continue
		}
		if r.err != nil {
			errs = append(errs, r.err)
			putRequest(r)
			continue
		}
		out[b.srv.addr] = r
	}
	return out, errors.Join(errs...)
}

// FlushAll invalidates every item on every server. It returns an error
// naming each server that could not be flushed.
func (c *Client) FlushAll(ctx context.Context) error {
	if c.cfg.BehindProxy {
		return errProxy
	}
	reqs, err := c.perServer(ctx, opFlushAll, nil)
	for _, r := range reqs {
		putRequest(r)
	}
	return err
}

// Stats returns each server's statistics, by server address: "stats" with
// no args, or "stats slabs", "stats items", ... Servers that fail are
// missing from the map and named in the error.
func (c *Client) Stats(ctx context.Context, args ...string) (map[string]map[string]string, error) {
	if c.cfg.BehindProxy {
		return nil, errProxy
	}
	for _, a := range args {
		if err := checkKey(a); err != nil {
			return nil, fmt.Errorf("memclient: bad stats argument %q", a)
		}
	}
	reqs, err := c.perServer(ctx, opStats, args)
	out := make(map[string]map[string]string, len(reqs))
	for addr, r := range reqs {
		out[addr] = r.stats
		putRequest(r)
	}
	return out, err
}
