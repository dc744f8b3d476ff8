package objcache

import (
	"context"
	"time"
)

// Waiting returns how many GetOrLoad callers wait for the run in progress
// for key (a full key, as Key returns).
func Waiting(c *Cache, fullKey string) int { return c.sh.flight.waiting(fullKey) }

// SetClock replaces the clock and the sleep of c and its namespaces.
func SetClock(c *Cache, now func() time.Time, sleep func(context.Context, time.Duration) error) {
	if now != nil {
		c.sh.now = now
	}
	if sleep != nil {
		c.sh.sleep = sleep
	}
}

// SetRand replaces the uniform draw in (0, 1] of EarlyRefreshBeta.
func SetRand(c *Cache, rand func() float64) { c.sh.rand = rand }

// FastArgsKey is the key Memoize1 builds for a without encoding/json, and
// whether it could (see appendArg).
func FastArgsKey[A any](name string, a A) (string, bool) {
	arg, ok := appendArg(nil, &a)
	return name + ":" + string(arg), ok
}

// FastArgsKey2 is FastArgsKey for Memoize2's two arguments.
func FastArgsKey2[A, B any](name string, a A, b B) (string, bool) {
	arg, ok := appendArgs2(nil, &a, &b)
	return name + ":" + string(arg), ok
}

// FastArgsKey3 is FastArgsKey for Memoize3's three arguments.
func FastArgsKey3[A, B, D any](name string, a A, b B, d D) (string, bool) {
	arg, ok := appendArgs3(nil, &a, &b, &d)
	return name + ":" + string(arg), ok
}
