package memclient

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// LeaseOptions configure GetLease.
type LeaseOptions struct {
	// VivifyTTL, when positive, makes a miss create an empty placeholder
	// item with this TTL and hand this caller the lease (Won); callers
	// after it see Pending until the winner stores the value.
	VivifyTTL time.Duration
	// RecacheTTL, when positive, hands one caller the lease (Won) when the
	// item's remaining TTL drops below it, while every caller still gets
	// the current value: early refresh.
	RecacheTTL time.Duration
	// Touch, when set, makes the read set the item's TTL to TouchTTL, as
	// GetAndTouch does (a TouchTTL of 0 or less: never expires).
	Touch    bool
	TouchTTL time.Duration
}

// leases reports whether opts ask for a lease, which needs the meta
// protocol; a touch alone does not.
func (opts LeaseOptions) leases() bool { return opts.VivifyTTL > 0 || opts.RecacheTTL > 0 }

// Lease is the answer to GetLease and GetLeaseMulti: the item and what the
// server says of it.
type Lease struct {
	// Item is the item found, or the empty placeholder created by
	// VivifyTTL (Value empty, Flags 0). Its CAS completes the lease through
	// CompareAndSwap.
	Item *Item
	// Won means this caller must load the value and store it.
	Won bool
	// Stale means the item was invalidated (Invalidate) and its value is
	// out of date.
	Stale bool
	// Pending means another caller already holds the lease.
	Pending bool
	// TTL is the item's remaining time to live; -1 means none. The text
	// protocol does not report it: there it is 0.
	TTL time.Duration
}

// Placeholder reports whether the item is the empty placeholder made by
// VivifyTTL rather than a stored value.
func (l *Lease) Placeholder() bool {
	return l.Item != nil && len(l.Item.Value) == 0 && l.Item.Flags == 0 && (l.Won || l.Pending) && !l.Stale
}

// GetLease is a get that coordinates refills across every process sharing
// the cluster, with the meta protocol's leases (mg with N and R flags): of
// all callers that find the key cold, expiring, or invalidated, exactly one
// gets Won. It returns ErrCacheMiss for a miss without VivifyTTL, and
// ErrNotSupported on the text protocol.
func (c *Client) GetLease(ctx context.Context, key string, opts LeaseOptions) (*Lease, error) {
	return c.getLease(ctx, key, opts)
}

// LeaseRequest is one key of a GetLeaseMulti, with its own options.
type LeaseRequest struct {
	Key string
	LeaseOptions
}

// GetLeaseMulti reads many keys, each with its own options, in one
// pipelined round trip per server, servers in parallel: GetLease for many
// keys, or a mix of leases and plain reads (the zero LeaseOptions), with
// touches. It returns a Lease for each key found or vivified, by key; a
// miss is absent, and a key asked for twice is read once, with its last
// options. If some keys fail it returns the others' leases together with
// a MultiError naming the failed keys. On the text protocol, requests
// without VivifyTTL or RecacheTTL work (a get, or with Touch a gat);
// any other makes the call return ErrNotSupported before sending anything.
func (c *Client) GetLeaseMulti(ctx context.Context, reqs []LeaseRequest) (map[string]*Lease, error) {
	meta := c.cfg.Protocol == ProtocolMeta
	keys := make([]string, 0, len(reqs))
	opts := make(map[string]LeaseOptions, len(reqs))
	for _, rq := range reqs {
		if !meta && rq.leases() {
			return nil, errNeedsMeta
		}
		if c.cfg.BehindProxy && rq.Touch {
			return nil, errProxy
		}
		if _, dup := opts[rq.Key]; !dup {
			keys = append(keys, rq.Key)
		}
		opts[rq.Key] = rq.LeaseOptions
	}
	t := c.topo.Load()
	if len(t.servers) == 0 {
		return nil, ErrNoServers
	}
	now, deadline := c.times(ctx)
	errs := make(MultiError)
	out := make(map[string]*Lease, len(keys))
	var batches map[*server]*batch
	if t.simple {
		batches = c.group(t, keys, errs)
		for _, b := range batches {
			for _, k := range b.keys {
				b.reqs = append(b.reqs, c.leaseRequest(k, opts[k]))
			}
		}
	} else {
		batches = c.routeLeases(t, keys, opts, errs)
	}
	retry := c.collectLeases(ctx, t, batches, now, deadline, out, errs)
	if len(retry) > 0 && alive(ctx, deadline) {
		// Keys whose owner failed: the gutter, once.
		batches = make(map[*server]*batch)
		for _, k := range retry {
			if g := t.gutterFor(k); g != nil {
				delete(errs, k)
				r := c.leaseRequest(k, opts[k])
				c.clampForGutter(r)
				b := addKey(batches, g, k)
				b.reqs = append(b.reqs, r)
			}
		}
		c.collectLeases(ctx, t, batches, now, deadline, out, errs)
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

// routeLeases batches the keys of a GetLeaseMulti over replicas and the
// gutter: a lease goes to the key's first live owner, a plain read to a
// live owner chosen at random, and a key with no live owner to the gutter.
func (c *Client) routeLeases(t *topology, keys []string, opts map[string]LeaseOptions, errs MultiError) map[*server]*batch {
	batches := make(map[*server]*batch)
	var owners []*server
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			errs[k] = err
			continue
		}
		owners = t.owners(k, owners[:0])
		start := 0
		if !opts[k].leases() && len(owners) > 1 {
			start = rand.IntN(len(owners))
		}
		var target *server
		for i := range owners {
			if s := owners[(start+i)%len(owners)]; !s.down.Load() {
				target = s
				break
			}
		}
		r := c.leaseRequest(k, opts[k])
		if target == nil {
			if target = t.gutterFor(k); target == nil {
				errs[k] = owners[0].unavailable()
				putRequest(r)
				continue
			}
			c.clampForGutter(r)
		}
		b := addKey(batches, target, k)
		b.reqs = append(b.reqs, r)
	}
	return batches
}

