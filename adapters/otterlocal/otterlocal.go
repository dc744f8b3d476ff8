// Package otterlocal is objcache's local tier for hot keys
// (objcache.Options.Local) on maypok86/otter v2, a concurrent in-process
// cache with W-TinyLFU eviction: values that a process reads over and
// over are served from its memory, without a round trip to memcached, for
// at most a few seconds after another process changed them.
//
//	local, err := otterlocal.New(otterlocal.Config{TTL: time.Second})
//	...
//	defer local.Close()
//	cache, err := objcache.New(client, objcache.Options{Local: local})
//
// It is a module of its own so that memkit's core module does not depend
// on otter. Why otter: it is maintained, allocation-free on a hit (a hit
// here costs well under objcache's budget of 200 ns), keeps a frequency
// sketch of the keys it sees (TinyLFU) so that a scan of cold keys cannot
// push the hot ones out, and expires each entry on its own TTL.
//
// # What it keeps, and for how long
//
//   - Only hot keys. A key is admitted when objcache has offered its value
//     (read it from memcached) at least Config.AdmitAfter times (default
//     2) lately: a count-min sketch counts the offers, halving every count
//     each 2 x Capacity offers. A key read once, like every key of a scan,
//     is not stored (but for the rare key whose counters other keys
//     already raised, about 1 in 70 when the sketch is busiest). Among
//     those admitted, otter's W-TinyLFU policy decides what stays when
//     the tier is full, by the keys' frequencies: a burst of
//     once-or-twice-read keys does not evict keys read all the time.
//   - For Config.TTL at most (default DefaultTTL, at most MaxTTL), and
//     never past the time objcache says the value has left. That TTL is
//     the bound on staleness: another process's change to a key is seen
//     here when its local copy expires. This process's own writes through
//     the objcache.Cache (and its views) delete the key at once.
//
// # Aliasing
//
// The values are the encoded bytes memcached returned, shared by every
// reader: objcache decodes them on each hit, and a []byte or a string it
// returns is those very bytes. Callers must not modify a []byte read
// through a Cache that has a local tier (see objcache.LocalCache).
//
// # Goroutines
//
// It runs otter's maintenance on the caller's goroutine (a synchronous
// executor) and has no periodic clean-up (its clock has no ticks): its one
// goroutine is the clock's, which reads the time every ClockResolution, so
// that a hit does not. Close stops it (it also stops by itself once the
// Cache is garbage).
package otterlocal

import (
	"fmt"
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/memkit/memkit/objcache"
)

// Defaults and bounds of the Config fields.
const (
	// DefaultTTL is how long a value stays in the tier when Config.TTL is
	// zero: the staleness bound.
	DefaultTTL = time.Second
	// MaxTTL is the longest Config.TTL New accepts: a local tier serves
	// values other processes may have changed, for a few seconds at most.
	MaxTTL = 10 * time.Second
	// DefaultCapacity is how many values the tier holds when
	// Config.Capacity is zero.
	DefaultCapacity = 10_000
	// DefaultAdmitAfter is Config.AdmitAfter's default: a key is kept from
	// its second read on.
	DefaultAdmitAfter = 2
)

// Config configures a Cache. The zero value of every field means its
// default.
type Config struct {
	// TTL is the longest a value stays: the bound on how stale a value
	// served here may be. 0 means DefaultTTL; it must not exceed MaxTTL.
	TTL time.Duration
	// Capacity is how many values the tier holds. 0 means
	// DefaultCapacity.
	Capacity int
	// AdmitAfter is how many times a key's value must be offered (read
	// from memcached) within the sketch's window before it is kept. 0
	// means DefaultAdmitAfter; 1 keeps every key offered (otter's
	// W-TinyLFU still protects the frequent ones).
	AdmitAfter int
}

// Cache is a local tier for objcache: an objcache.LocalCache on otter. It
// is safe for concurrent use by multiple goroutines.
type Cache struct {
	c      *otter.Cache[string, entry]
	coarse *otter.CoarseClock // nil on a test's clock
	door   doorkeeper
	ttl    time.Duration
}

var _ objcache.LocalCache = (*Cache)(nil)

// entry is a value kept, with its own TTL.
type entry struct {
	v   objcache.LocalValue
	ttl time.Duration
}

// ClockResolution is how often the tier reads the time: reading it on
// every hit would cost about as much as the rest of the hit. Values
// expire up to this much late.
const ClockResolution = 10 * time.Millisecond

// New returns a Cache. It returns an error for a negative field or a TTL
// above MaxTTL. Its clock reads the time every ClockResolution in a
// goroutine of its own, which Close stops.
func New(cfg Config) (*Cache, error) {
	return newCache(cfg, nil)
}

