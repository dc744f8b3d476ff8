// Package objcache is a typed object cache on memcached: Get/Set of Go
// values, get-or-load of one key or many with stampede protection across
// processes, memoized functions, fail-safe serving when the source of
// truth fails, gets/cas read-modify-write, and namespaces and tags that
// are invalidated in O(1).
//
// Values are encoded by a serializer.Serializer, so what one process stores
// another reads without configuration. A cached value that no longer
// decodes (corrupt, written by another program, or of a type that changed
// between deploys) is a miss: it is counted in Stats.DecodeErrors and
// reloaded, never returned as garbage.
//
// GetOrLoad, GetOrLoadMulti (and the Memoize functions, built on them)
// run the loader once per key across every process that shares the
// cluster: within a process through a singleflight, across processes
// through memcached leases (the meta protocol's mg with the N and R
// flags, lease.go) or, on the text protocol, an Add-based lock key
// (lockkey.go); New picks one from the client's protocol. Callers that
// lose wait a bounded time (Options.LeaseWait) for the winner's value,
// then load themselves. GetOrLoadMulti reads all its keys in one
// pipelined round trip and loads all those it won with one call.
//
// Around that: stale-while-revalidate, in a fixed window
// (Options.EarlyRefresh) or probabilistically, with no coordination
// (Options.EarlyRefreshBeta, XFetch); stale serving after Invalidate;
// negative caching (Options.NegativeTTL); serving a value past its expiry
// when its reload fails (Options.FailSafe), and when it is slow
// (Options.LoadTimeout, the load going on in the background until Close).
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
// A cached value is either a plain serializer value (its bytes and item
// flags, whose codec, compressor and format version the flags name, see
// the serializer package) or an envelope: item flags 0x3f00 (codec ID 63,
// which the serializer reserves for memkit and refuses to decode) and
// bytes made of a version byte (1), a header (what the value is, its
// payload's serializer flags, its expiry, how long it stays in service
// after a failed reload, how long its load took, and the tags it carries
// with their versions; format.go has the layout) and the serializer's
// bytes. Loaders always write an envelope; Set, Add, SetMulti and Update
// write one only when the value carries tags, has a FailSafe expiry, or
// is empty, so that python-memcached keeps reading the rest. An envelope
// is never empty, so an empty value with flags 0 is always a lease
// placeholder, which reads as a miss.
//
// Besides values, objcache stores a few markers: a cached "not found"
// (NegativeTTL) is an envelope of that kind (before the envelope, flags 0
// and the bytes "\x00objcache:not-found\x00", still read); on the text
// protocol a lock is "<key>:lock" holding "1" and the refresh window
// marker is "<key>:fresh" holding "1"; a namespace's generation lives
// under "<prefix><name>@gen" and a tag's version under
// "<Options.Prefix>@tag:<tag>", as decimal numbers, and a namespace's keys
// are "<prefix><name>@<generation in base 36>:<key>". Memoized results
// live under ArgsKey's encoding of the arguments.
//
// A later release that stores a new layout marks it with a format
// version, codec or envelope version this release does not know, so that
// such a value reads here as a miss, never as garbage (an envelope
// header may also grow fields this release skips); values stored by this
// release keep reading in later ones (testdata/stored holds fixtures of
// what each release wrote, read by TestStoredItems). Values stored before
// the envelope read as they always did; an objcache from before it reads
// an envelope as a miss.
//
// The pieces:
//
//   - New, Get, Set, Add, Delete, GetMulti, SetMulti, DeleteMulti: typed
//     access under a key prefix (python-memcached's key_prefix).
//   - GetOrLoad, GetOrLoadTTL, GetOrLoadMulti: get-or-load with stampede
//     protection, for one key or many at once.
//   - Memoize0 to Memoize3, MemoizeMulti: functions whose results are
//     cached under a stable encoding of their arguments (ArgsKey).
//   - Update: gets/cas read-modify-write with bounded, jittered retries.
//   - Namespace, InvalidateNamespace: groups of keys dropped in O(1) by
//     bumping a generation number.
//   - WithTags, InvalidateTags: values that carry tags, dropped wherever
//     they are cached by bumping a tag's version, O(1) per tag (tags.go).
//   - Options.Local: an in-process tier for hot keys, behind the small
//     LocalCache interface (adapters/otterlocal, its own module, is one on
//     maypok86/otter), read before memcached by Get, GetOrLoad and the
//     Memoize functions, with a bounded staleness (local.go).
//   - Close: stops the loads that LoadTimeout left in the background.
//   - Stats: hits, misses, loads, load errors, not-founds, stale and
//     fail-safe values served, batch loads and their keys, background
//     loads, lease waits, decode errors and more, as a value.
package objcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
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
	// DefaultFailSafeBackoff is how long a value served by FailSafe after
	// a failed reload stays in service before the next load attempt.
	DefaultFailSafeBackoff = 10 * time.Second
	// MaxBackgroundLoads is how many loads per Cache may go on in the
	// background after LoadTimeout.
	MaxBackgroundLoads = 8
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

	// FailSafe, when positive, keeps values usable for this long past
	// their expiry, as a fallback: when the reload of an expired value
	// fails or times out (LoadTimeout) and the value expired less than
	// FailSafe ago, the loaders serve it instead of the error (counted in
	// Stats.StaleServed and Stats.FailSafeServed) and keep it in service
	// for FailSafeBackoff before the next load attempt, so that a dead
	// database is not hammered. Values are stored with FailSafe more
	// memcached TTL than their own; their expiry travels in the stored
	// header, and Get treats them as expired on time. With FailSafe, the
	// reloader of a value marked by Invalidate also falls back to it. 0
	// means off.
	FailSafe time.Duration
	// FailSafeBackoff is how long a value served by FailSafe after a
	// failed reload stays in service, in every process, before the next
	// load attempt. 0 means DefaultFailSafeBackoff.
	FailSafeBackoff time.Duration
	// LoadTimeout, when positive, is a soft timeout: when a reload that
	// has a value to fall back on (a FailSafe value, with FailSafe an
	// invalidated one, or the current value of an early refresh) takes
	// longer than this, the caller gets that value and the load goes on
	// in the background, its result stored when it finishes. At most
	// MaxBackgroundLoads loads per Cache go on in the background, each
	// bounded by LeaseTTL and stopped by Close; when all are taken the
	// caller waits for its load. Callers waiting for another process's
	// reload of a FailSafe value get the value after LoadTimeout too. A
	// GetOrLoadMulti batch is soft only when every key in it has a value
	// to fall back on. A background load runs with the caller's ctx
	// values but not its cancellation; a loader that panics after its
	// caller left is counted in Stats.LoadErrors. 0 means off.
	LoadTimeout time.Duration
	// EarlyRefreshBeta, when positive, turns on probabilistic early
	// refresh (XFetch, Vattani et al., VLDB 2015): how long a value took
	// to load is stored with it, and a GetOrLoad hit at time now reloads
	// it early when now - loadTime*EarlyRefreshBeta*ln(rand) >= expiry,
	// rand uniform in (0, 1]: rarely while the value is young, more often
	// as its expiry nears, sooner for values that are slow to load. 1 is
	// the paper's optimum, larger values refresh earlier. The refresh
	// runs under the lease, so one caller in the cluster runs it while
	// the others keep getting the current value. It complements
	// EarlyRefresh's fixed window and needs no coordination. 0 means off.
	EarlyRefreshBeta float64
	// Observer, when set, is told of every hit, miss, load and the rest of
	// what Stats counts, as it happens (see Observer); nil costs nothing.
	Observer Observer
	// Local, when set, is an in-process tier in front of memcached for
	// hot keys: Get, GetOrLoad and the Memoize functions serve what it
	// holds without a round trip, for up to its own TTL after another
	// process changed the value (this Cache's own writes drop it at once).
	// A []byte read through a Cache with a local tier may be shared with
	// other callers and must not be modified. See LocalCache. nil means
	// off.
	Local LocalCache
}

