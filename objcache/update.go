package objcache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/memkit/memkit/memclient"
)

// Backoff bounds between Update attempts; each wait is random in
// [0, min(updateBackoffMax, updateBackoffMin<<attempt)) ("full jitter").
const (
	updateBackoffMin = time.Millisecond
	updateBackoffMax = 100 * time.Millisecond
)

// Update is a gets/cas read-modify-write: it reads key's value, calls fn
// with it (found false and old the zero T when there is none, or when it
// does not decode), and stores fn's result for ttl (0 means Options.TTL)
// only if nobody changed the key in between. When somebody did, it waits a
// random, growing while (jittered exponential backoff) and starts over, up
// to Options.UpdateRetries times, then returns ErrTooManyConflicts. fn may
// run several times and must have no side effects besides its result. An
// error from fn aborts the update and is returned as is.
//
// It returns the value stored.
func Update[T any](ctx context.Context, c *Cache, key string, ttl time.Duration, fn func(old T, found bool) (T, error)) (T, error) {
	var zero T
	k, err := c.Key(ctx, key)
	if err != nil {
		return zero, err
	}
	ttl = c.ttl(ttl)
	for attempt := 0; ; attempt++ {
		it, err := c.client.Get(ctx, k)
		var (
			old   T
			found bool
			cas   uint64
		)
		switch {
		case err == nil:
			cas = it.CAS
			old, found = decode[T](c, it.Value, it.Flags)
		case errors.Is(err, memclient.ErrCacheMiss):
		default:
			return zero, err
		}
		nv, err := fn(old, found)
		if err != nil {
			return zero, err
		}
		data, flags, err := c.ser.Marshal(nv)
		if err != nil {
			return zero, fmt.Errorf("objcache: encoding %q: %w", key, err)
		}
		item := &memclient.Item{Key: k, Value: data, Flags: flags, TTL: ttl, CAS: cas}
		if cas != 0 {
			err = c.client.CompareAndSwap(ctx, item)
		} else {
			err = c.client.Add(ctx, item)
		}
		switch {
		case err == nil:
			return nv, nil
		case errors.Is(err, memclient.ErrCASConflict), errors.Is(err, memclient.ErrCacheMiss), errors.Is(err, memclient.ErrNotStored):
			// Lost the race: somebody wrote, deleted or created it.
		default:
			return zero, err
		}
		if attempt >= c.opts.UpdateRetries {
			return zero, fmt.Errorf("%w: %q after %d attempts", ErrTooManyConflicts, key, attempt+1)
		}
		ceil := min(updateBackoffMax, updateBackoffMin<<min(attempt, 16))
		if err := c.sh.sleep(ctx, rand.N(ceil)+1); err != nil {
			return zero, err
		}
	}
}
