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
