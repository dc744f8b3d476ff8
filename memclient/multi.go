package memclient

import (
	"context"
	"errors"
	"fmt"
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
	cn    *conn  // where reqs were queued; nil if that failed
	snt   sent   // when
	err   error  // why reqs were not queued, or the first wait that failed
	ab    []bool // which requests were abandoned
}

// group splits keys by server. Keys whose server is unavailable (or that
// are malformed) go straight into errs.
func (c *Client) group(keys []string, errs MultiError) (map[*server]*batch, error) {
	t := c.topo.Load()
	if len(t.servers) == 0 {
		return nil, ErrNoServers
	}
	batches := make(map[*server]*batch)
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			errs[k] = err
			continue
		}
		s, err := c.serverFor(k)
		if err != nil {
			errs[k] = err
			continue
		}
		b := batches[s]
		if b == nil {
			b = &batch{srv: s}
			batches[s] = b
		}
		b.keys = append(b.keys, k)
	}
	return batches, nil
}

// GetMulti returns the items found for keys, by key; missing keys are
// absent from the map. Keys are grouped by server, each group sent as one
// pipelined batch of "gets" lines (in both protocols: memcached serves a
// multi-key gets faster than the same keys as meta commands), servers in
// parallel. If some keys fail (a down server, a timeout, a malformed key,
// a value over MaxItemSize) it returns the items of the others together
// with a MultiError naming exactly the failed keys.
func (c *Client) GetMulti(ctx context.Context, keys []string) (map[string]*Item, error) {
	errs := make(MultiError)
	batches, err := c.group(keys, errs)
	if err != nil {
		return nil, err
	}
	for _, b := range batches {
		for i := 0; i < len(b.keys); i += multiChunk {
			r := getRequest(opGetMulti)
			r.keys = b.keys[i:min(i+multiChunk, len(b.keys))]
			b.reqs = append(b.reqs, r)
			b.asked = append(b.asked, r.keys)
		}
	}
	c.runAll(ctx, batches)
	out := make(map[string]*Item, len(keys))
	for _, b := range batches {
		for i, r := range b.reqs {
			if b.cn == nil || b.ab[i] {
				// Not sent, or given up: r is not ours to read.
				for _, k := range b.asked[i] {
					errs[k] = b.err
				}
				if b.cn == nil {
					putRequest(r)
				}
				continue
			}
			for _, it := range r.resItems {
				out[it.Key] = it
			}
			for k, err := range r.keyErrs {
				errs[k] = err
			}
			if r.err != nil {
				for _, k := range b.asked[i] {
					if _, ok := out[k]; !ok {
						errs[k] = r.err
					}
				}
			}
			putRequest(r)
		}
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

// runAll queues every batch, then waits for all of them: servers work in
// parallel without a goroutine per server.
func (c *Client) runAll(ctx context.Context, batches map[*server]*batch) {
	now, deadline := c.times(ctx)
	for _, b := range batches {
		b.ab = make([]bool, len(b.reqs))
		b.cn, b.snt, b.err = c.start(ctx, b.srv, now, deadline, b.reqs)
	}
	for _, b := range batches {
		if b.cn != nil {
			b.err = c.finish(ctx, b.srv, b.cn, b.snt, deadline, b.reqs, b.ab)
		}
	}
}

// SetMulti stores every item (a set each), pipelined per server, servers
// in parallel. Items that fail are reported in a MultiError by key; the
// others are stored.
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
	batches, err := c.group(keys, errs)
	if err != nil {
		return err
	}
	for _, b := range batches {
		for _, k := range b.keys {
			it := byKey[k]
			r := getRequest(opSet)
			r.key, r.item, r.exp = k, it, expiration(it.TTL, c.now)
			b.reqs = append(b.reqs, r)
		}
	}
	return c.finishSingles(ctx, batches, errs, nil)
}

// DeleteMulti deletes keys, pipelined per server, servers in parallel.
// Keys that do not exist are not errors; failures are reported in a
// MultiError by key.
func (c *Client) DeleteMulti(ctx context.Context, keys []string) error {
	errs := make(MultiError)
	batches, err := c.group(keys, errs)
	if err != nil {
		return err
	}
	for _, b := range batches {
		for _, k := range b.keys {
			r := getRequest(opDelete)
			r.key = k
			b.reqs = append(b.reqs, r)
		}
	}
	return c.finishSingles(ctx, batches, errs, ErrCacheMiss)
}

// finishSingles runs batches of one-key requests (reqs[i] for keys[i])
// and collects their errors.
func (c *Client) finishSingles(ctx context.Context, batches map[*server]*batch, errs MultiError, ignore error) error {
	c.runAll(ctx, batches)
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
	batches := make(map[*server]*batch, len(t.servers))
	var errs []error
	for _, s := range t.servers {
		if s.down.Load() {
			errs = append(errs, s.unavailable())
			continue
		}
		r := getRequest(op)
		r.args = args
		batches[s] = &batch{srv: s, reqs: []*request{r}}
	}
	c.runAll(ctx, batches)
	out := make(map[string]*request, len(batches))
	for _, b := range batches {
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
