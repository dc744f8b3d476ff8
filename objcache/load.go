package objcache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/memkit/memkit/memclient"
)

// Polling bounds while waiting for another caller's load.
const (
	pollMin = 2 * time.Millisecond
	pollMax = 50 * time.Millisecond
)

// GetOrLoad returns the value cached under key, decoded into a T, or runs
// load, caches its result for ttl (0 means Options.TTL) and returns it.
//
// Across all goroutines of this process one lookup and at most one load
// run per key at a time (a singleflight; a caller whose ctx ends stops
// waiting, and if load panics the panic propagates in the goroutine that
// ran it while the others get ErrLoaderPanicked). Across processes sharing
// the cluster one caller wins the lease and loads; the others poll with
// backoff for up to Options.LeaseWait (bounded by their ctx) and then load
// themselves. With Options.EarlyRefresh or Options.EarlyRefreshBeta, a
// value about to expire is reloaded by one caller while the others keep
// getting it. A value marked with Invalidate is served (as stale) while
// one caller reloads it: every other caller, in this process as in the
// others, gets it at once. With Options.FailSafe, a value whose reload
// fails is served past its expiry instead of the error, and with
// Options.LoadTimeout a slow reload leaves its caller with that value and
// goes on in the background. Through a view with tags (WithTags), the
// value records them, and a value invalidated by InvalidateTags is
// reloaded.
//
// A loader error is returned and not cached, except ErrNotFound when
// Options.NegativeTTL is set: later calls then return ErrNotFound without
// running load until that TTL passes. When memcached fails, GetOrLoad
// runs load and returns its result (counting Stats.Errors); it returns a
// memcached error only for a malformed key.
func GetOrLoad[T any](ctx context.Context, c *Cache, key string, ttl time.Duration, load func(ctx context.Context) (T, error)) (T, error) {
	return getOrLoadOne(ctx, c, key, c.ttl(ttl), load, nil)
}

// GetOrLoadTTL is GetOrLoad for loaders that choose the TTL of each value
// they load (an HTTP max-age, a token's expiry): load returns it with the
// value, 0 meaning Options.TTL and NoExpiration never expire.
func GetOrLoadTTL[T any](ctx context.Context, c *Cache, key string, load func(ctx context.Context) (T, time.Duration, error)) (T, error) {
	return getOrLoadOne(ctx, c, key, c.ttl(0), nil, load)
}

// getOrLoadOne is GetOrLoad (plain) and GetOrLoadTTL (withTTL) with the
// resolved ttl. The batch is made only when the lookup does not end it.
func getOrLoadOne[T any](ctx context.Context, c *Cache, key string, ttl time.Duration, plain func(ctx context.Context) (T, error), withTTL func(ctx context.Context) (T, time.Duration, error)) (T, error) {
	k, v, hit, err := lookupKey[T](ctx, c, key)
	switch {
	case hit:
		return v, nil
	case err != nil:
		return (&batch[T]{c: c, ttl: ttl, key: key, plain: plain, withTTL: withTTL}).keyFailed(ctx, err)
	}
	v, fl, ok := hitOne[T](ctx, c, k, ttl)
	if ok {
		return v, nil
	}
	return (&batch[T]{c: c, ttl: ttl, key: key, plain: plain, withTTL: withTTL}).goOn(ctx, k, fl)
}

// keyFailed ends a one-key get-or-load whose full key could not be made:
// a malformed key and the end of ctx are returned; a namespace generation
// that cannot be read means no cache, and the loader runs.
func (b *batch[T]) keyFailed(ctx context.Context, err error) (T, error) {
	if errors.Is(err, memclient.ErrMalformedKey) || ctxEnded(ctx, err) {
		var zero T
		return zero, err
	}
	b.c.count(ctx, EventError, 1)
	r := b.direct(ctx, []string{b.key})[0]
	return r.v, r.err
}

// firstLook is what hitOne did before it handed a one-key get-or-load to
// the full path: the flight it leads (leader) or joined, nil when it began
// none, and as leader what its lookup found.
type firstLook struct {
	run    *call
	leader bool
	st     lookupResult
}

