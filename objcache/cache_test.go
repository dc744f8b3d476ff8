package objcache_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

type product struct {
	ID    int
	Name  string
	Price float64
	Tags  []string
}

func TestNewValidates(t *testing.T) {
	cl := newClient(t, "127.0.0.1:1", memclient.ProtocolMeta)
	tests := []struct {
		name string
		opts objcache.Options
	}{
		{"negative StaleTTL", objcache.Options{StaleTTL: -2 * time.Second}},
		{"negative LeaseWait", objcache.Options{LeaseWait: -time.Second}},
		{"negative UpdateRetries", objcache.Options{UpdateRetries: -1}},
		{"long prefix", objcache.Options{Prefix: strings.Repeat("p", 200)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := objcache.New(cl, tt.opts)
			require.Error(t, err)
		})
	}
	_, err := objcache.New(nil, objcache.Options{})
	require.Error(t, err)
	_, err = objcache.New(cl, objcache.Options{TTL: objcache.NoExpiration})
	require.NoError(t, err)
	_, err = objcache.New(cl, objcache.Options{TTL: -2 * time.Second})
	require.NoError(t, err, "a negative TTL means never expires")
}

// A negative Options.TTL is NoExpiration: values stored with ttl 0 never
// expire.
func TestNegativeOptionsTTL(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, raw := newCacheClient(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{TTL: -time.Second})
	require.NoError(t, c.Set(ctx, "k", 1, 0))
	l, err := raw.GetLease(ctx, "k", memclient.LeaseOptions{})
	require.NoError(t, err)
	assert.Equal(t, time.Duration(-1), l.TTL, "never expires")
	got, err := objcache.Get[int](ctx, c, "k")
	require.NoError(t, err)
	assert.Equal(t, 1, got)
}

func TestGetSetAddDelete(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		raw := newClient(t, srv.Addr, proto)
		c, err := objcache.New(raw, objcache.Options{Prefix: "app:"})
		require.NoError(t, err)

		_, err = objcache.Get[product](ctx, c, "p1")
		require.ErrorIs(t, err, objcache.ErrCacheMiss)

		want := product{ID: 1, Name: "chair", Price: 9.5, Tags: []string{"a", "b"}}
		require.NoError(t, c.Set(ctx, "p1", want, 0))
		got, err := objcache.Get[product](ctx, c, "p1")
		require.NoError(t, err)
		assert.Equal(t, want, got)

		// The prefix is on the wire.
		_, err = raw.Get(ctx, "app:p1")
		require.NoError(t, err)
		_, err = raw.Get(ctx, "p1")
		require.ErrorIs(t, err, memclient.ErrCacheMiss)

		require.ErrorIs(t, c.Add(ctx, "p1", want, 0), objcache.ErrNotStored)
		require.NoError(t, c.Add(ctx, "p2", 42, time.Minute))
		n, err := objcache.Get[int](ctx, c, "p2")
		require.NoError(t, err)
		assert.Equal(t, 42, n)

		require.NoError(t, c.Delete(ctx, "p1"))
		require.NoError(t, c.Delete(ctx, "p1"), "deleting a missing key is fine")
		_, err = objcache.Get[product](ctx, c, "p1")
		require.ErrorIs(t, err, objcache.ErrCacheMiss)

		_, err = objcache.Get[int](ctx, c, "")
		require.ErrorIs(t, err, memclient.ErrMalformedKey)
		require.ErrorIs(t, c.Set(ctx, "has space", 1, 0), memclient.ErrMalformedKey)

		st := c.Stats()
		assert.Equal(t, uint64(2), st.Hits)
		assert.Equal(t, uint64(2), st.Misses)
	})
}

func TestTTL(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, raw := newCacheClient(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{TTL: 30 * time.Second})
	tests := []struct {
		name    string
		ttl     time.Duration
		wantTTL time.Duration // remaining TTL GetLease reports; -1 none
	}{
		{"zero means Options.TTL", 0, 30 * time.Second},
		{"explicit", 10 * time.Second, 10 * time.Second},
		{"NoExpiration", objcache.NoExpiration, -1},
		{"any negative never expires", -time.Hour, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, c.Set(ctx, "k", 1, tt.ttl))
			l, err := raw.GetLease(ctx, "k", memclient.LeaseOptions{})
			require.NoError(t, err)
			if tt.wantTTL < 0 {
				assert.Equal(t, time.Duration(-1), l.TTL)
			} else {
				assert.InDelta(t, tt.wantTTL.Seconds(), l.TTL.Seconds(), 2)
			}
		})
	}
}

