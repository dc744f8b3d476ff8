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
// does not decode, expired or was invalidated by a tag), and stores fn's
// result for ttl (0 means Options.TTL) only if nobody changed the key in
// between. Through a view with tags, the tags' versions are read with the
// value and recorded with the result. When somebody did, it waits a
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
		// The value and the versions of c's tags, in one round trip: the
		// new value records the versions read before fn computed it.
		it, vs, err := c.readOne(ctx, k)
		if err != nil {
			return zero, err
		}
		var cas uint64
		if it != nil {
			cas = it.CAS
		}
		old, found := readValue[T](ctx, c, it, vs)
		nv, err := fn(old, found)
		if err != nil {
			return zero, err
		}
		if vs == nil {
			vs = make(versions)
		}
		tags, err := c.stamp(ctx, vs)
		if err != nil {
			return zero, err
		}
		h, phys := c.writeHeader(c.sh.now(), ttl, tags)
		data, flags, err := c.encodeValue(nv, &h, true)
		if err != nil {
			return zero, fmt.Errorf("objcache: encoding %q: %w", key, err)
		}
		item := &memclient.Item{Key: k, Value: data, Flags: flags, TTL: phys, CAS: cas}
		if cas != 0 {
			err = c.client.CompareAndSwap(ctx, item)
		} else {
			err = c.client.Add(ctx, item)
		}
		c.localDrop(k)
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
