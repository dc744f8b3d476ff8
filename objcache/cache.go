// Package objcache is a typed object cache on memcached: Get/Set of Go
// values, get-or-load with stampede protection across processes, memoized
// functions, gets/cas read-modify-write and namespaces that are invalidated
// in O(1).
//
// Values are encoded by a serializer.Serializer, so what one process stores
// another reads without configuration. A cached value that no longer
// decodes (corrupt, written by another program, or of a type that changed
// between deploys) is a miss: it is counted in Stats.DecodeErrors and
// reloaded, never returned as garbage.
//
// GetOrLoad (and the Memoize functions, built on it) runs the loader once
// per key across every process that shares the cluster: within a process
// through a singleflight, across processes through memcached leases (the
// meta protocol's mg with the N and R flags, lease.go) or, on the text
// protocol, an Add-based lock key (lockkey.go); New picks one from the
// client's protocol. Callers that lose wait a bounded time
// (Options.LeaseWait) for the winner's value, then load themselves.
//
// # Time to live
//
// Every ttl argument, Options.TTL and the TTL a GetOrLoadTTL loader returns
// share one rule: 0 means Options.TTL (DefaultTTL when that is 0 too), a
// negative value (NoExpiration) means the value never expires (memcached
// may still evict it), and a positive value is the time to live. To expire
// a value at once, Delete it. The other durations in Options (LeaseTTL,
// StaleTTL, NegativeTTL...) must not be negative.
//
// # Stored format
//
// A cached value is a serializer value: its bytes and item flags, whose
// codec, compressor and format version the flags name (see the serializer
// package). Besides values, objcache stores a few markers: a cached "not
// found" (NegativeTTL) is flags 0 and the bytes "\x00objcache:not-found\x00";
// a lease placeholder is an empty value with flags 0, which reads as a miss;
// on the text protocol a lock is "<key>:lock" holding "1" and the refresh
// window marker is "<key>:fresh" holding "1"; a namespace's generation
// lives under "<prefix><name>@gen" as a decimal number, and its keys are
// "<prefix><name>@<generation in base 36>:<key>". Memoized results live
// under ArgsKey's encoding of the arguments. A later release that stores a
// new layout marks it with a format version or codec this release does not
// know, so that such a value reads here as a miss, never as garbage; values
// stored by this release keep reading in later ones (testdata/stored holds
// fixtures of what each release wrote, read by TestStoredItems).
//
// The pieces:
//
//   - New, Get, Set, Add, Delete, GetMulti, SetMulti, DeleteMulti: typed
//     access under a key prefix (python-memcached's key_prefix).
//   - GetOrLoad, GetOrLoadTTL: get-or-load with stampede protection,
//     stale-while-revalidate (Options.EarlyRefresh), stale serving after
//     Invalidate and negative caching (Options.NegativeTTL).
//   - Memoize0 to Memoize3: functions whose results are cached under a
//     stable encoding of their arguments (ArgsKey).
//   - Update: gets/cas read-modify-write with bounded, jittered retries.
//   - Namespace, InvalidateNamespace: groups of keys dropped in O(1) by
//     bumping a generation number.
//   - Stats: hits, misses, loads, load errors, stale served, lease waits,
//     decode errors and more, as a value.
package objcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/serializer"
)

// Defaults for the Options fields whose zero value means "use the default".
const (
	// DefaultTTL is the time to live of values stored with ttl 0.
	DefaultTTL = time.Hour
	// DefaultLeaseTTL bounds how long a lease (the placeholder item, or the
	// lock key on the text protocol) outlives a loader that died.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultLeaseWait is how long a caller waits for another process's
	// loader before loading itself.
	DefaultLeaseWait = 2 * time.Second
	// DefaultStaleTTL is how long an invalidated value stays readable
	// (flagged stale) while one caller refreshes it.
	DefaultStaleTTL = 30 * time.Second
	// DefaultUpdateRetries is how many times Update retries after losing a
	// compare-and-swap.
	DefaultUpdateRetries = 20
	// MaxKeyLen is memcached's key length limit. Longer keys are shortened
	// by hashing (see Cache.Key).
	MaxKeyLen = 250
)

// NoExpiration, passed as a ttl, stores a value that never expires (it can
// still be evicted). Any negative ttl means the same.
const NoExpiration time.Duration = -1

