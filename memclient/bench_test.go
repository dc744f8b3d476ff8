package memclient_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

func benchClient(b *testing.B, proto memclient.Protocol) *memclient.Client {
	b.Helper()
	srv := memcachetest.Start(b, memcachetest.Options{})
	c, err := memclient.NewFromConfig(memclient.Config{
		Servers:  []memclient.Server{{Addr: srv.Addr}},
		Protocol: proto,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

var benchProtos = []struct {
	name  string
	proto memclient.Protocol
}{{"meta", memclient.ProtocolMeta}, {"text", memclient.ProtocolText}}

func BenchmarkGet(b *testing.B) {
	benchGet(b, func(ctx context.Context, c *memclient.Client) error {
		_, err := c.Get(ctx, "bench")
		return err
	})
}

// benchGet runs get, once per iteration, against a server holding a
// 100-byte value under "bench", in each protocol.
func benchGet(b *testing.B, get func(context.Context, *memclient.Client) error) {
	for _, p := range benchProtos {
		b.Run(p.name, func(b *testing.B) {
			c := benchClient(b, p.proto)
			ctx := context.Background()
			if err := c.Set(ctx, &memclient.Item{Key: "bench", Value: make([]byte, 100)}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := get(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSet(b *testing.B) {
	for _, p := range benchProtos {
		b.Run(p.name, func(b *testing.B) {
			c := benchClient(b, p.proto)
			ctx := context.Background()
			item := &memclient.Item{Key: "bench", Value: make([]byte, 100)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := c.Set(ctx, item); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGetMulti100(b *testing.B) {
	for _, p := range benchProtos {
		b.Run(p.name, func(b *testing.B) {
			c := benchClient(b, p.proto)
			ctx := context.Background()
			keys := make([]string, 100)
			for i := range keys {
				keys[i] = "bench:" + strconv.Itoa(i)
				if err := c.Set(ctx, &memclient.Item{Key: keys[i], Value: make([]byte, 100)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m, err := c.GetMulti(ctx, keys)
				if err != nil || len(m) != 100 {
					b.Fatal(err, len(m))
				}
			}
		})
	}
}

func BenchmarkGetParallel(b *testing.B) {
	for _, p := range benchProtos {
		b.Run(p.name, func(b *testing.B) {
			c := benchClient(b, p.proto)
			ctx := context.Background()
			if err := c.Set(ctx, &memclient.Item{Key: "bench", Value: make([]byte, 100)}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetParallelism(32) // 64 goroutines on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Get(ctx, "bench"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkGetCancelCtx is Get with a cancellable context, as in an HTTP
// handler: it must not cost more allocations than with Background.
func BenchmarkGetCancelCtx(b *testing.B) {
	c := benchClient(b, memclient.ProtocolMeta)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Set(ctx, &memclient.Item{Key: "bench", Value: make([]byte, 100)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Get(ctx, "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetInto is BenchmarkGet through GetInto, reusing one Item.
func BenchmarkGetInto(b *testing.B) {
	var it memclient.Item
	benchGet(b, func(ctx context.Context, c *memclient.Client) error {
		return c.GetInto(ctx, "bench", &it)
	})
}