// Cache is a typed object cache over a memclient.Client. It is safe for
// concurrent use by multiple goroutines. Its views (Namespace, WithTags)
// share its state. Only loads that go on in the background after
// LoadTimeout run goroutines of their own; Close stops them. Closing the
// client is the caller's business.
type Cache struct {
	client *memclient.Client
	ser    *serializer.Serializer
	opts   Options
	co     coordinator // leases or lock keys, by the client's protocol
	ns     *namespace  // nil for the root cache
	tags   []string    // WithTags: sorted, without duplicates
	// viewTagKeys are the version keys of tags.
	viewTagKeys []string
	sh          *shared
}

// shared is the state common to a Cache and its views.
type shared struct {
	stats  counters
	flight group
	bg     background
	local  *localState // nil without Options.Local
	// now, sleep and rand (XFetch's uniform draw in (0, 1]) are seams for
	// tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	rand  func() float64
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
		"FailSafe": opts.FailSafe, "FailSafeBackoff": opts.FailSafeBackoff, "LoadTimeout": opts.LoadTimeout,
	} {
		if d < 0 {
			return nil, fmt.Errorf("objcache: negative %s %v", name, d)
		}
	}
	if !(opts.EarlyRefreshBeta >= 0) || math.IsInf(opts.EarlyRefreshBeta, 0) {
		return nil, fmt.Errorf("objcache: EarlyRefreshBeta %v is not a finite number >= 0", opts.EarlyRefreshBeta)
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
	if opts.FailSafeBackoff == 0 {
		opts.FailSafeBackoff = DefaultFailSafeBackoff
	}
	ser := opts.Serializer
	if ser == nil {
		ser = &serializer.Serializer{}
	}
	var co coordinator
	switch p := client.Protocol(); p {
	case memclient.ProtocolMeta:
		co = &leases{client: client, leaseTTL: opts.LeaseTTL, staleTTL: opts.StaleTTL,
			earlyRefresh: opts.EarlyRefresh, failSafe: opts.FailSafe}
	case memclient.ProtocolText:
		co = &lockKeys{client: client, leaseTTL: opts.LeaseTTL, earlyRefresh: opts.EarlyRefresh}
	default:
		return nil, fmt.Errorf("objcache: unknown protocol %v", p)
	}
	sh := &shared{now: time.Now, sleep: sleepCtx, rand: randUnit}
	if opts.Local != nil {
		sh.local = newLocalState(opts.Local)
	}
	return &Cache{
		client: client,
		ser:    ser,
		opts:   opts,
		co:     co,
		sh:     sh,
	}, nil
}

