package otterlocal

import "time"

// NewWithClock is New on a clock the test moves.
func NewWithClock(cfg Config, now func() time.Time) (*Cache, error) { return newCache(cfg, now) }
