package objcache_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// cacheRecorder is an Observer that sums what it is told, by kind.
type cacheRecorder struct {
	mu      sync.Mutex
	sums    map[objcache.EventKind]uint64
	batches []uint64
	ctxOK   bool
}

type obsKey struct{}

func (r *cacheRecorder) ObserveCache(ctx context.Context, ev objcache.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sums == nil {
		r.sums = make(map[objcache.EventKind]uint64)
	}
	r.sums[ev.Kind] += ev.Count
	if ev.Kind == objcache.EventBatchLoad {
		r.batches = append(r.batches, ev.Count)
	}
	if ctx.Value(obsKey{}) != nil {
		r.ctxOK = true
	}
}

// TestObserver: the Observer is told, with the caller's context, of what
// Stats counts: hits, misses, loads, not-founds, batch loads and their
// sizes.
func TestObserver(t *testing.T) {
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		rec := &cacheRecorder{}
		c := newCache(t, srv.Addr, proto, objcache.Options{Observer: rec, NegativeTTL: time.Minute})
		ctx := context.WithValue(context.Background(), obsKey{}, true)
		load := func(context.Context) (string, error) { return "v", nil }
		for i := 0; i < 3; i++ {
			_, err := objcache.GetOrLoad(ctx, c, "k", time.Minute, load)
			require.NoError(t, err)
		}
		_, err := objcache.GetOrLoad(ctx, c, "gone", time.Minute, func(context.Context) (string, error) { return "", objcache.ErrNotFound })
		require.ErrorIs(t, err, objcache.ErrNotFound)
		got, err := objcache.GetOrLoadMulti(ctx, c, []string{"a", "b", "c", "k"}, time.Minute,
			func(_ context.Context, missing []string) (map[string]string, error) {
				out := make(map[string]string)
				for _, m := range missing {
					out[m] = "v:" + m
				}
				return out, nil
			})
		require.NoError(t, err)
		require.Len(t, got, 4)

		st := c.Stats()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		assert.Equal(t, st.Hits, rec.sums[objcache.EventHit])
		assert.Equal(t, st.Misses, rec.sums[objcache.EventMiss])
		assert.Equal(t, st.Loads, rec.sums[objcache.EventLoad])
		assert.Equal(t, st.NotFound, rec.sums[objcache.EventNotFound])
		assert.Equal(t, st.LoadErrors, rec.sums[objcache.EventLoadError])
		assert.Equal(t, st.BatchKeys, rec.sums[objcache.EventBatchLoad])
		assert.Equal(t, []uint64{3}, rec.batches, "one batch of the three missing keys")
		assert.Zero(t, st.LoadErrors, "a not-found is not a load error")
		assert.Equal(t, uint64(1), st.NotFound)
		assert.True(t, rec.ctxOK, "the caller's context reaches the Observer")
	})
}

// TestObservers: Observers tells every observer given, skips nil ones,
// and is nil (no cost) without any.
func TestObservers(t *testing.T) {
	require.Nil(t, objcache.Observers(nil))
	a, b := &cacheRecorder{}, &cacheRecorder{}
	o := objcache.Observers(a, nil, b)
	o.ObserveCache(context.Background(), objcache.Event{Kind: objcache.EventHit, Count: 2})
	assert.Equal(t, uint64(2), a.sums[objcache.EventHit])
	assert.Equal(t, uint64(2), b.sums[objcache.EventHit])
}
