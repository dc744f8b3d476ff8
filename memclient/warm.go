package memclient

import (
	"context"
	"time"
)

// Warm-up (Config.WarmUp): for a while after SetServers, a key that
// misses on its server and lived on another before is read from that one
// and, on a hit, added to its server with the TTL it had. Writes meanwhile
// also delete the key on its previous server, so that warm-up never brings
// back a value deleted or overwritten since.

// movedFrom returns key's previous server during a warm-up, if the key
// moved: nil when it did not, or that server is down.
func (c *Client) movedFrom(t *topology, key string, owners []*server) *server {
	prev, err := c.serverFor(t.prev, key)
	if err != nil || holds(owners, prev) {
		return nil
	}
	return prev
}

// warmItem is a value found on a key's previous server.
type warmItem struct {
	item *Item
	ttl  time.Duration // what it had left; 0: never expires
}

// warmFetch reads keys from their previous servers, in one round trip per
// server, and returns the ones found (not placeholders of a lease).
func (c *Client) warmFetch(ctx context.Context, t *topology, keys []string, now, deadline time.Time) map[string]warmItem {
	batches := make(map[*server]*batch)
	var owners []*server
	for _, k := range keys {
		owners = t.owners(k, owners[:0])
		if prev := c.movedFrom(t, k, owners); prev != nil {
			b := addKey(batches, prev, k)
			b.reqs = append(b.reqs, c.leaseRequest(k, LeaseOptions{}))
		}
	}
	if len(batches) == 0 {
		return nil
	}
	c.runAll(ctx, batches, now, deadline)
	found := make(map[string]warmItem)
	for _, b := range batches {
		for i, r := range b.reqs {
			if b.cn != nil && b.ab[i] {
				continue // not ours to read
			}
			if b.cn != nil && r.err == nil {
				if r.op == opLease {
					l := r.resLease
					if !l.Won && !l.Pending && !l.Stale {
						found[b.keys[i]] = warmItem{item: l.Item, ttl: max(l.TTL, 0)}
					}
				} else {
					found[b.keys[i]] = warmItem{item: r.resItem, ttl: c.cfg.WarmUp} // text: TTL unknown
				}
			}
			putRequest(r)
		}
	}
	return found
}

// warmMulti serves keys that missed from their previous servers: each
// hit is added to the key's first live owner (Add, so a value set
// meanwhile wins) and put in out.
func (c *Client) warmMulti(ctx context.Context, t *topology, keys []string, now, deadline time.Time, out map[string]*Item) {
	found := c.warmFetch(ctx, t, keys, now, deadline)
	if len(found) == 0 {
		return
	}
	batches := make(map[*server]*batch)
	var owners []*server
	for k, w := range found {
		out[k] = &Item{Key: k, Value: w.item.Value, Flags: w.item.Flags}
		owners = t.owners(k, owners[:0])
		for _, s := range owners {
			if !s.down.Load() {
				r := getRequest(opAdd)
				r.key = k
				r.item = &Item{Key: k, Value: w.item.Value, Flags: w.item.Flags, TTL: w.ttl}
				r.exp = expiration(w.ttl, c.now)
				b := addKey(batches, s, k)
				b.reqs = append(b.reqs, r)
				break
			}
		}
	}
	_ = c.finishSingles(ctx, batches, make(MultiError), nil) // best effort
}

// warmRead serves a single-key miss from the key's previous server.
func (c *Client) warmRead(ctx context.Context, t *topology, r *request, owners []*server, now, deadline time.Time) (bool, error) {
	out := make(map[string]*Item, 1)
	c.warmMulti(ctx, t, []string{r.key}, now, deadline, out)
	it := out[r.key]
	if it == nil {
		return true, ErrCacheMiss
	}
	r.resItem, r.err = it, nil
	return true, nil
}

// warmLease completes a lease won on a placeholder with the value the
// key's previous server has: the value goes into the placeholder by CAS,
// and the caller gets it instead of the duty to load it.
func (c *Client) warmLease(ctx context.Context, t *topology, r *request, target *server, now, deadline time.Time) {
	w, ok := c.warmFetch(ctx, t, []string{r.key}, now, deadline)[r.key]
	if !ok {
		return
	}
	it := &Item{Key: r.key, Value: w.item.Value, Flags: w.item.Flags, TTL: w.ttl, CAS: r.resLease.Item.CAS}
	x := getRequest(opCAS)
	x.key, x.item, x.exp = r.key, it, expiration(w.ttl, c.now)
	owned, err := c.doOn(ctx, target, x, now, deadline)
	if owned {
		putRequest(x)
	}
	if err != nil {
		return // someone else filled it, or it failed: the lease stands
	}
	r.resLease = Lease{Item: &Item{Key: r.key, Value: w.item.Value, Flags: w.item.Flags}, TTL: w.ttl}
	if w.ttl == 0 {
		r.resLease.TTL = -1
	}
}

// warmWrite puts beside a write's batches a delete (an invalidation for
// an invalidation) of the key on its previous server, if it moved; its
// outcome does not count.
func (c *Client) warmWrite(t *topology, r *request, owners []*server, batches map[*server]*batch) {
	prev := c.movedFrom(t, r.key, owners)
	if prev == nil || batches[prev] != nil {
		return
	}
	x := getRequest(opDelete)
	if r.op == opInvalidate {
		x = getRequest(opInvalidate)
		x.exp, x.ttl = r.exp, r.ttl
	}
	x.key = r.key
	batches[prev] = &batch{srv: prev, keys: []string{r.key}, reqs: []*request{x}, aside: true}
}