// newCache is New on a clock of the caller's (tests move it), or with now
// nil on a coarse clock.
func newCache(cfg Config, now func() time.Time) (*Cache, error) {
	switch {
	case cfg.TTL < 0, cfg.Capacity < 0, cfg.AdmitAfter < 0:
		return nil, fmt.Errorf("otterlocal: negative TTL, Capacity or AdmitAfter in %+v", cfg)
	case cfg.TTL > MaxTTL:
		return nil, fmt.Errorf("otterlocal: TTL %v above MaxTTL %v", cfg.TTL, MaxTTL)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Capacity == 0 {
		cfg.Capacity = DefaultCapacity
	}
	if cfg.AdmitAfter == 0 {
		cfg.AdmitAfter = DefaultAdmitAfter
	}
	var clk otter.Clock
	var coarse *otter.CoarseClock
	if now != nil {
		clk = clock{now}
	} else {
		coarse = otter.NewCoarseClock(ClockResolution)
		clk = noTicks{coarse}
	}
	oc, err := otter.New(&otter.Options[string, entry]{
		MaximumSize:      cfg.Capacity,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, entry]) time.Duration { return e.Value.ttl }),
		Executor:         func(fn func()) { fn() },
		Clock:            clk,
	})
	if err != nil {
		if coarse != nil {
			coarse.Stop()
		}
		return nil, fmt.Errorf("otterlocal: %w", err)
	}
	c := &Cache{c: oc, ttl: cfg.TTL, coarse: coarse}
	c.door.init(cfg.Capacity, cfg.AdmitAfter)
	return c, nil
}

// Get returns the value kept for key, if it has not expired. It does not
// retain key.
func (c *Cache) Get(key string) (objcache.LocalValue, bool) {
	e, ok := c.c.GetIfPresent(key)
	return e.v, ok
}

// Set keeps v for key, for ttl (at most the Cache's TTL; 0 means that
// TTL), if key is hot: offered AdmitAfter times lately.
func (c *Cache) Set(key string, v objcache.LocalValue, ttl time.Duration) {
	if ttl <= 0 || ttl > c.ttl {
		ttl = c.ttl
	}
	if !c.door.admit(key) {
		return
	}
	c.c.Set(key, entry{v: v, ttl: ttl})
}

// Delete drops key's value at once.
func (c *Cache) Delete(key string) {
	c.c.Invalidate(key)
}

// Len returns how many values the tier holds (expired ones not yet
// cleaned up included).
func (c *Cache) Len() int {
	return c.c.EstimatedSize()
}

// Close stops the clock's goroutine and waits for the one otter starts at
// New to return. The Cache keeps working afterwards (reading the time on
// every call). It returns nil.
func (c *Cache) Close() error {
	if c.coarse != nil {
		c.coarse.Stop()
	}
	c.c.StopAllGoroutines()
	return nil
}

// clock is otter's clock on a time source of the tests, without ticks.
type clock struct{ now func() time.Time }

func (c clock) NowNano() int64                      { return c.now().UnixNano() }
func (c clock) Tick(time.Duration) <-chan time.Time { return nil }

// noTicks is a coarse clock without ticks: no periodic clean-up goroutine
// (expired entries are never served, and the maintenance that writes run
// cleans them up).
type noTicks struct{ *otter.CoarseClock }

func (noTicks) Tick(time.Duration) <-chan time.Time { return nil }

// doorkeeper counts how often each key is offered, approximately (a
// count-min sketch of depth 2 over 16-bit counters, aged by halving every
// window offers), to admit hot keys only. For a tier of 10,000 values it
// takes 1 MiB.
type doorkeeper struct {
	seed    maphash.Seed
	mask    uint64
	counts  []atomic.Uint32 // two 16-bit counters each
	offers  atomic.Uint64
	window  uint64
	atLeast uint32
	aging   atomic.Bool // one goroutine halves the counts at a time
}

func (d *doorkeeper) init(capacity, admitAfter int) {
	// A window of 2 x capacity offers; 8 counters per offer of a window
	// in each row, so that a key offered once finds both its counters
	// already counted by others about 1 time in 70.
	d.window = 2 * uint64(capacity)
	n := 64
	for uint64(n) < 8*d.window {
		n <<= 1
	}
	d.seed = maphash.MakeSeed()
	d.counts = make([]atomic.Uint32, n)
	d.mask = uint64(n - 1)
	d.atLeast = uint32(admitAfter)
}

// admit counts an offer of key and reports whether key has now been
// offered atLeast times (as far as the sketch can tell: a collision may
// overcount, never undercount).
func (d *doorkeeper) admit(key string) bool {
	h := maphash.String(d.seed, key)
	a := d.bump(h&d.mask, 0)
	b := d.bump((h>>32)&d.mask, 16)
	if d.offers.Add(1)%d.window == 0 {
		d.age()
	}
	return min(a, b) >= d.atLeast
}

// bump increments the 16-bit counter at bit shift of counts[i],
// saturating, and returns its new value.
func (d *doorkeeper) bump(i uint64, shift uint) uint32 {
	c := &d.counts[i]
	for {
		old := c.Load()
		v := old >> shift & 0xffff
		if v == 0xffff {
			return v
		}
		if c.CompareAndSwap(old, old+1<<shift) {
			return v + 1
		}
	}
}

// age halves every count, so that what was hot long ago must be hot again
// to be admitted.
func (d *doorkeeper) age() {
	if !d.aging.CompareAndSwap(false, true) {
		return
	}
	defer d.aging.Store(false)
	for i := range d.counts {
		c := &d.counts[i]
		for {
			old := c.Load()
			if c.CompareAndSwap(old, old>>1&0x7fff7fff) {
				break
			}
		}
	}
}