// hitOne is the hot path of a one-key get-or-load of full key k, whose
// values get ttl: it leads or joins the key's flight and, as leader, looks
// the key up (as a waiter it takes the leader's fresh value). When that finds a fresh value with nothing to do but decode
// it (no tags, no refresh to run, not expired, not stale, no lease won)
// it counts the hit, ends the flight with the value and returns it: no
// batch, no job, no closure, and for a native []byte or string no copy
// when no other goroutine shared the lookup. Otherwise ok is false and fl
// is where the full path (goOn) takes over; nothing was counted.
func hitOne[T any](ctx context.Context, c *Cache, k string, ttl time.Duration) (v T, fl firstLook, ok bool) {
	if len(c.tags) > 0 {
		return v, fl, false // the view's tag versions are read with the value
	}
	fl.run, fl.leader = c.sh.flight.begin(k)
	if !fl.leader {
		// Another goroutine looks k up: its fresh value, decoded anew
		// (a []byte copied, as every goroutine of the flight reads the
		// bytes). Anything else, runBegun deals with, waiting again on
		// the run that is over.
		out, err := fl.run.wait(ctx)
		if err != nil || out.src != srcCache {
			return v, fl, false
		}
		if v, ok = decodeQuiet[T](c, out.data, out.flags, readBytes); !ok {
			return v, fl, false
		}
		c.count(ctx, EventCoalesced, 1)
		c.count(ctx, EventHit, 1)
		return v, firstLook{}, true
	}
	var lr localRead // with a local tier: k's stripe and its writes, before the read
	if l := c.sh.local; l != nil {
		lr = l.begin(k)
	}
	fl.st = c.co.lookupOne(ctx, k, ttl)
	st := &fl.st
	if st.err != nil || st.state != stHit || st.won {
		return v, fl, false
	}
	s, kind := parseStored(st.data, st.flags)
	if kind != itemValue || s.kind != kindValue || len(s.tags) > 0 {
		return v, fl, false
	}
	var now time.Time
	if s.expires != 0 {
		if c.opts.EarlyRefreshBeta > 0 && s.loadTime > 0 {
			return v, fl, false // XFetch draws on every hit: judge does it
		}
		if now = c.sh.now(); now.UnixMilli() >= s.expires {
			return v, fl, false
		}
	}
	out := outcome{data: s.payload, flags: s.flags, src: srcCache}
	if isRaw[T](s.flags) {
		// Cannot fail: publish first, then share the bytes unless
		// other goroutines read them too (the local tier's share them
		// under its aliasing rule).
		c.count(ctx, EventHit, 1)
		sh := ownBytes
		if c.sh.flight.end(k, fl.run, out, nil) {
			sh = readBytes
		}
		v, _ = decodeRaw[T](s.payload, s.flags, sh)
	} else {
		if v, ok = decodeQuiet[T](c, s.payload, s.flags, readBytes); !ok {
			return v, fl, false // judge counts the decode error and reclaims the key
		}
		c.count(ctx, EventHit, 1)
		c.sh.flight.end(k, fl.run, out, nil)
	}
	if lr.slot != 0 {
		if ttl, ok := localTTL(&s, st.ttl, now); ok {
			c.sh.local.offer(k, lr, s.payload, s.flags, ttl)
		}
	}
	return v, firstLook{}, true
}

// goOn runs the full get-or-load of b's one key, full key k, from where
// hitOne left it.
func (b *batch[T]) goOn(ctx context.Context, k string, fl firstLook) (T, error) {
	keys, fks := []string{b.key}, []string{k}
	var r keyResult[T]
	switch {
	case fl.run == nil:
		r = b.run(ctx, keys, fks, 0)[0]
	case fl.leader:
		j := &job[T]{key: b.key, fk: k, run: fl.run, st: fl.st, looked: true}
		r = b.runBegun(ctx, keys, fks, []*job[T]{j}, nil, nil, 0)[0]
	default:
		r = b.runBegun(ctx, keys, fks, nil, []int{0}, []*call{fl.run}, 0)[0]
	}
	return r.v, r.err
}

// loaded is what a loader returned for one key.
type loaded[T any] struct {
	v   T
	ttl time.Duration // as the loader chose it (GetOrLoadTTL); 0 means the call's
	err error         // a "not found" with the loader's own error
}

// keyResult is what a key's caller gets.
type keyResult[T any] struct {
	v   T
	err error // ErrNotFound (or the loader's error matching it) for "not found"
}

// source says where an outcome's value came from.
type source uint8

const (
	srcCache  source = iota // a fresh cached value
	srcStale                // an out-of-date value (invalidated, or FailSafe)
	srcLoaded               // the loader's result
)

// outcome is the shared result of one key's lookup: the value's payload
// (its serializer bytes and flags), for the goroutines that waited for it
// to decode into their own type.
type outcome struct {
	data     []byte
	flags    uint32
	src      source
	failSafe bool // served instead of a failed or slow reload
}

// storeMode says how a loaded value is written back.
type storeMode uint8

const (
	storeNone    storeMode = iota // memcached is failing: do not write
	storeSet                      // unconditional Set
	storeLease                    // leases: CAS over the placeholder won; delete it if the load fails
	storeRecache                  // leases: CAS over the value won the right to refresh
	storeLocked                   // lockKeys: CAS over the value read (Add if none), then release the lock key
)

type state uint8

const (
	stHit     state = iota // a value (maybe with the right to refresh it)
	stStale                // an invalidated value (maybe with the right to reload it)
	stWon                  // no value; this caller holds the lease and must load
	stPending              // no value; another caller is loading
)

type lookupResult struct {
	state   state
	data    []byte
	flags   uint32
	won     bool      // this caller must (re)load
	mode    storeMode // how to store what it loads
	cas     uint64
	ttl     time.Duration // remaining memcached TTL (meta; -1 none); 0 unknown
	pending bool          // another caller holds the right to reload this value
	err     error         // this key's lookup failed
}

