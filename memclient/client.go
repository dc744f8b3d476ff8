// Package memclient is a memcached client: the meta protocol by default
// (the classic text protocol as an option), concurrent requests pipelined
// over one connection per server, consistent hashing over weighted servers
// compatible with libmemcached and python-memcached, and failure handling
// that fails fast on a dead server.
//
// It works the python-memcached way: Set, Get, Add, Replace, Append,
// Prepend, GetMulti and SetMulti, Increment and Decrement, gets/cas through
// Get and CompareAndSwap, Stats. Every call takes a context first and
// returns no later than its deadline or Config.Timeout, whichever comes
// first.
//
// # Keys and values
//
// Keys are 1 to 250 bytes with no space, control character or DEL (UTF-8 is
// fine); anything else fails with ErrMalformedKey before a byte is written,
// so no key can inject protocol. Values over Config.MaxItemSize fail with
// ErrValueTooLarge, as do values the server refuses as too large. Item
// flags are opaque here; package serializer gives them a meaning.
//
// # Pipelining
//
// A connection has no goroutine of its own. Callers write their requests
// under a write slot; one that sees others active on the connection lets
// them queue behind it, and the last flushes the batch in one write.
// Replies come back in order and are read by a waiting caller, which hands
// each to its request until its own arrives: a lone caller writes and
// reads like a blocking client, and under load one read(2) serves many
// requests. A second connection to a server (up to MaxConnsPerServer) opens
// only while large values or a very deep pipeline load the first. A caller
// whose context ends abandons its request; its reply is read and dropped
// later, so the connection stays in step. A connection that answers nothing
// while requests wait on it is closed and replaced.
//
// # Failures
//
// Errors name the server. Timeouts match context.DeadlineExceeded (and
// report Timeout() true when Config.Timeout, not the caller's deadline,
// ran out); error lines from the server are *ServerError. A server that
// fails Config.FailureThreshold times in a row (refused, reset or stuck
// connections) is marked down: its keys fail at once with an error matching
// ErrServerUnavailable until a background probe, retried with backoff,
// finds it answering again. With Config.Failover its keys go to the next
// live server instead. Multi-key calls return what the live servers had
// together with a MultiError naming the keys that failed. ServerStatus
// reports each server's health and counters.
package memclient

import (
	"context"
	"time"
)

// Item is a value stored under a key.
type Item struct {
	Key   string
	Value []byte
	// Flags are opaque to the server and returned with the value.
	Flags uint32
	// TTL is the time to live: 0 means never expires; sub-second values
	// round up to a second; values over 30 days are sent as an absolute
	// Unix time, as memcached requires.
	TTL time.Duration
	// CAS is filled by Get, GetMulti and GetAndTouch and used by
	// CompareAndSwap.
	CAS uint64
}

// Get returns the item for key, or ErrCacheMiss.
func (c *Client) Get(ctx context.Context, key string) (*Item, error) {
	return c.getItem(ctx, opGet, key, 0)
}

// GetAndTouch returns the item for key and sets its TTL in the same round
// trip, or ErrCacheMiss.
func (c *Client) GetAndTouch(ctx context.Context, key string, ttl time.Duration) (*Item, error) {
	return c.getItem(ctx, opGAT, key, ttl)
}

// Touch sets the TTL of key's item, or returns ErrCacheMiss.
func (c *Client) Touch(ctx context.Context, key string, ttl time.Duration) error {
	_, err := c.getItem(ctx, opTouch, key, ttl)
	return err
}

// Set stores item unconditionally.
func (c *Client) Set(ctx context.Context, item *Item) error {
	return c.store(ctx, opSet, item)
}

// Add stores item only if its key has no item; otherwise ErrNotStored.
func (c *Client) Add(ctx context.Context, item *Item) error {
	return c.store(ctx, opAdd, item)
}

// Replace stores item only if its key has an item; otherwise ErrNotStored.
func (c *Client) Replace(ctx context.Context, item *Item) error {
	return c.store(ctx, opReplace, item)
}

// Append adds item.Value after the existing value, keeping its flags and
// TTL; ErrNotStored if the key has no item.
func (c *Client) Append(ctx context.Context, item *Item) error {
	return c.store(ctx, opAppend, item)
}

// Prepend adds item.Value before the existing value, keeping its flags and
// TTL; ErrNotStored if the key has no item.
func (c *Client) Prepend(ctx context.Context, item *Item) error {
	return c.store(ctx, opPrepend, item)
}

// CompareAndSwap stores item only if the key's item is unchanged since
// item.CAS was read: ErrCASConflict if it changed, ErrCacheMiss if it is
// gone.
func (c *Client) CompareAndSwap(ctx context.Context, item *Item) error {
	return c.store(ctx, opCAS, item)
}

// Delete removes key's item, or returns ErrCacheMiss.
func (c *Client) Delete(ctx context.Context, key string) error {
	_, err := c.getItem(ctx, opDelete, key, 0)
	return err
}

// Increment adds delta to the decimal number stored at key and returns the
// new value (wrapping at 2^64), or ErrCacheMiss. A value that is not a
// number fails with a *ServerError.
func (c *Client) Increment(ctx context.Context, key string, delta uint64) (uint64, error) {
	return c.arith(ctx, opIncr, key, delta)
}

// Decrement subtracts delta from the decimal number stored at key, stopping
// at 0, and returns the new value, or ErrCacheMiss.
func (c *Client) Decrement(ctx context.Context, key string, delta uint64) (uint64, error) {
	return c.arith(ctx, opDecr, key, delta)
}

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

// Protocol returns the wire protocol the client speaks (Config.Protocol):
// with ProtocolText, GetLease and Invalidate return ErrNotSupported.
func (c *Client) Protocol() Protocol { return c.cfg.Protocol }
