package objcache

import (
	"context"
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
// The zero value is ready; it is safe for concurrent use.
type group struct {
	mu sync.Mutex       // protects m and the waiters of its calls
	m  map[string]*call // runs in progress, by key
}

type call struct {
	// done is made by the first waiter (a run nobody waits for costs no
	// channel) and closed by end; guarded by group.mu.
	done    chan struct{}
	res     outcome
	err     error
	waiters int // callers waiting for this run; guarded by group.mu
}

// begin joins the run in progress for key, or starts one: leader reports
// whether this caller must run it and end it.
func (g *group) begin(key string) (run *call, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if run, ok := g.m[key]; ok {
		run.waiters++
		if run.done == nil {
			run.done = make(chan struct{})
		}
		return run, false
	}
	if g.m == nil {
		g.m = make(map[string]*call)
	}
	run = callPool.Get().(*call)
	g.m[key] = run
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
	g.mu.Lock()
	if g.m[key] == run {
		delete(g.m, key)
	}
	done := run.done
	g.mu.Unlock()
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
	g.mu.Lock()
	defer g.mu.Unlock()
	if run, ok := g.m[key]; ok {
		return run.waiters
	}
	return 0
}