// coordinator is how the loaders of one key take turns across every
// process sharing the cluster. New picks one from the client's protocol:
// memcached leases on the meta protocol (leases, lease.go), lock keys on
// the text protocol (lockKeys, lockkey.go).
type coordinator interface {
	// lookup reads the full keys ks (no duplicates) and, for each that
	// holds no fresh value, tries to win the right to (re)load it; ttl is
	// the TTL the loaded values will get. It reads the extra keys, plain,
	// in the same round trip and returns those found. res[i] is ks[i]'s
	// result; err is an error of the whole call.
	lookup(ctx context.Context, ks []string, ttl time.Duration, extra []string) (res []lookupResult, items map[string]*memclient.Item, err error)
	// lookupOne is lookup for one key and no extra keys, the hot path;
	// an error of the call is in the result.
	lookupOne(ctx context.Context, k string, ttl time.Duration) lookupResult
	// reclaim is called when k holds a value this caller cannot use (one
	// that does not decode, expired, or was invalidated by a tag) and did
	// not win (st is what lookup returned). It returns a won result when
	// this caller may now replace the value, or retry when the next
	// lookup should win it. keep says the value must stay readable: it
	// is a fallback.
	reclaim(ctx context.Context, k string, st lookupResult, keep bool) (won lookupResult, retry bool)
	// claim tries to win the right to refresh k's fresh value now
	// (EarlyRefreshBeta), as reclaim does.
	claim(ctx context.Context, k string, st lookupResult) (won lookupResult, retry bool)
	// store writes a value loaded under what was won: it.CAS is the
	// result's cas, mode its mode, fresh the value's own TTL (0: none).
	store(ctx context.Context, it *memclient.Item, mode storeMode, fresh time.Duration) error
	// release gives up what was won after a failed load; drop also
	// deletes the value it held (an expired one).
	release(ctx context.Context, k string, mode storeMode, drop bool)
	// invalidate marks k's value stale, or deletes it where values
	// cannot be stale.
	invalidate(ctx context.Context, k string) error
}

// ctxEnded reports whether err comes from the end of ctx rather than from
// memcached: ctx is done, or err is a deadline error and ctx's deadline
// has passed (a timer at that deadline may fire a moment before ctx.Err
// is set).
func ctxEnded(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// batch is one get-or-load call: GetOrLoad for one key, GetOrLoadMulti for
// many. It is used by one goroutine.
type batch[T any] struct {
	c   *Cache
	ttl time.Duration // resolved: 0 never expires
	// The loader: for GetOrLoadMulti multi; for one key, key and plain
	// (GetOrLoad) or withTTL (GetOrLoadTTL).
	multi   func(ctx context.Context, keys []string) (map[string]loaded[T], error)
	key     string
	plain   func(ctx context.Context) (T, error)
	withTTL func(ctx context.Context) (T, time.Duration, error)
	vs      versions // tag versions read by the last lookup
}

// load runs the loader for keys. A key absent from the result is "not
// found".
func (b *batch[T]) load(ctx context.Context, keys []string) (map[string]loaded[T], error) {
	if b.multi != nil {
		return b.multi(ctx, keys)
	}
	var (
		v   T
		ttl time.Duration
		err error
	)
	if b.plain != nil {
		v, err = b.plain(ctx)
	} else {
		v, ttl, err = b.withTTL(ctx)
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return map[string]loaded[T]{b.key: {err: err}}, nil // "not found", with the loader's own error
		}
		return nil, err
	}
	return map[string]loaded[T]{b.key: {v: v, ttl: ttl}}, nil
}

// job is one key this caller leads the lookup of.
type job[T any] struct {
	i       int    // index in the call
	key, fk string // the caller's key and the full key
	run     *call  // the flight this job leads; nil once published

	st        lookupResult
	looked    bool      // st holds the first lookup already (hitOne's)
	mode      storeMode // how to store what is loaded
	cas       uint64
	cur       *current[T] // the value served meanwhile or fallen back on
	refresh   bool        // an early refresh: a failure keeps cur, silently
	reclaimed bool        // reclaim ran for this key
	waited    bool        // counted in LeaseWaits

	res  keyResult[T]
	done bool
}

// current is a value found in memcached that a reload may fall back on.
type current[T any] struct {
	v       T
	s       stored
	cas     uint64
	expired bool // past its expiry: a FailSafe fallback
}

func (cu *current[T]) outcome(src source, failSafe bool) outcome {
	return outcome{data: cu.s.payload, flags: cu.s.flags, src: src, failSafe: failSafe}
}

// run gets or loads the keys (caller keys, no duplicates) whose full keys
// are fks. Keys another goroutine of this process is looking up are
// waited for, after this caller's own keys are done.
func (b *batch[T]) run(ctx context.Context, keys, fks []string, attempt int) []keyResult[T] {
	var jobs []*job[T]
	var joined []int
	var runs []*call
	for i, fk := range fks {
		run, leader := b.c.sh.flight.begin(fk)
		if leader {
			jobs = append(jobs, &job[T]{i: i, key: keys[i], fk: fk, run: run})
		} else {
			joined = append(joined, i)
			runs = append(runs, run)
		}
	}
	return b.runBegun(ctx, keys, fks, jobs, joined, runs, attempt)
}