func TestMulti(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		raw := newClient(t, srv.Addr, proto)
		c, err := objcache.New(raw, objcache.Options{Prefix: "app:"})
		require.NoError(t, err)

		in := map[string]product{"1": {ID: 1, Name: "a"}, "2": {ID: 2, Name: "b"}, "3": {ID: 3, Name: "c"}}
		require.NoError(t, objcache.SetMulti(ctx, c, "product:", in, time.Minute))
		_, err = raw.Get(ctx, "app:product:2")
		require.NoError(t, err, "key_prefix and prefix are both on the wire")

		got, err := objcache.GetMulti[product](ctx, c, "product:", []string{"1", "2", "3", "4", "2"})
		require.NoError(t, err)
		assert.Equal(t, in, got, "keyed without prefix, missing keys absent")

		// A key of another type does not decode: absent, counted.
		require.NoError(t, c.Set(ctx, "product:5", "not a product", 0))
		got, err = objcache.GetMulti[product](ctx, c, "product:", []string{"1", "5"})
		require.NoError(t, err)
		assert.Len(t, got, 1)
		assert.Equal(t, uint64(1), c.Stats().DecodeErrors)

		require.NoError(t, c.DeleteMulti(ctx, "product:", []string{"1", "2", "9"}))
		got, err = objcache.GetMulti[product](ctx, c, "product:", []string{"1", "2", "3"})
		require.NoError(t, err)
		assert.Equal(t, map[string]product{"3": in["3"]}, got)
	})
}

func TestMultiPartialFailure(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	cl, err := memclient.New(memcachetest.Addrs(srvs)...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	c, err := objcache.New(cl, objcache.Options{Prefix: "p:"})
	require.NoError(t, err)

	in := map[string]int{}
	keys := []string{}
	for i := range 20 {
		k := "k" + strings.Repeat("x", i)
		in[k] = i
		keys = append(keys, k)
	}
	require.NoError(t, objcache.SetMulti(ctx, c, "n:", in, 0))
	srvs[1].Kill()
	got, err := objcache.GetMulti[int](ctx, c, "n:", keys)
	require.Error(t, err)
	var me memclient.MultiError
	require.ErrorAs(t, err, &me)
	assert.NotEmpty(t, me)
	assert.Equal(t, len(keys), len(got)+len(me), "every key is either returned or named in the error")
	for k := range me {
		assert.Contains(t, in, k, "error keys are the caller's keys, without prefixes")
	}
	for k, v := range got {
		assert.Equal(t, in[k], v)
	}
}

func TestDecodeErrorIsMiss(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c, raw := newCacheClient(t, srv.Addr, proto, objcache.Options{})
		tests := []struct {
			name string
			item memclient.Item
		}{
			{"foreign flags", memclient.Item{Value: []byte("whatever"), Flags: 0xdead0000}},
			{"corrupt codec bytes", memclient.Item{Value: []byte{0xc1, 0xc1, 0xc1}, Flags: 0x100}},
			{"type changed between deploys", memclient.Item{Value: []byte("a string"), Flags: 0}},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				key := "bad" + string(rune('a'+i))
				it := tt.item
				it.Key = key
				require.NoError(t, raw.Set(ctx, &it))
				before := c.Stats().DecodeErrors

				_, err := objcache.Get[product](ctx, c, key)
				require.ErrorIs(t, err, objcache.ErrCacheMiss)
				assert.Equal(t, before+1, c.Stats().DecodeErrors)

				loads := 0
				p, err := objcache.GetOrLoad(ctx, c, key, time.Minute, func(context.Context) (product, error) {
					loads++
					return product{ID: 7}, nil
				})
				require.NoError(t, err)
				assert.Equal(t, product{ID: 7}, p)
				assert.Equal(t, 1, loads)

				got, err := objcache.Get[product](ctx, c, key)
				require.NoError(t, err, "the reloaded value replaced the bad one")
				assert.Equal(t, 7, got.ID)
			})
		}
	})
}

func TestLongKeys(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{Prefix: "app:"})
	long1 := strings.Repeat("k", 300) + "1"
	long2 := strings.Repeat("k", 300) + "2"
	require.NoError(t, c.Set(ctx, long1, 1, 0))
	require.NoError(t, c.Set(ctx, long2, 2, 0))
	for key, want := range map[string]int{long1: 1, long2: 2} {
		got, err := objcache.Get[int](ctx, c, key)
		require.NoError(t, err)
		assert.Equal(t, want, got)
		k, err := c.Key(ctx, key)
		require.NoError(t, err)
		assert.LessOrEqual(t, len(k), objcache.MaxKeyLen)
		assert.True(t, strings.HasPrefix(k, "app:kkkk"), "the start stays readable")
	}
}