// Sentinel errors. Match them with errors.Is.
var (
	// ErrCacheMiss means the key holds no value that decodes into the
	// requested type.
	ErrCacheMiss = errors.New("objcache: cache miss")
	// ErrNotStored means Add found the key already holds a value.
	ErrNotStored = errors.New("objcache: not stored")
	// ErrNotFound is the error a loader returns for "no such thing". With
	// Options.NegativeTTL set, that answer is cached: later calls return
	// ErrNotFound without running the loader.
	ErrNotFound = errors.New("objcache: not found")
	// ErrLoaderPanicked is returned to callers that waited for a loader
	// that panicked in another goroutine (the panic itself propagates in
	// the goroutine that ran the loader).
	ErrLoaderPanicked = errors.New("objcache: loader panicked")
	// ErrTooManyConflicts means Update lost the compare-and-swap race more
	// than Options.UpdateRetries times.
	ErrTooManyConflicts = errors.New("objcache: too many compare-and-swap conflicts")
	// ErrNoNamespace means InvalidateNamespace was called on a Cache that
	// is not a namespace.
	ErrNoNamespace = errors.New("objcache: not a namespace")
	// ErrUnencodableArgs means Memoize could not encode a call's arguments
	// into a key (a channel, a func, a NaN...); the function was not called.
	ErrUnencodableArgs = errors.New("objcache: arguments cannot be encoded into a key")
)

// Options configure a Cache. The zero value of every field means its
// default.
type Options struct {
	// Prefix is prepended to every key (python-memcached's key_prefix),
	// typically "app:". Empty means none.
	Prefix string
	// TTL is the time to live of values stored with ttl 0. 0 means
	// DefaultTTL; negative (NoExpiration) means never expire.
	TTL time.Duration
	// Serializer encodes and decodes values (codec, compressor and
	// compression threshold). nil means the zero serializer.Serializer.
	Serializer *serializer.Serializer

	// EarlyRefresh, when positive, is a stale-while-revalidate window:
	// once a value's remaining TTL drops below it, one GetOrLoad caller
	// (across all processes) reloads it while every other caller keeps
	// getting the current value. The refreshing caller waits for its load
	// and gets the new value; if the load fails it gets the current one,
	// which stays in service (on the meta protocol memcached hands out one
	// refresh per value, so the next load happens when it expires). Only
	// values whose TTL exceeds the window take part. 0 means off. On the
	// text protocol, which does not report TTLs, a companion key
	// ("<key>:fresh", expiring when the window opens) tracks it, at the
	// cost of a two-key get per lookup; a value stored by Set has none and
	// counts as inside the window.
	EarlyRefresh time.Duration
	// LeaseTTL is the lifetime of a lease: the placeholder that marks a
	// load in progress (meta protocol) or the lock key (text protocol).
	// A loader that dies blocks the key for at most this long. It should
	// exceed the slowest load. 0 means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// LeaseWait is how long a GetOrLoad caller that lost the lease waits
	// (polling with backoff, bounded by its ctx) for the winner's value
	// before loading itself. 0 means DefaultLeaseWait.
	LeaseWait time.Duration
	// StaleTTL is how long Invalidate keeps the old value readable,
	// flagged stale, while one caller refreshes it. 0 means
	// DefaultStaleTTL.
	StaleTTL time.Duration
	// NegativeTTL, when positive, caches a loader's ErrNotFound for this
	// long. Other loader errors are never cached. 0 means off.
	NegativeTTL time.Duration
	// NamespaceTTL is how long a namespace's generation number is cached
	// in this process. 0 means it is read from memcached on every call:
	// one extra round trip per operation in a namespace, and an
	// invalidation by any process is seen at once. A positive value saves
	// that round trip but lets other processes' invalidations take up to
	// NamespaceTTL to be seen here (this process's own are seen at once).
	NamespaceTTL time.Duration
	// UpdateRetries is how many times Update retries after a lost
	// compare-and-swap. 0 means DefaultUpdateRetries.
	UpdateRetries int
}

// Cache is a typed object cache over a memclient.Client. It is safe for
// concurrent use by multiple goroutines. A Cache holds no goroutines and
// needs no Close; closing the client is the caller's business.
type Cache struct {
	client *memclient.Client
	ser    *serializer.Serializer
	opts   Options
	co     coordinator // leases or lock keys, by the client's protocol
	ns     *namespace  // nil for the root cache
	sh     *shared
}

