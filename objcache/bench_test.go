package objcache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

func benchCache(b *testing.B) *objcache.Cache {
	srv := memcachetest.Start(b, memcachetest.Options{})
	return newCache(b, srv.Addr, memclient.ProtocolMeta, objcache.Options{Prefix: "bench:"})
}

func BenchmarkGetHit(b *testing.B) {
	c := benchCache(b)
	ctx := context.Background()
	if err := c.Set(ctx, "p", product{ID: 1, Name: "chair", Price: 9.5, Tags: []string{"a"}}, time.Hour); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := objcache.Get[product](ctx, c, "p"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetOrLoadHit(b *testing.B) {
	c := benchCache(b)
	ctx := context.Background()
	load := func(context.Context) (product, error) {
		return product{ID: 1, Name: "chair", Price: 9.5, Tags: []string{"a"}}, nil
	}
	if _, err := objcache.GetOrLoad(ctx, c, "p", time.Hour, load); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := objcache.GetOrLoad(ctx, c, "p", time.Hour, load); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetOrLoadHitParallel(b *testing.B) {
	c := benchCache(b)
	ctx := context.Background()
	load := func(context.Context) (product, error) { return product{ID: 1}, nil }
	if _, err := objcache.GetOrLoad(ctx, c, "p", time.Hour, load); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := objcache.GetOrLoad(ctx, c, "p", time.Hour, load); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkArgsKey(b *testing.B) {
	type filter struct {
		Category string
		MaxPrice float64
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := objcache.ArgsKey("products.search", filter{"lighting", 20}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetOrLoadTaggedHit(b *testing.B) {
	c := benchCache(b).WithTags("products")
	ctx := context.Background()
	load := func(context.Context) (product, error) { return product{ID: 1, Name: "chair"}, nil }
	if _, err := objcache.GetOrLoad(ctx, c, "p", time.Hour, load); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := objcache.GetOrLoad(ctx, c, "p", time.Hour, load); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetOrLoadMultiHit reads a warm page of 50 products.
func BenchmarkGetOrLoadMultiHit(b *testing.B) {
	c := benchCache(b)
	ctx := context.Background()
	keys := make([]string, 50)
	for i := range keys {
		keys[i] = fmt.Sprintf("p%d", i)
	}
	load := func(_ context.Context, missing []string) (map[string]product, error) {
		out := make(map[string]product, len(missing))
		for i, k := range missing {
			out[k] = product{ID: i, Name: "chair"}
		}
		return out, nil
	}
	if _, err := objcache.GetOrLoadMulti(ctx, c, keys, time.Hour, load); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := objcache.GetOrLoadMulti(ctx, c, keys, time.Hour, load)
		if err != nil || len(got) != len(keys) {
			b.Fatal(err, len(got))
		}
	}
}
