package otterlocal_test

import (
	"context"
	"testing"
	"time"

	"github.com/memkit/memkit/adapters/otterlocal"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/objcache"
)

// Issue 17's budget for a local hit: 200 ns and no allocation for a
// []byte or a string, through objcache (a prefix, a full key to build, a
// decode), as a caller sees it.

func BenchmarkTierGet(b *testing.B) {
	l, err := otterlocal.New(otterlocal.Config{AdmitAfter: 1, TTL: otterlocal.MaxTTL})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	l.Set("app:k", objcache.LocalValue{Data: make([]byte, 100)}, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := l.Get("app:k"); !ok {
			b.Fatal("miss")
		}
	}
}

// localHit benchmarks get on a key its warm-up made hot.
func localHit[T any](b *testing.B, parallel bool, get func(context.Context, *objcache.Cache) (T, error)) {
	srv := memcachetest.Start(b, memcachetest.Options{})
	c, _ := process(b, srv.Addr, otterlocal.Config{TTL: otterlocal.MaxTTL}, nil, objcache.Options{Prefix: "app:"})
	ctx := context.Background()
	for range 3 { // loaded, offered twice: kept
		if _, err := get(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	hits := c.Stats().LocalHits
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := get(ctx, c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for b.Loop() {
			if _, err := get(ctx, c); err != nil {
				b.Fatal(err)
			}
		}
	}
	if got := c.Stats().LocalHits - hits; got < uint64(b.N) {
		b.Fatalf("%d local hits for %d calls", got, b.N)
	}
}

var (
	hundred   = make([]byte, 100)
	loadBytes = func(context.Context) ([]byte, error) { return hundred, nil }
	loadStr   = func(context.Context) (string, error) { return string(hundred), nil }
)

func getOrLoadBytes(ctx context.Context, c *objcache.Cache) ([]byte, error) {
	return objcache.GetOrLoad(ctx, c, "page", time.Hour, loadBytes)
}

func getOrLoadString(ctx context.Context, c *objcache.Cache) (string, error) {
	return objcache.GetOrLoad(ctx, c, "page", time.Hour, loadStr)
}

func BenchmarkLocalHitGetOrLoadBytes(b *testing.B)  { localHit(b, false, getOrLoadBytes) }
func BenchmarkLocalHitGetOrLoadString(b *testing.B) { localHit(b, false, getOrLoadString) }
func BenchmarkLocalHitGetOrLoadBytesParallel(b *testing.B) {
	localHit(b, true, getOrLoadBytes)
}

func BenchmarkLocalHitGetBytes(b *testing.B) {
	localHit(b, false, func(ctx context.Context, c *objcache.Cache) ([]byte, error) {
		if v, err := objcache.Get[[]byte](ctx, c, "plain"); err == nil {
			return v, nil
		}
		return nil, c.Set(ctx, "plain", hundred, time.Hour)
	})
}

func BenchmarkLocalHitMemoize1Bytes(b *testing.B) {
	var f func(context.Context, int) ([]byte, error)
	localHit(b, false, func(ctx context.Context, c *objcache.Cache) ([]byte, error) {
		if f == nil {
			f = objcache.Memoize1(c, "page", time.Hour, func(context.Context, int) ([]byte, error) { return hundred, nil })
		}
		return f(ctx, 12345)
	})
}
