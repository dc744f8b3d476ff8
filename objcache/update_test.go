package objcache_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

var errSoldOut = errors.New("sold out")

func buy(left int, found bool) (int, error) {
	if !found || left <= 0 {
		return 0, errSoldOut
	}
	return left - 1, nil
}

// The proof: the seed's G88 ticket race. 40 concurrent buyers, from 4
// processes, take tickets from 88: 48 are left, none lost or sold twice.
func TestUpdateTicketRace(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		cs := caches(t, processes, srv.Addr, proto, objcache.Options{Prefix: "g88:"})
		require.NoError(t, cs[0].Set(ctx, "tickets", 88, 0))

		const buyers = 40
		var wg sync.WaitGroup
		errs := make(chan error, buyers)
		seen := make(chan int, buyers)
		start := make(chan struct{})
		for i := range buyers {
			wg.Go(func() {
				<-start
				left, err := objcache.Update(ctx, cs[i%processes], "tickets", 0, buy)
				errs <- err
				seen <- left
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		close(seen)
		for err := range errs {
			require.NoError(t, err)
		}
		distinct := map[int]bool{}
		for left := range seen {
			assert.False(t, distinct[left], "two buyers got ticket %d", left)
			distinct[left] = true
		}
		left, err := objcache.Get[int](ctx, cs[0], "tickets")
		require.NoError(t, err)
		assert.Equal(t, 48, left)
	})
}

func TestUpdate(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{})

		// A missing key: fn sees found=false and the value is added.
		v, err := objcache.Update(ctx, c, "new", time.Minute, func(old []string, found bool) ([]string, error) {
			assert.False(t, found)
			assert.Nil(t, old)
			return []string{"first"}, nil
		})
		require.NoError(t, err)
		assert.Equal(t, []string{"first"}, v)
		v, err = objcache.Update(ctx, c, "new", time.Minute, func(old []string, found bool) ([]string, error) {
			assert.True(t, found)
			return append(old, "second"), nil
		})
		require.NoError(t, err)
		assert.Equal(t, []string{"first", "second"}, v)

		// An error from fn aborts and leaves the value alone.
		_, err = objcache.Update(ctx, c, "new", 0, func([]string, bool) ([]string, error) { return nil, errSoldOut })
		require.ErrorIs(t, err, errSoldOut)
		got, err := objcache.Get[[]string](ctx, c, "new")
		require.NoError(t, err)
		assert.Len(t, got, 2)

		// A value that does not decode is replaced, as if missing.
		require.NoError(t, c.Set(ctx, "garbled", "not a number", 0))
		n, err := objcache.Update(ctx, c, "garbled", 0, func(old int, found bool) (int, error) {
			assert.False(t, found)
			return 1, nil
		})
		require.NoError(t, err)
		assert.Equal(t, 1, n)
	})
}

// Conflicts are retried a bounded number of times, with backoff.
func TestUpdateGivesUp(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{UpdateRetries: 3})
	var sleeps []time.Duration
	objcache.SetClock(c, nil, func(_ context.Context, d time.Duration) error {
		sleeps = append(sleeps, d)
		return nil
	})
	require.NoError(t, c.Set(ctx, "k", 0, 0))
	calls := 0
	_, err := objcache.Update(ctx, c, "k", 0, func(old int, _ bool) (int, error) {
		calls++
		// Someone else writes between our read and our CAS, every time.
		require.NoError(t, c.Set(ctx, "k", old+100, 0))
		return old + 1, nil
	})
	require.ErrorIs(t, err, objcache.ErrTooManyConflicts)
	assert.Equal(t, 4, calls, "1 attempt + UpdateRetries retries")
	require.Len(t, sleeps, 3)
	for i, d := range sleeps {
		assert.Positive(t, d)
		assert.LessOrEqual(t, d, time.Millisecond<<i+1, "backoff %d grows from a small start", i)
	}

	// A cancelled ctx stops the retries.
	cctx, cancel := context.WithCancel(ctx)
	objcache.SetClock(c, nil, func(ctx context.Context, _ time.Duration) error {
		cancel()
		return ctx.Err()
	})
	_, err = objcache.Update(cctx, c, "k", 0, func(old int, _ bool) (int, error) {
		require.NoError(t, c.Set(ctx, "k", old+100, 0))
		return old + 1, nil
	})
	require.ErrorIs(t, err, context.Canceled)
}
