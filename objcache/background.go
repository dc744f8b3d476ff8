package objcache

import (
	"context"
	"sync"
	"time"
)

// background bounds the loads that go on after their caller stopped
// waiting (Options.LoadTimeout) and stops them on Close. No goroutine
// runs until a soft timeout needs one; none outlives Close.
type background struct {
	mu     sync.Mutex // protects closed, n, life and stop
	closed bool
	n      int             // loads running
	life   context.Context // cancelled by Close; nil until the first load
	stop   context.CancelFunc
	wg     sync.WaitGroup // one per load running
}

// start runs f in a goroutine with a context that keeps ctx's values but
// not its cancellation, ends after timeout, and is cancelled by close. It
// returns false, running nothing, when MaxBackgroundLoads loads are
// running or close was called.
func (bg *background) start(ctx context.Context, timeout time.Duration, f func(ctx context.Context)) bool {
	bg.mu.Lock()
	if bg.closed || bg.n >= MaxBackgroundLoads {
		bg.mu.Unlock()
		return false
	}
	if bg.life == nil {
		bg.life, bg.stop = context.WithCancel(context.Background())
	}
	life := bg.life
	bg.n++
	bg.wg.Add(1)
	bg.mu.Unlock()

	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	unhook := context.AfterFunc(life, cancel)
	go func() {
		defer func() {
			unhook()
			cancel()
			bg.mu.Lock()
			bg.n--
			bg.mu.Unlock()
			bg.wg.Done()
		}()
		f(lctx)
	}()
	return true
}

// close cancels the loads running and waits for them to return.
func (bg *background) close() {
	bg.mu.Lock()
	bg.closed = true
	if bg.stop != nil {
		bg.stop()
	}
	bg.mu.Unlock()
	bg.wg.Wait()
}