// Close stops the loads that go on in the background (LoadTimeout) of c
// and of every view of it, cancelling their ctx, and waits for them to
// return. Later soft timeouts do not start new ones: their callers wait
// for their loads. Everything else keeps working. It does not close the
// client. It returns nil; calling it again does nothing.
func (c *Cache) Close() error {
	c.sh.bg.close()
	return nil
}

// randUnit returns a uniform draw in (0, 1].
func randUnit() float64 { return 1 - rand.Float64() }

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

// Stats are the cache's counters since New, summed over its views
// (namespaces, tags). Counts are of keys: a GetOrLoadMulti of 50 keys
// adds 50 to Hits, Misses, Loads... as 50 GetOrLoad calls would.
type Stats struct {
	Hits            uint64 // values served fresh, from memcached or the local tier
	Misses          uint64 // lookups that found no usable value
	Loads           uint64 // values loaded: loader runs, and keys asked of batch loaders
	LoadErrors      uint64 // loads that failed (or panicked); a "not found" is not one
	NotFound        uint64 // loads that answered ErrNotFound, or keys a batch loader did not return
	StaleServed     uint64 // out-of-date values served: invalidated ones while another caller reloads, and FailSafeServed
	FailSafeServed  uint64 // values served past their expiry (or invalidated) because their reload failed or timed out
	LeaseWaits      uint64 // lookups that waited for another caller's load
	DecodeErrors    uint64 // cached values that did not decode (treated as misses)
	Coalesced       uint64 // lookups that shared another goroutine's lookup
	Refreshes       uint64 // early refreshes run (EarlyRefresh, EarlyRefreshBeta)
	NegativeHits    uint64 // cached ErrNotFound answers served
	Errors          uint64 // memcached errors that the loaders worked around
	BatchLoads      uint64 // calls of a GetOrLoadMulti (or MemoizeMulti) loader
	BatchKeys       uint64 // keys asked of those calls: BatchKeys/BatchLoads is the mean batch
	BackgroundLoads uint64 // loads that went on in the background after LoadTimeout
	LocalHits       uint64 // of Hits, the values the local tier served (Options.Local)
}

type counters struct {
	hits, misses, loads, loadErrors, notFound, staleServed, failSafeServed, leaseWaits,
	decodeErrors, coalesced, refreshes, negativeHits, errors,
	batchLoads, batchKeys, backgroundLoads, localHits atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	s := &c.sh.stats
	return Stats{
		Hits: s.hits.Load(), Misses: s.misses.Load(), Loads: s.loads.Load(),
		LoadErrors: s.loadErrors.Load(), NotFound: s.notFound.Load(),
		StaleServed: s.staleServed.Load(), FailSafeServed: s.failSafeServed.Load(),
		LeaseWaits: s.leaseWaits.Load(), DecodeErrors: s.decodeErrors.Load(),
		Coalesced: s.coalesced.Load(), Refreshes: s.refreshes.Load(),
		NegativeHits: s.negativeHits.Load(), Errors: s.errors.Load(),
		BatchLoads: s.batchLoads.Load(), BatchKeys: s.batchKeys.Load(),
		BackgroundLoads: s.backgroundLoads.Load(), LocalHits: s.localHits.Load(),
	}
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