// runBegun is run once the flights are begun: jobs are the keys this
// caller leads, joined the indexes of the keys it waits for, in the runs
// of the same index.
func (b *batch[T]) runBegun(ctx context.Context, keys, fks []string, jobs []*job[T], joined []int, runs []*call, attempt int) []keyResult[T] {
	c := b.c
	res := make([]keyResult[T], len(keys))
	if len(jobs) > 0 {
		b.lead(ctx, jobs)
		for _, j := range jobs {
			res[j.i] = j.res
		}
	}
	var retry, direct []int
	for n, i := range joined {
		out, err := runs[n].wait(ctx)
		c.count(ctx, EventCoalesced, 1)
		if err != nil {
			if ctx.Err() == nil && attempt < 3 && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				retry = append(retry, i) // the leader's ctx ended, not ours: try again
				continue
			}
			res[i].err = err
			continue
		}
		switch out.src {
		case srcCache:
			c.count(ctx, EventHit, 1)
		case srcStale:
			c.count(ctx, EventStaleServed, 1)
			if out.failSafe {
				c.count(ctx, EventFailSafeServed, 1)
			}
		}
		// Decode our own copy: waiters never share a value with the
		// leader, and may ask for another type.
		s := stored{header: header{flags: out.flags}, payload: out.data}
		if v, ok := decodeStored[T](ctx, c, &s, readBytes); ok {
			res[i].v = v
			continue
		}
		direct = append(direct, i)
	}
	if len(retry) > 0 {
		ks, fs := pick(keys, retry), pick(fks, retry)
		for n, r := range b.run(ctx, ks, fs, attempt+1) {
			res[retry[n]] = r
		}
	}
	if len(direct) > 0 {
		for n, r := range b.direct(ctx, pick(keys, direct)) {
			res[direct[n]] = r
		}
	}
	return res
}

func pick(s []string, idx []int) []string {
	out := make([]string, len(idx))
	for n, i := range idx {
		out[n] = s[i]
	}
	return out
}

// action is what a lookup result asks of its job.
type action uint8

const (
	actDone    action = iota // the job has its result
	actLoad                  // this caller won the key: load it
	actWait                  // another caller is loading it: look again later
	actReclaim               // nobody may reload it yet: make it winnable
	actClaim                 // XFetch says refresh it now: try to win it
)

// lead looks up, waits for and loads the keys of jobs, whose flights this
// caller leads, and ends every flight, also when the loader panics.
func (b *batch[T]) lead(ctx context.Context, jobs []*job[T]) {
	c := b.c
	defer func() {
		for _, j := range jobs {
			if j.run != nil { // the loader panicked
				c.sh.flight.end(j.fk, j.run, outcome{}, ErrLoaderPanicked)
				j.run = nil
			}
		}
	}()
	var won, waiting, later []*job[T]
	loadedOnce := false
	var waitStart time.Time
	backoff := pollMin
	for pending := jobs; len(pending) > 0; {
		if pending[0].looked {
			// Looked up by hitOne (one key, no view tags): only the
			// versions of the tags the value carries are missing.
			pending[0].looked = false
			b.vs = nil
			b.resolveFound(ctx, pending)
		} else if err := b.lookup(ctx, pending); err != nil {
			if ctxEnded(ctx, err) {
				for _, j := range pending {
					b.finish(j, keyResult[T]{err: err}, outcome{})
				}
				break
			}
			for _, j := range pending {
				j.st = lookupResult{err: err}
			}
		}
		now := c.sh.now()
		var retry, reclaims, claims []*job[T]
		for _, j := range pending {
			switch b.judge(ctx, j, now) {
			case actLoad:
				won = append(won, j)
			case actWait:
				waiting = append(waiting, j)
			case actReclaim:
				if j.reclaimed {
					waiting = append(waiting, j)
				} else {
					reclaims = append(reclaims, j)
				}
			case actClaim:
				claims = append(claims, j)
			}
		}
		if len(reclaims) > 0 {
			type rec struct {
				st    lookupResult
				retry bool
			}
			rs := make([]rec, len(reclaims))
			parallel(len(reclaims), func(n int) {
				j := reclaims[n]
				rs[n].st, rs[n].retry = c.co.reclaim(ctx, j.fk, j.st, j.cur != nil)
			})
			for n, j := range reclaims {
				j.reclaimed = true
				switch {
				case rs[n].st.won:
					c.count(ctx, EventMiss, 1)
					j.mode, j.cas = rs[n].st.mode, rs[n].st.cas
					won = append(won, j)
				case rs[n].retry:
					retry = append(retry, j)
				default:
					waiting = append(waiting, j)
				}
			}
		}
		if len(claims) > 0 {
			ws := make([]lookupResult, len(claims))
			parallel(len(claims), func(n int) { ws[n], _ = c.co.claim(ctx, claims[n].fk, claims[n].st) })
			for n, j := range claims {
				if !ws[n].won {
					b.finish(j, keyResult[T]{v: j.cur.v}, j.cur.outcome(srcCache, false))
					continue
				}
				j.mode, j.cas = ws[n].mode, ws[n].cas
				b.refreshing(ctx, j)
				won = append(won, j)
			}
		}
		if len(retry) > 0 {
			pending = retry
			continue
		}
		if len(won) > 0 {
			if !loadedOnce {
				// The keys won first are loaded at once, before waiting
				// for others: a caller never sits on leases that other
				// processes wait for.
				b.loadJobs(ctx, won)
				loadedOnce = true
			} else {
				later = append(later, won...)
			}
			won = nil
		}
		if len(waiting) == 0 {
			break
		}
		// Other callers are loading: wait for them, a bounded time.
		now = c.sh.now()
		if waitStart.IsZero() {
			waitStart = now
		}
		for _, j := range waiting {
			if !j.waited {
				j.waited = true
				c.count(ctx, EventLeaseWait, 1)
			}
		}
		elapsed := now.Sub(waitStart)
		if elapsed >= c.opts.LeaseWait {
			for _, j := range waiting {
				c.count(ctx, EventMiss, 1)
				j.mode, j.cas = storeSet, 0
			}
			later = append(later, waiting...)
			break
		}
		if lt := c.opts.LoadTimeout; lt > 0 && elapsed >= lt {
			// Another process reloads a value we may fall back on,
			// slowly: the fallback now, the reload goes on there.
			kept := waiting[:0]
			for _, j := range waiting {
				if j.cur != nil {
					b.fallBack(ctx, j)
					continue
				}
				kept = append(kept, j)
			}
			waiting = kept
			if len(waiting) == 0 {
				break
			}
		}
		if err := c.sh.sleep(ctx, backoff); err != nil {
			for _, j := range waiting {
				b.finish(j, keyResult[T]{err: err}, outcome{})
			}
			for _, j := range later {
				b.abandon(ctx, j, false)
				b.finish(j, keyResult[T]{err: err}, outcome{})
			}
			return
		}
		backoff = min(2*backoff, pollMax)
		pending, waiting = waiting, nil
	}
	b.loadJobs(ctx, later)
}

