package objcache_test

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// Defect 2 of issue 12: a loaded value too large for memcached was
// returned, but its lease placeholder stayed behind, so the next caller
// waited the whole LeaseWait for a value that would never come. Now the
// failed store releases the lease: the next caller loads at once.
func TestTooLargeValueReleasesLease(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		big := make([]byte, 2<<20) // random: no compressor shrinks it under 1 MiB
		_, _ = rand.Read(big)
		var loads atomic.Int32
		load := func(context.Context) ([]byte, error) {
			loads.Add(1)
			return big, nil
		}
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{})
		v, err := objcache.GetOrLoad(ctx, c, "big", time.Minute, load)
		require.NoError(t, err)
		assert.Equal(t, big, v, "the caller gets its value even though it cannot be cached")
		assert.Equal(t, uint64(1), c.Stats().Errors, "the failed store is counted")

		// Another process, willing to wait an hour for a loader: it must
		// not wait at all. The deadline only bounds the failure case.
		other := newCache(t, srv.Addr, proto, objcache.Options{LeaseWait: time.Hour})
		bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		v, err = objcache.GetOrLoad(bctx, other, "big", time.Minute, load)
		require.NoError(t, err, "waited for a lease nobody holds: %+v", other.Stats())
		assert.Equal(t, big, v)
		assert.Equal(t, uint64(0), other.Stats().LeaseWaits, "no lease was left behind")
		assert.Equal(t, int32(2), loads.Load())
	})
}
