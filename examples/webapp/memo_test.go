package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLocalMemo(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLocalMemo(time.Minute)
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