// lookup looks the jobs' keys up, with the versions of the view's tags in
// the same round trip, and then the versions of other tags the values
// found carry (one more round trip when there are any). It sets each
// job's st.
func (b *batch[T]) lookup(ctx context.Context, jobs []*job[T]) error {
	c := b.c
	b.vs = nil
	if len(jobs) == 1 && len(c.tags) == 0 {
		jobs[0].st = c.co.lookupOne(ctx, jobs[0].fk, b.ttl)
	} else {
		ks := make([]string, len(jobs))
		for i, j := range jobs {
			ks[i] = j.fk
		}
		var tk []string
		if len(c.tags) > 0 {
			tk = c.viewTagKeys
		}
		sts, items, err := c.co.lookup(ctx, ks, b.ttl, tk)
		if err != nil {
			return err
		}
		for i, j := range jobs {
			j.st = sts[i]
		}
		if len(c.tags) > 0 {
			b.vs = make(versions, len(c.tags))
			b.vs.note(c.tags, tk, items)
		}
	}
	b.resolveFound(ctx, jobs)
	return nil
}

// resolveFound reads into b.vs the versions of the tags that the values
// the jobs' lookups found carry (one round trip when there are any).
func (b *batch[T]) resolveFound(ctx context.Context, jobs []*job[T]) {
	c := b.c
	var tagged []*stored
	for _, j := range jobs {
		if j.st.state != stHit && j.st.state != stStale {
			continue
		}
		if s, k := parseStored(j.st.data, j.st.flags); k == itemValue && len(s.tags) > 0 {
			sc := s
			tagged = append(tagged, &sc)
		}
	}
	if len(tagged) > 0 {
		if b.vs == nil {
			b.vs = make(versions)
		}
		_ = c.resolveTags(ctx, b.vs, tagged) // a tag it cannot read is absent: the value is a miss
	}
}

