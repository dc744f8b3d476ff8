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
// safe for concurrent use. adapters/otterlocal (its own module) is one, on
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
// never modified. An implementation keeps and returns the LocalValue it
// was given as it is (it carries objcache's own bookkeeping too).
type LocalValue struct {
	Data  []byte // the serializer's bytes
	Flags uint32 // the serializer's flags

	// stamp is the key's stripe (in its top bits) and the stripe's
	// number when the value was read from memcached (see localState);
	// 0 for a value objcache did not make, which is never served. It
	// fits beside Flags, so a LocalValue is no bigger for it.
	stamp uint32
}

// localStripes is how many write counters localState keeps (a power of
// two, 1<<stripeBits). A stamp holds the stripe's index plus one in its
// top stripeBits+1 bits and the low stampBits bits of the stripe's number:
// a stale value would pass for fresh only if its stripe saw a multiple of
// 2^22 (4,194,304) writes of this process while the value sat in the
// tier, a few seconds at most.
const (
	stripeBits   = 9
	localStripes = 1 << stripeBits
	stampBits    = 32 - stripeBits - 1
	stampSeq     = 1<<stampBits - 1
)

// localState is a Cache's side of its local tier. Each key belongs to a
// stripe, one of localStripes counters chosen by the key's hash; a write
// bumps its key's stripe once memcached has the new value, then deletes
// the key from the tier. A read notes the stripe before its round trip
// and offers what it found with that number, unless the stripe has moved
// meanwhile; a local value is served only while its stripe still has the
// number it was read under. So a value read before a write is never served
// once that write has returned, not even in the moment between a racing
// reader's Set and its clean-up (the reader checks again after its Set and
// deletes what it put). A write to another key of the stripe costs the
// stripe's local values one trip to memcached each.
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
	return &l.stripes[l.stripeIndex(k)]
}

func (l *localState) stripeIndex(k string) uint64 {
	return maphash.String(l.seed, k) & (localStripes - 1)
}

// localRead is a read's note of its key's stripe (its index plus one; 0
// when there is no local tier) and of the stripe's number, taken before
// the round trip.
type localRead struct{ slot, seq uint64 }

// begin notes full key k's stripe before a read of k from memcached.
func (l *localState) begin(k string) localRead {
	i := l.stripeIndex(k)
	return localRead{slot: i + 1, seq: l.stripes[i].Load()}
}

// stamp is the stamp of a value read under r.
func (r localRead) stamp() uint32 {
	return uint32(r.slot<<stampBits | r.seq&stampSeq)
}

// fresh reports whether a value of the given stamp was read after the
// latest write to its stripe.
func (l *localState) fresh(stamp uint32) bool {
	i := stamp >> stampBits
	return i != 0 && uint32(l.stripes[i-1].Load())&stampSeq == stamp&stampSeq
}

// get looks up the full key made of the parts a+b+c+d, without
// allocating for it (unless it is too long and hashed, see fitKey). A
// value read before the latest write to its stripe is not returned.
func (l *localState) get(a, b, c, d string) (v LocalValue, ok bool) {
	switch n := len(a) + len(b) + len(c) + len(d); {
	case n > MaxKeyLen:
		v, ok = l.lc.Get(fitKey(a + b + c + d))
	case n == len(b):
		v, ok = l.lc.Get(b) // no prefix: the caller's key is the full key
	default:
		bp := l.bufs.Get().(*[]byte)
		k := append(append(append(append((*bp)[:0], a...), b...), c...), d...)
		v, ok = l.lc.Get(unsafe.String(unsafe.SliceData(k), len(k)))
		*bp = k
		l.bufs.Put(bp)
	}
	return v, ok && l.fresh(v.stamp)
}

// offer hands the local tier a value of full key k read under r, unless
// a write came since (see localState).
func (l *localState) offer(k string, r localRead, data []byte, flags uint32, ttl time.Duration) {
	stripe := &l.stripes[r.slot-1]
	if stripe.Load() != r.seq {
		return
	}
	l.lc.Set(k, LocalValue{Data: data, Flags: flags, stamp: r.stamp()}, ttl)
	if stripe.Load() != r.seq {
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
