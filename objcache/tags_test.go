package objcache_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// commands returns how many commands cl has sent so far. A multi-key
// get is one command (gets k1 k2 ...) and one round trip; the meta
// protocol's lease reads are one mg command per key, pipelined.
func commands(cl *memclient.Client) uint64 {
	var n uint64
	for _, s := range cl.ServerStatus() {
		n += s.Requests
	}
	return n
}

// Every way of storing through a view with tags records them, and
// InvalidateTags drops what carries them, for every reader (another
// client, the root cache, a view with other tags), in namespaces too.
func TestTags(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{Prefix: "app:"})
		other := newCache(t, srv.Addr, proto, objcache.Options{Prefix: "app:"}) // another process
		products := c.WithTags("products")
		ns := c.Namespace("shop").WithTags("products", "shop")
		var loads atomic.Int32
		load := func(v string) func(context.Context) (string, error) {
			return func(context.Context) (string, error) {
				loads.Add(1)
				return v, nil
			}
		}

		require.NoError(t, products.Set(ctx, "set", "v", 0))
		require.NoError(t, products.Add(ctx, "add", "v", 0))
		require.NoError(t, objcache.SetMulti(ctx, products, "m:", map[string]string{"1": "v", "2": "v"}, 0))
		_, err := objcache.Update(ctx, products, "update", 0, func(string, bool) (string, error) { return "v", nil })
		require.NoError(t, err)
		_, err = objcache.GetOrLoad(ctx, products, "loaded", 0, load("v"))
		require.NoError(t, err)
		_, err = objcache.GetOrLoadMulti(ctx, products, []string{"multi1", "multi2"}, 0, (&recorder{}).load)
		require.NoError(t, err)
		memo := objcache.Memoize1(products, "memo", 0, func(_ context.Context, id int) (string, error) { return "v", nil })
		_, err = memo(ctx, 1)
		require.NoError(t, err)
		require.NoError(t, ns.Set(ctx, "in-namespace", "v", 0))
		require.NoError(t, c.Set(ctx, "untagged", "v", 0))
		require.NoError(t, c.WithTags("users").Set(ctx, "user", "v", 0))
		memoKey, err := objcache.ArgsKey("memo", 1)
		require.NoError(t, err)

		tagged := []string{"set", "add", "m:1", "m:2", "update", "loaded", "multi1", "multi2", memoKey}
		for _, r := range []*objcache.Cache{c, other, products, other.WithTags("users")} {
			for _, k := range append(tagged, "untagged", "user") {
				_, err := objcache.Get[string](ctx, r, k)
				require.NoError(t, err, "%s before the invalidation", k)
			}
		}

		require.NoError(t, other.InvalidateTags(ctx, "products"))

		for _, r := range []*objcache.Cache{c, other, products, c.WithTags("users")} {
			for _, k := range tagged {
				_, err := objcache.Get[string](ctx, r, k)
				require.ErrorIs(t, err, objcache.ErrCacheMiss, "%s after the invalidation", k)
			}
			for _, k := range []string{"untagged", "user"} {
				_, err := objcache.Get[string](ctx, r, k)
				require.NoError(t, err, "%s carries no invalidated tag", k)
			}
			_, err := objcache.Get[string](ctx, r.Namespace("shop"), "in-namespace")
			require.ErrorIs(t, err, objcache.ErrCacheMiss, "namespaces share the tags")
		}
		got, err := objcache.GetMulti[string](ctx, other, "m:", []string{"1", "2"})
		require.NoError(t, err)
		assert.Empty(t, got)

		// The loaders reload: once.
		for range 2 {
			v, err := objcache.GetOrLoad(ctx, products, "loaded", 0, load("v2"))
			require.NoError(t, err)
			assert.Equal(t, "v2", v)
		}
		assert.Equal(t, int32(2), loads.Load())
		r := &recorder{}
		_, err = objcache.GetOrLoadMulti(ctx, products, []string{"multi1", "multi2"}, 0, r.load)
		require.NoError(t, err)
		assert.Equal(t, [][]string{{"multi1", "multi2"}}, r.Calls(), "one call reloads every key invalidated")
		_, found := mustUpdate(t, products, "update")
		assert.False(t, found, "Update sees no value")

		// An invalidation of tags nobody used yet is fine.
		require.NoError(t, c.InvalidateTags(ctx, "never used", "products"))
	})
}