func TestNamespaces(t *testing.T) {
	leakcheck.Check(t)
	eachProtocol(t, func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol) {
		ctx := context.Background()
		c := newCache(t, srv.Addr, proto, objcache.Options{Prefix: "app:"})
		users := c.Namespace("users")
		admins := users.Namespace("admins")
		products := c.Namespace("products")

		require.NoError(t, c.Set(ctx, "root", 0, 0))
		require.NoError(t, users.Set(ctx, "u1", 1, 0))
		require.NoError(t, admins.Set(ctx, "a1", 2, 0))
		require.NoError(t, products.Set(ctx, "p1", 3, 0))

		// Same key, different namespaces: different values.
		require.NoError(t, products.Set(ctx, "u1", 33, 0))
		v, err := objcache.Get[int](ctx, users, "u1")
		require.NoError(t, err)
		assert.Equal(t, 1, v)

		k, err := users.Key(ctx, "u1")
		require.NoError(t, err)
		assert.Regexp(t, `^app:users@[0-9a-z]+:u1$`, k)

		// Another process sees the same namespace.
		other := newCache(t, srv.Addr, proto, objcache.Options{Prefix: "app:"}).Namespace("users")
		v, err = objcache.Get[int](ctx, other, "u1")
		require.NoError(t, err)
		assert.Equal(t, 1, v)

		require.ErrorIs(t, c.InvalidateNamespace(ctx), objcache.ErrNoNamespace)
		require.NoError(t, users.InvalidateNamespace(ctx))

		for _, tc := range []struct {
			name string
			c    *objcache.Cache
			key  string
			gone bool
		}{
			{"invalidated", users, "u1", true},
			{"seen by the other process", other, "u1", true},
			{"nested namespace follows its parent", admins, "a1", true},
			{"sibling untouched", products, "p1", false},
			{"root untouched", c, "root", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := objcache.Get[int](ctx, tc.c, tc.key)
				if tc.gone {
					require.ErrorIs(t, err, objcache.ErrCacheMiss)
				} else {
					require.NoError(t, err)
				}
			})
		}
		k2, err := users.Key(ctx, "u1")
		require.NoError(t, err)
		assert.NotEqual(t, k, k2, "the key embeds the new generation")

		// A namespace never used before can be invalidated too.
		require.NoError(t, c.Namespace("fresh").InvalidateNamespace(ctx))
	})
}

func TestNamespaceGenerationEvicted(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c, raw := newCacheClient(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{})
	ns := c.Namespace("n")
	require.NoError(t, ns.Set(ctx, "k", 1, 0))
	// Lose the generation key, as an eviction would.
	require.NoError(t, raw.Delete(ctx, "n@gen"))
	_, err := objcache.Get[int](ctx, ns, "k")
	require.ErrorIs(t, err, objcache.ErrCacheMiss, "a lost generation never resurrects old values")
}

func TestNamespaceTTLCachesGeneration(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }

	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{NamespaceTTL: time.Minute})
	objcache.SetClock(c, clock, nil)
	ns := c.Namespace("n")
	require.NoError(t, ns.Set(ctx, "k", 1, 0))

	other := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{}).Namespace("n")
	require.NoError(t, other.InvalidateNamespace(ctx))

	_, err := objcache.Get[int](ctx, ns, "k")
	require.NoError(t, err, "the cached generation is used within NamespaceTTL")
	now = now.Add(time.Minute)
	_, err = objcache.Get[int](ctx, ns, "k")
	require.ErrorIs(t, err, objcache.ErrCacheMiss, "and re-read after it")

	// Our own invalidation is seen at once.
	require.NoError(t, ns.Set(ctx, "k", 2, 0))
	require.NoError(t, ns.InvalidateNamespace(ctx))
	_, err = objcache.Get[int](ctx, ns, "k")
	require.ErrorIs(t, err, objcache.ErrCacheMiss)
}

// Over a 3-server cluster, keys, generation keys and lock keys land on
// different servers; everything still works together.
func TestCluster(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	for _, proto := range protocols {
		t.Run(proto.String(), func(t *testing.T) {
			ctx := context.Background()
			servers := make([]memclient.Server, len(srvs))
			for i, s := range srvs {
				servers[i] = memclient.Server{Addr: s.Addr}
			}
			cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers, Protocol: proto})
			require.NoError(t, err)
			t.Cleanup(func() { _ = cl.Close() })
			c, err := objcache.New(cl, objcache.Options{Prefix: proto.String() + ":"})
			require.NoError(t, err)
			ns := c.Namespace("catalogue")

			loads := 0
			for i := range 30 {
				key := fmt.Sprintf("item%d", i)
				for range 2 {
					v, err := objcache.GetOrLoad(ctx, ns, key, 0, func(context.Context) (int, error) {
						loads++
						return i, nil
					})
					require.NoError(t, err)
					assert.Equal(t, i, v)
				}
			}
			assert.Equal(t, 30, loads)

			require.NoError(t, ns.InvalidateNamespace(ctx))
			for i := range 30 {
				_, err := objcache.Get[int](ctx, ns, fmt.Sprintf("item%d", i))
				require.ErrorIs(t, err, objcache.ErrCacheMiss)
			}
		})
	}
}
