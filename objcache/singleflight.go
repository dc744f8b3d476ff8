package objcache

import (
	"context"
	"sync"
)

// group is a context-aware singleflight: concurrent do calls with the same
// key share one run of fn. A waiter whose ctx ends stops waiting (the run
// goes on for the others). If fn panics or calls runtime.Goexit, waiters
// are released with ErrLoaderPanicked and the panic goes on unwinding the
// goroutine that ran fn (groupcache issue #139 is the bug this avoids).
// The zero value is ready; it is safe for concurrent use.
type group struct {
	mu sync.Mutex       // protects m
	m  map[string]*call // runs in progress, by key
}

type call struct {
	done    chan struct{} // closed when res and err are set
	res     outcome
	err     error
	waiters int // callers waiting for this run; guarded by group.mu
}

// do runs fn for key unless a run is in progress, in which case it waits
// for that run's result. leader reports whether this caller ran fn.
func (g *group) do(ctx context.Context, key string, fn func() (outcome, error)) (res outcome, err error, leader bool) {
	g.mu.Lock()
	if run, ok := g.m[key]; ok {
		run.waiters++
		g.mu.Unlock()
		select {
		case <-run.done:
			return run.res, run.err, false
		case <-ctx.Done():
			return outcome{}, ctx.Err(), false
		}
	}
	if g.m == nil {
		g.m = make(map[string]*call)
	}
	run := &call{done: make(chan struct{})}
	g.m[key] = run
	g.mu.Unlock()

	finished := false
	defer func() {
		if !finished {
			run.err = ErrLoaderPanicked
		}
		g.mu.Lock()
		delete(g.m, key)
		g.mu.Unlock()
		close(run.done)
	}()
	run.res, run.err = fn()
	finished = true
	return run.res, run.err, true
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
