package objcache

import (
	"context"
	"hash/maphash"
	"sync"
)

// callPool recycles the calls that nobody waited for: on the hot path (a
// hit that no other goroutine shared) a run then costs no allocation.
var callPool = sync.Pool{New: func() any { return new(call) }}

// group is a context-aware singleflight: of the concurrent lookups of one
// key, the first (the leader) runs it and the others wait for its
// outcome. A waiter whose ctx ends stops waiting (the run goes on for the
// others). A leader must end every run it began, also when its loader
// panics: it then ends them with ErrLoaderPanicked, releasing the
// waiters, and the panic goes on unwinding the leader's goroutine
// (groupcache issue #139 is the bug this avoids). A leader may lead the
// runs of many keys at once (GetOrLoadMulti); it ends them all before it
// waits for runs that others lead, so no two leaders wait for each other.
// The zero value is ready; it is safe for concurrent use. Its keys are
// spread over flightShards shards, each with its own lock, so that
// lookups of different keys seldom wait for each other's lock.
type group struct {
	shards [flightShards]flightShard
}

// flightShards is how many shards a group has (a power of two).
const flightShards = 16

type flightShard struct {
	mu sync.Mutex       // protects m and the waiters of its calls
	m  map[string]*call // runs in progress, by key
	_  [48]byte         // a cache line each, on 64-bit machines
}

// flightSeed hashes keys to shards.
var flightSeed = maphash.MakeSeed()

func (g *group) shard(key string) *flightShard {
	return &g.shards[maphash.String(flightSeed, key)&(flightShards-1)]
}

type call struct {
	// done is made by the first waiter (a run nobody waits for costs no
	// channel) and closed by end; guarded by its shard's mu.
	done    chan struct{}
	res     outcome
	err     error
	waiters int // callers waiting for this run; guarded by its shard's mu
}

// begin joins the run in progress for key, or starts one: leader reports
// whether this caller must run it and end it.
func (g *group) begin(key string) (run *call, leader bool) {
	sh := g.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if run, ok := sh.m[key]; ok {
		run.waiters++
		if run.done == nil {
			run.done = make(chan struct{})
		}
		return run, false
	}
	if sh.m == nil {
		sh.m = make(map[string]*call)
	}
	run = callPool.Get().(*call)
	sh.m[key] = run
	return run, true
}

// end publishes the outcome of a run begun as leader and releases its
// waiters; shared reports whether there were any (then they read res's
// bytes too). Waiters join only while the run is in g.m, so once end
// removed it, done can no longer be made: a run nobody joined is nobody
// else's, and goes back to the pool. The leader must not use run after
// end.
func (g *group) end(key string, run *call, res outcome, err error) (shared bool) {
	run.res, run.err = res, err
	sh := g.shard(key)
	sh.mu.Lock()
	if sh.m[key] == run {
		delete(sh.m, key)
	}
	done := run.done
	sh.mu.Unlock()
	if done == nil {
		*run = call{}
		callPool.Put(run)
		return false
	}
	close(done)
	return true
}

// wait returns the outcome of a run joined with begin, or ctx's error if
// it ends first.
func (run *call) wait(ctx context.Context) (outcome, error) {
	select {
	case <-run.done:
		return run.res, run.err
	case <-ctx.Done():
		return outcome{}, ctx.Err()
	}
}

// waiting returns how many callers wait for the run in progress for key.
func (g *group) waiting(key string) int {
	sh := g.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if run, ok := sh.m[key]; ok {
		return run.waiters
	}
	return 0
}
