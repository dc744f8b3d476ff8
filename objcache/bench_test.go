package objcache_test

import (
	"context"
	"fmt"
	"sync/atomic"
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

// scalars is a small struct of scalars, the other shape issue 17's
// hit-path target names besides []byte.
type scalars struct {
	ID    int64
	Price float64
	Stock int32
	OK    bool
}

// benchHit measures a warm one-key get through get (first called once to
// fill the cache).
func benchHit[T any](b *testing.B, get func(ctx context.Context, c *objcache.Cache) (T, error)) {
	c := benchCache(b)
	ctx := context.Background()
	if _, err := get(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := get(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetOrLoadHitBytes(b *testing.B) {
	val := make([]byte, 100)
	load := func(context.Context) ([]byte, error) { return val, nil }
	benchHit(b, func(ctx context.Context, c *objcache.Cache) ([]byte, error) {
		return objcache.GetOrLoad(ctx, c, "p", time.Hour, load)
	})
}

func BenchmarkGetOrLoadHitString(b *testing.B) {
	load := func(context.Context) (string, error) {
		return "a string of a hundred bytes, more or less, as a page fragment would be", nil
	}
	benchHit(b, func(ctx context.Context, c *objcache.Cache) (string, error) {
		return objcache.GetOrLoad(ctx, c, "p", time.Hour, load)
	})
}

func BenchmarkGetOrLoadHitScalars(b *testing.B) {
	load := func(context.Context) (scalars, error) { return scalars{ID: 42, Price: 9.5, Stock: 7, OK: true}, nil }
	benchHit(b, func(ctx context.Context, c *objcache.Cache) (scalars, error) {
		return objcache.GetOrLoad(ctx, c, "p", time.Hour, load)
	})
}

func BenchmarkMemoize1HitBytes(b *testing.B) {
	val := make([]byte, 100)
	var f func(context.Context, int) ([]byte, error)
	benchHit(b, func(ctx context.Context, c *objcache.Cache) ([]byte, error) {
		if f == nil {
			f = objcache.Memoize1(c, "page", time.Hour, func(context.Context, int) ([]byte, error) { return val, nil })
		}
		return f(ctx, 12345)
	})
}

func BenchmarkMemoize1HitScalars(b *testing.B) {
	var f func(context.Context, int) (scalars, error)
	benchHit(b, func(ctx context.Context, c *objcache.Cache) (scalars, error) {
		if f == nil {
			f = objcache.Memoize1(c, "product", time.Hour, func(_ context.Context, id int) (scalars, error) {
				return scalars{ID: int64(id), Price: 9.5}, nil
			})
		}
		return f(ctx, 12345)
	})
}

func BenchmarkGetHitBytes(b *testing.B) {
	benchHit(b, func(ctx context.Context, c *objcache.Cache) ([]byte, error) {
		if v, err := objcache.Get[[]byte](ctx, c, "p"); err == nil {
			return v, nil
		}
		return nil, c.Set(ctx, "p", make([]byte, 100), time.Hour)
	})
}

// BenchmarkGetOrLoadHitBytesParallel and BenchmarkClientGetParallel are
// the pair to compare (the bench module does it properly, paired and
// interleaved): GetOrLoad on a hit of a 100-byte []byte against the plain
// memclient Get of the same bytes, with many goroutines.
func BenchmarkGetOrLoadHitBytesParallel(b *testing.B) {
	c := benchCache(b)
	ctx := context.Background()
	val := make([]byte, 100)
	load := func(context.Context) ([]byte, error) { return val, nil }
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("p%d", i)
		if _, err := objcache.GetOrLoad(ctx, c, keys[i], time.Hour, load); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetParallelism(32) // 64 goroutines on 2 CPUs
	var worker atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for i := int(worker.Add(1)) * 7919; pb.Next(); i++ { // the bench module's spread
			if _, err := objcache.GetOrLoad(ctx, c, keys[i%len(keys)], time.Hour, load); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkClientGetParallel(b *testing.B) {
	srv := memcachetest.Start(b, memcachetest.Options{})
	cl := newClient(b, srv.Addr, memclient.ProtocolMeta)
	ctx := context.Background()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench:p%d", i)
		if err := cl.Set(ctx, &memclient.Item{Key: keys[i], Value: make([]byte, 100)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetParallelism(32)
	var worker atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for i := int(worker.Add(1)) * 7919; pb.Next(); i++ {
			if _, err := cl.Get(ctx, keys[i%len(keys)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