// judge decides what to do with what the lookup of j's key found.
func (b *batch[T]) judge(ctx context.Context, j *job[T], now time.Time) action {
	c := b.c
	st := &j.st
	j.cur = nil // what an earlier lookup found is gone
	if st.err != nil {
		if ctxEnded(ctx, st.err) || errors.Is(st.err, memclient.ErrMalformedKey) {
			b.finish(j, keyResult[T]{err: st.err}, outcome{})
			return actDone
		}
		c.count(ctx, EventError, 1)
		c.count(ctx, EventMiss, 1)
		j.mode, j.cas = storeNone, 0
		return actLoad
	}
	switch st.state {
	case stWon:
		c.count(ctx, EventMiss, 1)
		j.mode, j.cas = st.mode, st.cas
		return actLoad
	case stPending:
		return actWait
	}
	s, kind := parseStored(st.data, st.flags)
	usable := kind == itemValue && (len(s.tags) == 0 || b.vs.valid(&s))
	if kind == itemCorrupt {
		c.count(ctx, EventDecodeError, 1)
	}
	if usable && s.kind == kindNotFound {
		if st.won && st.state == stStale { // Invalidate on a cached "not found"
			c.count(ctx, EventMiss, 1)
			j.mode, j.cas = st.mode, st.cas
			return actLoad
		}
		b.ignoreWin(ctx, j)
		c.count(ctx, EventNegativeHit, 1)
		b.finish(j, keyResult[T]{err: ErrNotFound}, outcome{})
		return actDone
	}
	var v T
	if usable {
		v, usable = decodeStored[T](ctx, c, &s, readBytes) // published to the goroutines sharing the lookup
	}
	if !usable {
		switch {
		case st.won:
			c.count(ctx, EventMiss, 1)
			j.mode, j.cas = st.mode, st.cas
			return actLoad
		case st.state == stStale || st.pending:
			return actWait // someone else holds the right to reload it
		}
		return actReclaim
	}
	out := func(src source, failSafe bool) outcome {
		return outcome{data: s.payload, flags: s.flags, src: src, failSafe: failSafe}
	}
	keep := func() *current[T] { return &current[T]{v: v, s: s, cas: st.cas} } // for later: a fallback, a refresh
	ms := now.UnixMilli()
	if s.expires != 0 && ms >= s.expires {
		if s.retryAt != 0 && ms < s.retryAt {
			// A failed reload keeps it in service for a while.
			b.ignoreWin(ctx, j)
			c.count(ctx, EventStaleServed, 1)
			c.count(ctx, EventFailSafeServed, 1)
			b.finish(j, keyResult[T]{v: v}, out(srcStale, true))
			return actDone
		}
		if fs := c.opts.FailSafe; fs > 0 && ms < s.expires+fs.Milliseconds() {
			j.cur = keep()
			j.cur.expired = true
		}
		switch {
		case st.won:
			c.count(ctx, EventMiss, 1)
			j.mode, j.cas = st.mode, st.cas
			return actLoad
		case st.state == stStale || st.pending:
			return actWait
		}
		return actReclaim
	}
	if st.state == stStale {
		if st.won {
			// Reload after the flight: the goroutines sharing this
			// lookup get the stale value at once, like every other
			// process.
			c.count(ctx, EventMiss, 1)
			j.mode, j.cas = st.mode, st.cas
			if c.opts.FailSafe > 0 {
				j.cur = keep()
			}
			b.publish(j, out(srcStale, false), nil)
			j.res.v = v // until the reload says otherwise
			return actLoad
		}
		c.count(ctx, EventStaleServed, 1)
		b.finish(j, keyResult[T]{v: v}, out(srcStale, false))
		return actDone
	}
	c.count(ctx, EventHit, 1)
	if st.won {
		j.cur = keep()
		j.mode, j.cas = st.mode, st.cas
		b.refreshing(ctx, j)
		return actLoad
	}
	if b.xfetch(&s, now) {
		j.cur = keep()
		return actClaim
	}
	b.finish(j, keyResult[T]{v: v}, out(srcCache, false))
	return actDone
}

// refreshing makes j an early refresh of its current value: the value is
// published at once, and a failed refresh keeps it.
func (b *batch[T]) refreshing(ctx context.Context, j *job[T]) {
	b.c.count(ctx, EventRefresh, 1)
	j.refresh = true
	b.publish(j, j.cur.outcome(srcCache, false), nil)
	j.res.v = j.cur.v
}

// xfetch reports whether a hit on s at now should refresh it early: the
// XFetch rule, now - loadTime*beta*ln(rand) >= expiry.
func (b *batch[T]) xfetch(s *stored, now time.Time) bool {
	beta := b.c.opts.EarlyRefreshBeta
	if beta <= 0 || s.expires == 0 || s.loadTime <= 0 {
		return false
	}
	gap := float64(s.loadTime) * beta * -math.Log(b.c.sh.rand())
	if gap >= float64(math.MaxInt64) {
		return true
	}
	return !now.Add(time.Duration(gap)).Before(time.UnixMilli(s.expires))
}

// ignoreWin gives back a right to reload that the lookup handed out but
// the value does not need (a cached "not found", a value kept in service
// after a failed reload): a lock key is released; a lease needs nothing.
func (b *batch[T]) ignoreWin(ctx context.Context, j *job[T]) {
	if j.st.won && j.st.mode == storeLocked {
		b.c.co.release(context.WithoutCancel(ctx), j.fk, storeLocked, false)
	}
}

// publish ends j's flight with out (or err) for the goroutines waiting
// for it, once.
func (b *batch[T]) publish(j *job[T], out outcome, err error) {
	if j.run != nil {
		b.c.sh.flight.end(j.fk, j.run, out, err)
		j.run = nil
	}
}

// finish gives j its result and publishes it.
func (b *batch[T]) finish(j *job[T], r keyResult[T], out outcome) {
	j.res, j.done = r, true
	b.publish(j, out, r.err)
}

// fallBack finishes j with its current value, served because a reload
// failed or is slow.
func (b *batch[T]) fallBack(ctx context.Context, j *job[T]) {
	c := b.c
	if j.refresh {
		b.finish(j, keyResult[T]{v: j.cur.v}, j.cur.outcome(srcCache, false))
		return
	}
	c.count(ctx, EventStaleServed, 1)
	c.count(ctx, EventFailSafeServed, 1)
	b.finish(j, keyResult[T]{v: j.cur.v}, j.cur.outcome(srcStale, true))
}

// abandon releases what j won, after a failed load, so that waiters
// elsewhere take over at once instead of after LeaseTTL.
func (b *batch[T]) abandon(ctx context.Context, j *job[T], drop bool) {
	if j.mode == storeNone || j.mode == storeSet {
		return
	}
	b.c.co.release(context.WithoutCancel(ctx), j.fk, j.mode, drop)
	if drop {
		b.c.localDrop(j.fk)
	}
}

// settled is the result of loading one job's key.
type settled[T any] struct {
	r        keyResult[T]
	out      outcome
	fallback bool // the load failed and j.cur is to be served
}

