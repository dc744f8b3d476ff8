package objcache

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// LocalCache is an in-process tier in front of memcached for hot keys
// (Options.Local): a value read from it costs no round trip, at the price
// of a bounded staleness. objcache hands it encoded values (the
// serializer's bytes and flags, under the full memcached key) and decodes
// what it returns on each hit; the implementation chooses what to keep
// (hot keys only) and for how long (a few seconds at most), and must be
// safe for concurrent use. adapters/otter (its own module) is one, on
// maypok86/otter. nil means no local tier.
//
// What objcache does with it:
//
//   - Reads. Get, GetOrLoad, GetOrLoadTTL and Memoize0 to Memoize3 look
//     the key up in the local tier first; a value there is served as a
//     hit (counted in Stats.Hits and Stats.LocalHits) without a round
//     trip. The multi-key calls (GetMulti, GetOrLoadMulti, MemoizeMulti)
//     and Update always read memcached.
//   - Admission. A fresh value read from memcached by those calls is
//     offered with Set, with the time it has left to live (its expiry,
//     memcached's TTL); the implementation keeps it only when the key is
//     hot. Values that carry tags (WithTags) are never offered, nor
//     cached "not found"s, stale, expired or refreshing values, nor
//     values whose hits draw an early refresh (Options.EarlyRefreshBeta):
//     those are checked on every read.
//   - Invalidation. Every write of this Cache and its views to a key (Set,
//     Add, Delete, Invalidate, SetMulti, DeleteMulti, Update, and the
//     loaders' stores) deletes the key from the local tier once memcached
//     has it, and a read that raced with such a write does not put the
//     old value back (see localState). InvalidateNamespace gives the
//     namespace's keys new names, so their local values are never read
//     again; tagged values are not kept locally, so InvalidateTags needs
//     nothing. Writes by other processes, or by another Cache of this one,
//     are seen when the local value expires: the tier's TTL is the bound
//     on staleness. Use one LocalCache per Cache (its views share it).
//
// The aliasing rule: a value served from the local tier shares the tier's
// bytes. A string is immutable anyway. A []byte read through a Cache with
// a local tier (from the tier, or from memcached and then kept by it) may
// be the very bytes the tier keeps and hands to every later caller:
// callers must not modify it (copy it first: bytes.Clone). Every other
// type is decoded anew on each hit, so each caller gets its own value.
type LocalCache interface {
	// Get returns the value kept for key, if any and not expired. key
	// may be a view of a buffer that objcache reuses as soon as Get
	// returns: Get must not retain it.
	Get(key string) (LocalValue, bool)
	// Set offers the value read from memcached for key, to be kept, if
	// the implementation admits it, for at most ttl (0: as long as the
	// implementation's own bound) and never longer than that bound. It
	// may retain key and v.
	Set(key string, v LocalValue, ttl time.Duration)
	// Delete drops the value kept for key, at once: a Get that starts
	// after Delete returned does not see it.
	Delete(key string)
}

// LocalValue is a value of the local tier: what memcached holds for the
// key, as the serializer wrote it. Data is shared by every reader and
// never modified.
type LocalValue struct {
	Data  []byte // the serializer's bytes
	Flags uint32 // the serializer's flags
}

// localStripes is how many write counters localState keeps (a power of
// two).
const localStripes = 64

// localState is a Cache's side of its local tier. A read offers what it
// found only if no write to its key (its stripe, one of localStripes
// counters chosen by the key's hash) happened since before its round trip
// began, and checks again after the offer, deleting what it put: a write
// bumps the stripe after memcached has the new value and then deletes the
// key. Either the reader's second check sees the bump, or the write's
// delete comes after the reader's Set: the old value never survives a
// write of this process. A bump caused by a write to another key of the
// stripe only costs a missed admission.
type localState struct {
	lc      LocalCache
	seed    maphash.Seed
	stripes [localStripes]atomic.Uint64
	bufs    sync.Pool // *[]byte, to build full keys for Get
}

