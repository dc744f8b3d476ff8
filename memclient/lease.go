package memclient

import (
	"context"
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
}

// Lease is the answer to GetLease.
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
	// TTL is the item's remaining time to live; -1 means none.
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

// Invalidate marks key's item stale instead of deleting it (md with the I
// flag): readers still get the old value, flagged Stale, and the next
// GetLease wins the right to refresh it. ttl, when positive, becomes the
// item's TTL. It returns ErrCacheMiss for a missing key and ErrNotSupported
// on the text protocol.
func (c *Client) Invalidate(ctx context.Context, key string, ttl time.Duration) error {
	return c.invalidate(ctx, key, ttl)
}

func (c *Client) getLease(ctx context.Context, key string, opts LeaseOptions) (*Lease, error) {
	if c.cfg.Protocol != ProtocolMeta {
		return nil, ErrNotSupported
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	r := getRequest(opLease)
	r.key = key
	r.lease = opts
	owned, err := c.do(ctx, r)
	if !owned {
		return nil, err
	}
	lease := r.resLease
	putRequest(r)
	if err != nil {
		return nil, err
	}
	return &lease, nil
}

func (c *Client) invalidate(ctx context.Context, key string, ttl time.Duration) error {
	if c.cfg.Protocol != ProtocolMeta {
		return ErrNotSupported
	}
	if err := checkKey(key); err != nil {
		return err
	}
	r := getRequest(opInvalidate)
	r.key = key
	if ttl > 0 {
		r.exp = expiration(ttl, c.now)
	}
	owned, err := c.do(ctx, r)
	if owned {
		putRequest(r)
	}
	return err
}
