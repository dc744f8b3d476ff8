package main

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/objcache"
)

func TestLocalMemo(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLocalMemo(time.Minute, nil)
	l.now = func() time.Time { return now }
	calls := 0
	boom := errors.New("boom")
	double := localMemo1(l, "double", func(_ context.Context, n int) (int, error) {
		calls++
		if n < 0 {
			return 0, boom
		}
		return 2 * n, nil
	})
	ctx := context.Background()

	for _, tc := range []struct {
		name      string
		advance   time.Duration
		arg, want int
		calls     int
	}{
		{name: "first call loads", arg: 2, want: 4, calls: 1},
		{name: "second call hits", arg: 2, want: 4, calls: 1},
		{name: "other argument loads", arg: 3, want: 6, calls: 2},
		{name: "still fresh just before the TTL", advance: time.Minute, arg: 2, want: 4, calls: 2},
		{name: "expired after the TTL", advance: time.Second, arg: 2, want: 4, calls: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = now.Add(tc.advance)
			got, err := double(ctx, tc.arg)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.calls, calls)
		})
	}
	_, err := double(ctx, -1)
	require.ErrorIs(t, err, boom)
	_, err = double(ctx, -1)
	require.ErrorIs(t, err, boom)
	assert.Equal(t, 5, calls, "errors are not cached")
	assert.Equal(t, uint64(2), l.hits.Load())
	assert.Equal(t, uint64(5), l.loads.Load())
	assert.Equal(t, uint64(2), l.loadErrors.Load())

	count := localMemo0(l, "count", func(context.Context) (int, error) { calls++; return 7, nil })
	for range 3 {
		n, err := count(ctx)
		require.NoError(t, err)
		assert.Equal(t, 7, n)
	}
	assert.Equal(t, 6, calls)
}

// TestLocalMemoNotFound: a loader's objcache.ErrNotFound is counted as a
// not-found, not as a load error, one key at a time and in batches (a key
// the batch loader does not return), and every count reaches the
// observer as objcache would report it.
func TestLocalMemoNotFound(t *testing.T) {
	var obs eventCounter
	l := newLocalMemo(time.Minute, &obs)
	ctx := context.Background()
	one := localMemo1(l, "one", func(_ context.Context, n int) (int, error) {
		if n > 10 {
			return 0, objcache.ErrNotFound
		}
		return n, nil
	})
	_, err := one(ctx, 11)
	require.ErrorIs(t, err, objcache.ErrNotFound)
	many := localMemoMulti(l, "many", func(_ context.Context, keys []int) (map[int]int, error) {
		out := map[int]int{}
		for _, k := range keys {
			if k <= 10 {
				out[k] = k
			}
		}
		return out, nil
	})
	got, err := many(ctx, []int{1, 2, 20})
	require.NoError(t, err)
	assert.Equal(t, map[int]int{1: 1, 2: 2}, got)
	_, err = many(ctx, []int{1, 2})
	require.NoError(t, err)

	assert.Equal(t, uint64(2), l.notFound.Load())
	assert.Zero(t, l.loadErrors.Load())
	assert.Equal(t, uint64(4), l.loads.Load())
	assert.Equal(t, uint64(2), l.hits.Load())
	assert.Equal(t, map[objcache.EventKind]uint64{
		objcache.EventHit: 2, objcache.EventMiss: 4, objcache.EventLoad: 4, objcache.EventNotFound: 2,
	}, obs.counts())
}

// eventCounter is an objcache.Observer that adds up what it hears.
type eventCounter struct {
	mu sync.Mutex // protects m
	m  map[objcache.EventKind]uint64
}

func (c *eventCounter) ObserveCache(_ context.Context, ev objcache.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[objcache.EventKind]uint64{}
	}
	c.m[ev.Kind] += ev.Count
}

func (c *eventCounter) counts() map[objcache.EventKind]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}