// loadJobs runs one load for the keys of jobs, all won by this caller,
// stores what it returns and finishes the jobs. When every job has a
// value to fall back on and Options.LoadTimeout is set, a load slower
// than that goes on in the background and the jobs get their values.
func (b *batch[T]) loadJobs(ctx context.Context, jobs []*job[T]) {
	if len(jobs) == 0 {
		return
	}
	c := b.c
	tags, err := c.stamp(ctx, b.vs)
	if err != nil {
		// Without versions the values cannot carry their tags: load
		// them, store nothing.
		c.count(ctx, EventError, 1)
		for _, j := range jobs {
			b.abandon(ctx, j, false)
			j.mode = storeNone
		}
	}
	soft := c.opts.LoadTimeout > 0
	for _, j := range jobs {
		soft = soft && j.cur != nil
	}
	if soft {
		if b.loadSoft(ctx, jobs, tags) {
			return
		}
	}
	b.apply(ctx, jobs, b.settle(ctx, jobs, tags))
}

// loadSoft runs the load in the background and waits for it up to
// LoadTimeout (or the end of ctx). It returns false when no background
// slot is free. A loader panic is raised again in the caller's goroutine
// when the caller still waits; after it left, the panic is only counted
// (LoadErrors), as there is no goroutine of the caller's to raise it in.

func (b *batch[T]) loadSoft(ctx context.Context, jobs []*job[T], tags []tagVersion) bool {
	c := b.c
	type result struct {
		res      []settled[T]
		panicked bool
		p        any
	}
	done := make(chan result, 1)
	started := c.sh.bg.start(ctx, c.opts.LeaseTTL, func(bctx context.Context) {
		var r result
		func() {
			defer func() {
				if p := recover(); p != nil {
					r.panicked, r.p = true, p
				}
			}()
			r.res = b.settle(bctx, jobs, tags)
		}()
		done <- r
	})
	if !started {
		return false
	}
	t := time.NewTimer(c.opts.LoadTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		if r.panicked {
			panic(r.p)
		}
		b.apply(ctx, jobs, r.res)
	case <-t.C:
		c.count(ctx, EventBackgroundLoad, uint64(len(jobs)))
		for _, j := range jobs {
			b.fallBack(ctx, j)
		}
	case <-ctx.Done():
		c.count(ctx, EventBackgroundLoad, uint64(len(jobs)))
		for _, j := range jobs {
			b.finish(j, keyResult[T]{err: ctx.Err()}, outcome{})
		}
	}
	return true
}

// apply gives the jobs the results of their load.
func (b *batch[T]) apply(ctx context.Context, jobs []*job[T], res []settled[T]) {
	for i, j := range jobs {
		if res[i].fallback {
			b.fallBack(ctx, j)
			continue
		}
		b.finish(j, res[i].r, res[i].out)
	}
}

// settle runs the load for jobs and stores its results. It reads the jobs
// but writes none of them (it may run in the background while its caller
// moves on). If the loader panics, it releases the keys and the panic
// goes on.
func (b *batch[T]) settle(ctx context.Context, jobs []*job[T], tags []tagVersion) []settled[T] {
	c := b.c
	n := uint64(len(jobs))
	keys := make([]string, len(jobs))
	for i, j := range jobs {
		keys[i] = j.key
	}
	c.count(ctx, EventLoad, n)
	if b.multi != nil {
		c.count(ctx, EventBatchLoad, n)
	}
	finished := false
	defer func() {
		if !finished { // the loader panicked
			c.count(ctx, EventLoadError, n)
			for _, j := range jobs {
				b.abandon(ctx, j, false)
			}
		}
	}()
	start := c.sh.now()
	m, err := b.load(ctx, keys)
	finished = true
	took := c.sh.now().Sub(start)

	out := make([]settled[T], len(jobs))
	if err != nil && errors.Is(err, ErrNotFound) {
		m, err = nil, nil // the whole batch is "not found"
	}
	if err != nil {
		c.count(ctx, EventLoadError, n)
		if b.multi != nil {
			err = fmt.Errorf("objcache: loading %d key(s): %w", len(keys), err)
		}
		for i, j := range jobs {
			out[i] = b.failed(ctx, j, err)
		}
		return out
	}
	var writes []write
	now := c.sh.now()
	for i, j := range jobs {
		l, ok := m[j.key]
		if !ok || l.err != nil {
			c.count(ctx, EventNotFound, 1)
			nf := l.err
			if nf == nil {
				nf = ErrNotFound
			}
			out[i].r.err = nf
			if c.opts.NegativeTTL > 0 && j.mode != storeNone {
				h := header{kind: kindNotFound, tags: tags}
				writes = append(writes, write{j: i, data: envelope(&h, nil), flags: envFlags, ttl: c.opts.NegativeTTL})
			} else {
				b.abandon(ctx, j, false)
			}
			continue
		}
		ttl := b.ttl
		if l.ttl != 0 {
			ttl = c.ttl(l.ttl)
		}
		h, phys := c.writeHeader(now, ttl, tags)
		h.loadTime = took
		payload, flags, err := c.ser.Marshal(l.v)
		if err != nil {
			b.abandon(ctx, j, false)
			out[i].r.err = fmt.Errorf("objcache: encoding loaded value of %q: %w", j.key, err)
			continue
		}
		h.flags = flags
		writes = append(writes, write{j: i, data: envelope(&h, payload), flags: envFlags, ttl: phys, fresh: ttl})
		out[i] = settled[T]{r: keyResult[T]{v: l.v}, out: outcome{data: payload, flags: flags, src: srcLoaded}}
	}
	b.store(ctx, jobs, writes)
	return out
}