// shared is the state common to a Cache and its namespaces.
type shared struct {
	stats  counters
	flight group
	// now and sleep are seams for tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns a Cache storing through client. It chooses, once, how
// loaders take turns across processes: memcached leases when client speaks
// the meta protocol, lock keys when it speaks the text protocol. It returns
// an error for a nil client, a negative duration other than TTL, or a
// prefix longer than MaxKeyLen/2.
func New(client *memclient.Client, opts Options) (*Cache, error) {
	if client == nil {
		return nil, errors.New("objcache: nil client")
	}
	for name, d := range map[string]time.Duration{
		"EarlyRefresh": opts.EarlyRefresh, "LeaseTTL": opts.LeaseTTL, "LeaseWait": opts.LeaseWait,
		"StaleTTL": opts.StaleTTL, "NegativeTTL": opts.NegativeTTL, "NamespaceTTL": opts.NamespaceTTL,
	} {
		if d < 0 {
			return nil, fmt.Errorf("objcache: negative %s %v", name, d)
		}
	}
	if opts.UpdateRetries < 0 {
		return nil, fmt.Errorf("objcache: negative UpdateRetries %d", opts.UpdateRetries)
	}
	if len(opts.Prefix) > MaxKeyLen/2 {
		return nil, fmt.Errorf("objcache: prefix longer than %d bytes", MaxKeyLen/2)
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.LeaseWait == 0 {
		opts.LeaseWait = DefaultLeaseWait
	}
	if opts.StaleTTL == 0 {
		opts.StaleTTL = DefaultStaleTTL
	}
	if opts.UpdateRetries == 0 {
		opts.UpdateRetries = DefaultUpdateRetries
	}
	ser := opts.Serializer
	if ser == nil {
		ser = &serializer.Serializer{}
	}
	var co coordinator
	switch p := client.Protocol(); p {
	case memclient.ProtocolMeta:
		co = &leases{client: client, leaseTTL: opts.LeaseTTL, staleTTL: opts.StaleTTL, earlyRefresh: opts.EarlyRefresh}
	case memclient.ProtocolText:
		co = &lockKeys{client: client, leaseTTL: opts.LeaseTTL, earlyRefresh: opts.EarlyRefresh}
	default:
		return nil, fmt.Errorf("objcache: unknown protocol %v", p)
	}
	return &Cache{
		client: client,
		ser:    ser,
		opts:   opts,
		co:     co,
		sh:     &shared{now: time.Now, sleep: sleepCtx},
	}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ttl resolves a per-call ttl: 0 means the cache's TTL, a negative value
// (NoExpiration) never expires: 0 on the wire.
func (c *Cache) ttl(d time.Duration) time.Duration {
	if d == 0 {
		d = c.opts.TTL
	}
	if d < 0 {
		return 0
	}
	return d
}

// Key returns the memcached key that key is stored under: the prefix, the
// namespace and its current generation, then key. A result longer than
// MaxKeyLen keeps its first bytes readable and ends in '#' and the SHA-256
// of the whole. In a namespace it costs a round trip unless the generation
// is cached (Options.NamespaceTTL).
func (c *Cache) Key(ctx context.Context, key string) (string, error) {
	p, err := c.prefix(ctx)
	if err != nil {
		return "", err
	}
	return c.fullKey(p, key)
}

func (c *Cache) fullKey(prefix, key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty key", memclient.ErrMalformedKey)
	}
	return fitKey(prefix + key), nil
}

// fitKey returns k if it fits in MaxKeyLen bytes, else its first bytes (cut
// on a UTF-8 boundary) + "#" + hex SHA-256 of k.
func fitKey(k string) string {
	if len(k) <= MaxKeyLen {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	keep := MaxKeyLen - 1 - 2*len(sum)
	for keep > 0 && !utf8.RuneStart(k[keep]) {
		keep--
	}
	return k[:keep] + "#" + hex.EncodeToString(sum[:])
}

// Stats are the cache's counters since New, summed over its namespaces.
type Stats struct {
	Hits         uint64 // values served from memcached (fresh)
	Misses       uint64 // lookups that found no usable value
	Loads        uint64 // loader runs
	LoadErrors   uint64 // loader runs that failed (or panicked)
	StaleServed  uint64 // invalidated values served while another caller refreshed them
	LeaseWaits   uint64 // GetOrLoad calls that waited for another loader
	DecodeErrors uint64 // cached values that did not decode (treated as misses)
	Coalesced    uint64 // GetOrLoad calls that shared another goroutine's lookup
	Refreshes    uint64 // early refreshes run (EarlyRefresh)
	NegativeHits uint64 // cached ErrNotFound answers served
	Errors       uint64 // memcached errors that GetOrLoad or Memoize worked around
}

type counters struct {
	hits, misses, loads, loadErrors, staleServed, leaseWaits,
	decodeErrors, coalesced, refreshes, negativeHits, errors atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	s := &c.sh.stats
	return Stats{
		Hits: s.hits.Load(), Misses: s.misses.Load(), Loads: s.loads.Load(),
		LoadErrors: s.loadErrors.Load(), StaleServed: s.staleServed.Load(),
		LeaseWaits: s.leaseWaits.Load(), DecodeErrors: s.decodeErrors.Load(),
		Coalesced: s.coalesced.Load(), Refreshes: s.refreshes.Load(),
		NegativeHits: s.negativeHits.Load(), Errors: s.errors.Load(),
	}
}

// negativeValue marks a cached ErrNotFound. Flags 0 and a NUL-framed body
// no codec of ours produces.
var negativeValue = []byte("\x00objcache:not-found\x00")

func isNegative(data []byte, flags uint32) bool {
	return flags == 0 && string(data) == string(negativeValue)
}

// isPlaceholder reports whether an item is a lease placeholder: empty,
// flags 0. An empty []byte stored by Set looks the same, and reads as a
// miss too.
func isPlaceholder(data []byte, flags uint32) bool { return len(data) == 0 && flags == 0 }

// decode decodes a cached item into a new T; errors count as decode errors.
func decode[T any](c *Cache, data []byte, flags uint32) (T, bool) {
	var v T
	if isNegative(data, flags) || isPlaceholder(data, flags) {
		return v, false
	}
	if err := c.ser.Unmarshal(data, flags, &v); err != nil {
		c.sh.stats.decodeErrors.Add(1)
		var zero T
		return zero, false
	}
	return v, true
}

// Get returns the value stored under key, decoded into a T. It returns
// ErrCacheMiss when there is none, when it does not decode into a T, and
// for a key a loader is loading (its lease placeholder; an empty []byte
// stored by Set cannot be told from one and reads as a miss too).
func Get[T any](ctx context.Context, c *Cache, key string) (T, error) {
	var zero T
	k, err := c.Key(ctx, key)
	if err != nil {
		return zero, err
	}
	it, err := c.client.Get(ctx, k)
	if err != nil {
		if errors.Is(err, memclient.ErrCacheMiss) {
			c.sh.stats.misses.Add(1)
			return zero, ErrCacheMiss
		}
		return zero, err
	}
	v, ok := decode[T](c, it.Value, it.Flags)
	if !ok {
		c.sh.stats.misses.Add(1)
		return zero, ErrCacheMiss
	}
	c.sh.stats.hits.Add(1)
	return v, nil
}

func (c *Cache) item(ctx context.Context, key string, v any, ttl time.Duration) (*memclient.Item, error) {
	k, err := c.Key(ctx, key)
	if err != nil {
		return nil, err
	}
	data, flags, err := c.ser.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("objcache: encoding %q: %w", key, err)
	}
	return &memclient.Item{Key: k, Value: data, Flags: flags, TTL: c.ttl(ttl)}, nil
}

// Set stores v under key for ttl (0 means Options.TTL, negative never
// expires).
func (c *Cache) Set(ctx context.Context, key string, v any, ttl time.Duration) error {
	it, err := c.item(ctx, key, v, ttl)
	if err != nil {
		return err
	}
	return c.client.Set(ctx, it)
}

// Add stores v under key only if key holds nothing; otherwise it returns
// ErrNotStored.
func (c *Cache) Add(ctx context.Context, key string, v any, ttl time.Duration) error {
	it, err := c.item(ctx, key, v, ttl)
	if err != nil {
		return err
	}
	err = c.client.Add(ctx, it)
	if errors.Is(err, memclient.ErrNotStored) {
		return ErrNotStored
	}
	return err
}

// Delete removes key's value. Deleting a missing key is not an error.
func (c *Cache) Delete(ctx context.Context, key string) error {
	k, err := c.Key(ctx, key)
	if err != nil {
		return err
	}
	err = c.client.Delete(ctx, k)
	if errors.Is(err, memclient.ErrCacheMiss) {
		return nil
	}
	return err
}

// Invalidate marks key's value stale without deleting it: GetOrLoad
// callers keep being served the old value (counted in Stats.StaleServed)
// for up to Options.StaleTTL while exactly one of them reloads it. On the
// text protocol, which has no stale items, it deletes the value. A missing
// key is not an error.
func (c *Cache) Invalidate(ctx context.Context, key string) error {
	k, err := c.Key(ctx, key)
	if err != nil {
		return err
	}
	return c.co.invalidate(ctx, k)
}

// GetMulti returns the values stored under keyPrefix+key for each of keys
// that has one decoding into a T, by key without keyPrefix
// (python-memcached's get_multi with key_prefix). Missing and undecodable
// keys are absent from the map. When some servers fail it returns what the
// others had and a memclient.MultiError naming the failed keys (without
// keyPrefix).
func GetMulti[T any](ctx context.Context, c *Cache, keyPrefix string, keys []string) (map[string]T, error) {
	p, err := c.prefix(ctx)
	if err != nil {
		return nil, err
	}
	full := make([]string, 0, len(keys))
	orig := make(map[string]string, len(keys))
	for _, k := range keys {
		fk, err := c.fullKey(p, keyPrefix+k)
		if err != nil {
			return nil, fmt.Errorf("objcache: key %q: %w", k, err)
		}
		if _, dup := orig[fk]; dup {
			continue
		}
		orig[fk] = k
		full = append(full, fk)
	}
	items, err := c.client.GetMulti(ctx, full)
	out := make(map[string]T, len(items))
	for fk, it := range items {
		k, ok := orig[fk]
		if !ok {
			continue
		}
		if v, ok := decode[T](c, it.Value, it.Flags); ok {
			out[k] = v
		}
	}
	c.sh.stats.hits.Add(uint64(len(out)))
	c.sh.stats.misses.Add(uint64(len(orig) - len(out)))
	return out, unprefixErr(err, orig)
}

// SetMulti stores each value under keyPrefix+key for ttl
// (python-memcached's set_multi with key_prefix). When some keys fail it
// returns a memclient.MultiError naming them without keyPrefix; the others
// are stored.
func SetMulti[T any](ctx context.Context, c *Cache, keyPrefix string, values map[string]T, ttl time.Duration) error {
	p, err := c.prefix(ctx)
	if err != nil {
		return err
	}
	items := make([]*memclient.Item, 0, len(values))
	orig := make(map[string]string, len(values))
	ttl = c.ttl(ttl)
	for k, v := range values {
		fk, err := c.fullKey(p, keyPrefix+k)
		if err != nil {
			return fmt.Errorf("objcache: key %q: %w", k, err)
		}
		data, flags, err := c.ser.Marshal(v)
		if err != nil {
			return fmt.Errorf("objcache: encoding %q: %w", k, err)
		}
		orig[fk] = k
		items = append(items, &memclient.Item{Key: fk, Value: data, Flags: flags, TTL: ttl})
	}
	return unprefixErr(c.client.SetMulti(ctx, items), orig)
}

// DeleteMulti deletes keyPrefix+key for each of keys; missing keys are not
// errors.
func (c *Cache) DeleteMulti(ctx context.Context, keyPrefix string, keys []string) error {
	p, err := c.prefix(ctx)
	if err != nil {
		return err
	}
	full := make([]string, 0, len(keys))
	orig := make(map[string]string, len(keys))
	for _, k := range keys {
		fk, err := c.fullKey(p, keyPrefix+k)
		if err != nil {
			return fmt.Errorf("objcache: key %q: %w", k, err)
		}
		orig[fk] = k
		full = append(full, fk)
	}
	return unprefixErr(c.client.DeleteMulti(ctx, full), orig)
}

// unprefixErr renames the keys of a memclient.MultiError back to the
// caller's keys.
func unprefixErr(err error, orig map[string]string) error {
	var me memclient.MultiError
	if err == nil || !errors.As(err, &me) {
		return err
	}
	out := make(memclient.MultiError, len(me))
	for fk, e := range me {
		if k, ok := orig[fk]; ok {
			out[k] = e
		} else {
			out[fk] = e
		}
	}
	return out
}

// Namespace returns a view of the cache whose keys live in the namespace
// name (nested namespaces are allowed). Every key in it embeds the
// namespace's generation number, so InvalidateNamespace drops them all
// with one Increment. See Options.NamespaceTTL for what it costs.
func (c *Cache) Namespace(name string) *Cache {
	nc := *c
	nc.ns = &namespace{parent: c, name: name}
	return &nc
}
