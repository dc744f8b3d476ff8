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
	if c, ok := g.m[key]; ok {
		c.waiters++
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.res, c.err, false
		case <-ctx.Done():
			return outcome{}, ctx.Err(), false
		}
	}
	if g.m == nil {
		g.m = make(map[string]*call)
	}
	c := &call{done: make(chan struct{})}
	g.m[key] = c
	g.mu.Unlock()

	finished := false
	defer func() {
		if !finished {
			c.err = ErrLoaderPanicked
		}
		g.mu.Lock()
		delete(g.m, key)
		g.mu.Unlock()
		close(c.done)
	}()
	c.res, c.err = fn()
	finished = true
	return c.res, c.err, true
}

// waiting returns how many callers wait for the run in progress for key.
func (g *group) waiting(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.m[key]; ok {
		return c.waiters
	}
	return 0
}