// write is a value to store for the job jobs[j].
type write struct {
	j     int
	data  []byte
	flags uint32
	ttl   time.Duration // memcached's
	fresh time.Duration // the value's own (lockKeys' refresh window)
}

// store writes values back, concurrently so that they share round trips.
// Failures are counted, not returned: the callers have their values
// either way.
func (b *batch[T]) store(ctx context.Context, jobs []*job[T], writes []write) {
	c := b.c
	parallel(len(writes), func(n int) {
		w := writes[n]
		j := jobs[w.j]
		it := &memclient.Item{Key: j.fk, Value: w.data, Flags: w.flags, TTL: w.ttl}
		var err error
		switch j.mode {
		case storeNone:
			return
		case storeSet:
			err = c.client.Set(ctx, it)
		default: // a lease or a lock won from the coordinator
			it.CAS = j.cas
			err = c.co.store(ctx, it, j.mode, w.fresh)
		}
		c.localDrop(j.fk)
		if err != nil {
			c.count(ctx, EventError, 1)
		}
	})
}

// failed settles a job whose load failed with err: an early refresh keeps
// its current value, a FailSafe fallback is served and kept in service for
// FailSafeBackoff, anything else returns err and releases the key.
func (b *batch[T]) failed(ctx context.Context, j *job[T], err error) settled[T] {
	switch {
	case j.refresh:
		b.abandon(ctx, j, false)
		return settled[T]{fallback: true}
	case j.cur != nil && j.cur.expired:
		b.keepInService(ctx, j)
		return settled[T]{fallback: true}
	case j.cur != nil:
		b.abandon(ctx, j, false)
		return settled[T]{fallback: true}
	}
	// A value won for a reload (expired, or unusable) that cannot be
	// served: delete it, so that the next caller loads instead of
	// waiting for a reload that nobody runs.
	b.abandon(ctx, j, j.mode == storeRecache)
	if j.st.err != nil {
		// memcached failed for this key first: the error says both.
		err = errors.Join(err, j.st.err)
	}
	return settled[T]{r: keyResult[T]{err: err}}
}

// keepInService stores j's expired value again, marked as in service for
// FailSafeBackoff (within its FailSafe window): every process serves it
// meanwhile and the next reload comes after.
func (b *batch[T]) keepInService(ctx context.Context, j *job[T]) {
	c := b.c
	now := c.sh.now()
	end := time.UnixMilli(j.cur.s.expires).Add(c.opts.FailSafe)
	backoff := min(c.opts.FailSafeBackoff, end.Sub(now))
	if backoff <= 0 || j.mode == storeNone {
		b.abandon(ctx, j, false)
		return
	}
	h := j.cur.s.header
	h.retryAt = now.Add(backoff).UnixMilli()
	// The R window (FailSafe + EarlyRefresh) opens when the back-off ends.
	window := c.opts.FailSafe
	if er := c.opts.EarlyRefresh; er > 0 && b.ttl > er {
		window += er
	}
	it := &memclient.Item{Key: j.fk, Value: envelope(&h, j.cur.s.payload), Flags: envFlags, TTL: backoff + window}
	var err error
	switch j.mode {
	case storeSet: // loaded after waiting for another caller: over the value read
		it.CAS = j.cur.cas
		err = c.client.CompareAndSwap(ctx, it)
		if errors.Is(err, memclient.ErrCASConflict) || errors.Is(err, memclient.ErrCacheMiss) {
			err = nil
		}
	default:
		it.CAS = j.cas
		err = c.co.store(ctx, it, j.mode, backoff+c.opts.EarlyRefresh)
	}
	c.localDrop(j.fk)
	if err != nil {
		c.count(ctx, EventError, 1)
	}
}

// direct runs the loader for keys without the cache: memcached cannot be
// used, or the value cached is of another type than this caller's.
func (b *batch[T]) direct(ctx context.Context, keys []string) []keyResult[T] {
	c := b.c
	n := uint64(len(keys))
	c.count(ctx, EventLoad, n)
	if b.multi != nil {
		c.count(ctx, EventBatchLoad, n)
	}
	finished := false
	defer func() {
		if !finished {
			c.count(ctx, EventLoadError, n)
		}
	}()
	m, err := b.load(ctx, keys)
	finished = true
	if err != nil && errors.Is(err, ErrNotFound) {
		m, err = nil, nil
	}
	res := make([]keyResult[T], len(keys))
	for i, k := range keys {
		switch l, ok := m[k]; {
		case err != nil:
			if b.multi != nil {
				res[i].err = fmt.Errorf("objcache: loading %d key(s): %w", len(keys), err)
			} else {
				res[i].err = err
			}
		case !ok:
			c.count(ctx, EventNotFound, 1)
			res[i].err = ErrNotFound
		case l.err != nil:
			c.count(ctx, EventNotFound, 1)
			res[i].err = l.err
		default:
			res[i].v = l.v
		}
	}
	if err != nil {
		c.count(ctx, EventLoadError, n)
	}
	return res
}