func newLocalState(lc LocalCache) *localState {
	return &localState{lc: lc, seed: maphash.MakeSeed(),
		bufs: sync.Pool{New: func() any { b := make([]byte, 0, MaxKeyLen); return &b }}}
}

func (l *localState) stripe(k string) *atomic.Uint64 {
	return &l.stripes[maphash.String(l.seed, k)&(localStripes-1)]
}

// get looks up the full key made of the parts a+b+c+d, without
// allocating for it (unless it is too long and hashed, see fitKey).
func (l *localState) get(a, b, c, d string) (LocalValue, bool) {
	switch n := len(a) + len(b) + len(c) + len(d); {
	case n > MaxKeyLen:
		return l.lc.Get(fitKey(a + b + c + d))
	case n == len(b):
		return l.lc.Get(b) // no prefix: the caller's key is the full key
	}
	bp := l.bufs.Get().(*[]byte)
	k := append(append(append(append((*bp)[:0], a...), b...), c...), d...)
	v, ok := l.lc.Get(unsafe.String(unsafe.SliceData(k), len(k)))
	*bp = k
	l.bufs.Put(bp)
	return v, ok
}

// offer hands the local tier a value of full key k read when k's stripe
// was at seq, unless a write came since (see localState).
func (l *localState) offer(k string, stripe *atomic.Uint64, seq uint64, data []byte, flags uint32, ttl time.Duration) {
	if stripe.Load() != seq {
		return
	}
	l.lc.Set(k, LocalValue{Data: data, Flags: flags}, ttl)
	if stripe.Load() != seq {
		l.lc.Delete(k)
	}
}

// drop deletes full key k from the local tier after a write to it.
func (l *localState) drop(k string) {
	l.stripe(k).Add(1)
	l.lc.Delete(k)
}

// localDrop is drop on c's local tier, if it has one.
func (c *Cache) localDrop(k string) {
	if l := c.sh.local; l != nil {
		l.drop(k)
	}
}

// localTTL is how long a value s read now may be kept locally: until its
// expiry and memcached's TTL (remaining; 0 unknown, negative none),
// whichever comes first; 0 means no bound of its own. ok is false when
// it must not be kept (expires now).
func localTTL(s *stored, remaining time.Duration, now time.Time) (ttl time.Duration, ok bool) {
	if remaining > 0 {
		ttl = remaining
	}
	if s.expires != 0 {
		left := time.UnixMilli(s.expires).Sub(now)
		if left <= 0 {
			return 0, false
		}
		if ttl == 0 || left < ttl {
			ttl = left
		}
	}
	return ttl, true
}

// lookupKey returns the full key of key, or, with a local tier that
// holds it, its value (hit).
func lookupKey[T any](ctx context.Context, c *Cache, key string) (k string, v T, hit bool, err error) {
	if c.sh.local == nil || key == "" {
		k, err = c.Key(ctx, key)
		return k, v, false, err
	}
	p, err := c.prefix(ctx)
	if err != nil {
		return "", v, false, err
	}
	if v, hit = localHit[T](ctx, c, p, key, "", ""); hit {
		return "", v, true, nil
	}
	k, err = c.fullKey(p, key)
	return k, v, false, err
}

// localHit serves the full key made of the parts a+b+c+d from c's local
// tier, decoded into a T; ok is false when the tier does not have it (or
// it does not decode into a T: memcached is read then).
func localHit[T any](ctx context.Context, c *Cache, a, b, cc, d string) (v T, ok bool) {
	lv, ok := c.sh.local.get(a, b, cc, d)
	if !ok {
		return v, false
	}
	if v, ok = decodeQuiet[T](c, lv.Data, lv.Flags, localBytes); !ok {
		return v, false
	}
	c.count(ctx, EventHit, 1)
	c.count(ctx, EventLocalHit, 1)
	return v, true
}