// collectLeases runs the batches of a GetLeaseMulti and sorts the
// answers into out and errs; it returns the keys whose server failed,
// for the gutter, and fills leases won on a placeholder from the key's
// previous server during a warm-up.
func (c *Client) collectLeases(ctx context.Context, t *topology, batches map[*server]*batch, now, deadline time.Time, out map[string]*Lease, errs MultiError) (retry []string) {
	c.runAll(ctx, batches, now, deadline)
	warming := t.warming(now.UnixNano())
	var missed []string
	for _, b := range batches {
		if c.cfg.Observer != nil {
			c.observe(ctx, b.srv, "lease", now, len(b.keys), 0, 0, batchErr(b))
		}
		for i, r := range b.reqs {
			k := b.keys[i]
			switch {
			case b.cn == nil:
				errs[k] = b.err
				putRequest(r)
				continue
			case b.ab[i]:
				errs[k] = b.err // r is not ours to read
				continue
			}
			if warming && !b.srv.gutter && r.op == opLease && r.err == nil && r.resLease.Won && r.resLease.Placeholder() {
				c.warmLease(ctx, t, r, b.srv, now, deadline)
			}
			switch {
			case r.err == nil && r.op == opLease:
				l := r.resLease
				if t.replicas > 1 {
					l.Item.from = b.srv
				}
				out[k] = &l
			case r.err == nil:
				if t.replicas > 1 {
					r.resItem.from = b.srv
				}
				out[k] = &Lease{Item: r.resItem}
			case errors.Is(r.err, ErrCacheMiss):
				if warming && !b.srv.gutter {
					missed = append(missed, k)
				}
			default:
				errs[k] = r.err
				if isTransport(r.err) && !b.srv.gutter {
					retry = append(retry, k)
				}
			}
			putRequest(r)
		}
	}
	if len(missed) > 0 {
		found := make(map[string]*Item)
		c.warmMulti(ctx, t, missed, now, deadline, found)
		for k, it := range found {
			out[k] = &Lease{Item: it}
		}
	}
	return retry
}

// leaseRequest builds the request for one key of a lease read: an mg with
// flags on the meta protocol; a get or gat on the text protocol.
func (c *Client) leaseRequest(key string, opts LeaseOptions) *request {
	op := opLease
	if c.cfg.Protocol != ProtocolMeta {
		op = opGet
		if opts.Touch {
			op = opGAT
		}
	}
	r := getRequest(op)
	r.key = key
	r.lease = opts
	if opts.Touch {
		r.exp = expiration(opts.TouchTTL, c.now)
	}
	return r
}

// Invalidate marks key's item stale instead of deleting it (md with the I
// flag): readers still get the old value, flagged Stale, and the next
// GetLease wins the right to refresh it. ttl, when positive, becomes the
// item's TTL. It returns ErrCacheMiss for a missing key and ErrNotSupported
// on the text protocol.
func (c *Client) Invalidate(ctx context.Context, key string, ttl time.Duration) error {
	return c.invalidate(ctx, key, ttl)
}

func (c *Client) getLease(ctx context.Context, key string, opts LeaseOptions) (*Lease, error) {
	var lease Lease
	if err := c.GetLeaseInto(ctx, key, opts, &lease); err != nil {
		return nil, err
	}
	return &lease, nil
}

// GetLeaseInto is GetLease answering in *l, which the caller provides:
// one allocation fewer (the Item and a small value still share one).
func (c *Client) GetLeaseInto(ctx context.Context, key string, opts LeaseOptions, l *Lease) error {
	if c.cfg.Protocol != ProtocolMeta {
		return errNeedsMeta
	}
	if err := checkKey(key); err != nil {
		c.refused(ctx, opLease, err)
		return err
	}
	r := c.leaseRequest(key, opts)
	owned, err := c.do(ctx, r)
	if !owned {
		return err
	}
	if err == nil {
		*l = r.resLease
	}
	putRequest(r)
	return err
}

func (c *Client) invalidate(ctx context.Context, key string, ttl time.Duration) error {
	if c.cfg.Protocol != ProtocolMeta {
		return errNeedsMeta
	}
	if err := checkKey(key); err != nil {
		return err
	}
	r := getRequest(opInvalidate)
	r.key = key
	if ttl > 0 {
		r.ttl = ttl
		r.exp = expiration(ttl, c.now)
	}
	owned, err := c.do(ctx, r)
	if owned {
		putRequest(r)
	}
	return err
}