func mustUpdate(t *testing.T, c *objcache.Cache, key string) (string, bool) {
	t.Helper()
	var found bool
	v, err := objcache.Update(context.Background(), c, key, 0, func(old string, ok bool) (string, error) {
		found = ok
		return "updated", nil
	})
	require.NoError(t, err)
	return v, found
}

// A value loaded while its tag is invalidated carries the version read
// before the load began: it is invalid as soon as it is stored.
func TestTagInvalidatedDuringLoad(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{}).WithTags("t")
		v, err := objcache.GetOrLoad(ctx, c, "k", 0, func(ctx context.Context) (string, error) {
			require.NoError(t, c.InvalidateTags(ctx, "t")) // the row changes while we read it
			return "read before the change", nil
		})
		require.NoError(t, err)
		assert.Equal(t, "read before the change", v)
		_, err = objcache.Get[string](ctx, c, "k")
		require.ErrorIs(t, err, objcache.ErrCacheMiss)
	})
}

// A tag whose version key is lost (evicted) makes its values invalid for
// good: the version it comes back with is one they never recorded.
func TestTagVersionEvicted(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, raw := newCacheClient(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{Prefix: "p:"})
	tv := c.WithTags("t")
	require.NoError(t, tv.Set(ctx, "k", "v", 0))
	require.NoError(t, raw.Delete(ctx, "p:@tag:t"))
	_, err := objcache.Get[string](ctx, c, "k")
	require.ErrorIs(t, err, objcache.ErrCacheMiss, "no version: invalid")
	require.NoError(t, tv.Set(ctx, "other", "v", 0)) // gives the tag a new version
	_, err = objcache.Get[string](ctx, c, "k")
	require.ErrorIs(t, err, objcache.ErrCacheMiss, "never valid again")
	_, err = objcache.Get[string](ctx, c, "other")
	require.NoError(t, err)
}

// A read through a view gets the view's tag versions with the value, in
// one round trip; a value carrying tags the reader does not know costs
// one more for those. Tags that cannot be keys as they are still work.
func TestTagRoundTrips(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c, raw := newCacheClient(t, srv.Addr, proto, objcache.Options{})
		view := c.WithTags("a", "b c", "")
		require.NoError(t, view.Set(ctx, "k", 1, 0))
		load := func(context.Context) (int, error) { return 0, fmt.Errorf("not expected") }

		before := commands(raw)
		_, err := objcache.Get[int](ctx, view, "k")
		require.NoError(t, err)
		assert.Equal(t, uint64(1), commands(raw)-before, "one gets: the value and the view's 3 tags")

		before = commands(raw)
		_, err = objcache.Get[int](ctx, c, "k")
		require.NoError(t, err)
		assert.Equal(t, uint64(2), commands(raw)-before, "from the root: the value, then its 3 tags")

		before = commands(raw)
		_, err = objcache.Get[int](ctx, c.WithTags("a"), "k")
		require.NoError(t, err)
		assert.Equal(t, uint64(2), commands(raw)-before, "the view's tag with the value, the other two after")

		before = commands(raw)
		_, err = objcache.GetOrLoad(ctx, view, "k", 0, load)
		require.NoError(t, err)
		want := uint64(1) // text: one gets
		if proto == memclient.ProtocolMeta {
			want = 4 // one GetLeaseMulti: an mg per key, pipelined
		}
		assert.Equal(t, want, commands(raw)-before, "GetOrLoad through the view")

		require.NoError(t, c.InvalidateTags(ctx, "b c"))
		_, err = objcache.Get[int](ctx, view, "k")
		require.ErrorIs(t, err, objcache.ErrCacheMiss)
	})
}
