package objcache_test

import (
	"context"
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

// TestGutterFill: with a memclient gutter, a key whose server is dead is
// loaded once and then served from the gutter: the fill of a lease the
// gutter gave goes in with a set, since CompareAndSwap never goes there.
func TestGutterFill(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto.String(), func(t *testing.T) {
			leakcheck.Check(t)
			srv := memcachetest.Start(t, memcachetest.Options{})
			gut := memcachetest.Start(t, memcachetest.Options{})
			cl, err := memclient.NewFromConfig(memclient.Config{
				Servers:          []memclient.Server{{Addr: srv.Addr}},
				Gutter:           []memclient.Server{{Addr: gut.Addr}},
				Protocol:         proto,
				FailureThreshold: 1,
				RetryInterval:    time.Hour, // stays down for the test
			})
			require.NoError(t, err)
			defer cl.Close()
			c, err := objcache.New(cl, objcache.Options{})
			require.NoError(t, err)
			defer c.Close()
			ctx := context.Background()
			srv.Kill()
			var loads atomic.Int32
			load := func(context.Context) (string, error) {
				loads.Add(1)
				return "value", nil
			}
			for i := 0; i < 5; i++ {
				v, err := objcache.GetOrLoad(ctx, c, "k", time.Minute, load)
				require.NoError(t, err)
				assert.Equal(t, "value", v)
			}
			assert.Equal(t, int32(1), loads.Load(), "loaded once, then served from the gutter")
			require.False(t, cl.ServerStatus()[0].Up)
		})
	}
}
