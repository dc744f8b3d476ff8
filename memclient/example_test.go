package memclient_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// exampleAddr is a memcached started for the examples by TestMain.
var exampleAddr string

func TestMain(m *testing.M) {
	os.Exit(memcachetest.Main(m, func() (func(), error) {
		srv, err := memcachetest.Launch(memcachetest.Options{})
		if err != nil {
			return nil, err
		}
		exampleAddr = srv.Addr
		return srv.Close, nil
	}))
}

// The python-memcached basics: set and get, add and replace, append and
// prepend, counters, multi-key calls with a prefix.
func Example() {
	ctx := context.Background()
	mc, err := memclient.New(exampleAddr) // "host:port" or "host:port:weight", as many as you like
	if err != nil {
		panic(err)
	}
	defer mc.Close()
	_ = mc.FlushAll(ctx)

	_ = mc.Set(ctx, &memclient.Item{Key: "greeting", Value: []byte("hello")})
	_ = mc.Append(ctx, &memclient.Item{Key: "greeting", Value: []byte(", world")})
	it, _ := mc.Get(ctx, "greeting")
	fmt.Println(string(it.Value))

	err = mc.Add(ctx, &memclient.Item{Key: "greeting", Value: []byte("again")})
	fmt.Println(errors.Is(err, memclient.ErrNotStored))

	_ = mc.Set(ctx, &memclient.Item{Key: "visits", Value: []byte("41")})
	n, _ := mc.Increment(ctx, "visits", 1)
	fmt.Println(n)

	_, err = mc.Get(ctx, "nobody")
	fmt.Println(err)
	// Output:
	// hello, world
	// true
	// 42
	// memclient: cache miss
}

// GetMulti and SetMulti with a key prefix, python-memcached's
// get_multi(keys, key_prefix="user:").
func ExampleClient_GetMulti() {
	ctx := context.Background()
	mc, _ := memclient.New(exampleAddr)
	defer mc.Close()

	prefix := "user:"
	var items []*memclient.Item
	for id, name := range []string{"ada", "grace", "barbara"} {
		items = append(items, &memclient.Item{Key: prefix + strconv.Itoa(id), Value: []byte(name)})
	}
	_ = mc.SetMulti(ctx, items)

	got, _ := mc.GetMulti(ctx, []string{prefix + "0", prefix + "2", prefix + "9"})
	fmt.Println(len(got), string(got["user:0"].Value), string(got["user:2"].Value))
	// Output: 2 ada barbara
}

// The ticket counter done right: read with its CAS, write back only if
// nobody changed it meanwhile, retry on conflict.
func ExampleClient_CompareAndSwap() {
	ctx := context.Background()
	mc, _ := memclient.New(exampleAddr)
	defer mc.Close()
	_ = mc.Set(ctx, &memclient.Item{Key: "G88", Value: []byte("88")})

	buy := func() error {
		for {
			it, err := mc.Get(ctx, "G88")
			if err != nil {
				return err
			}
			left, _ := strconv.Atoi(string(it.Value))
			it.Value = []byte(strconv.Itoa(left - 1))
			err = mc.CompareAndSwap(ctx, it)
			if !errors.Is(err, memclient.ErrCASConflict) {
				return err
			}
		}
	}
	_ = buy()
	it, _ := mc.Get(ctx, "G88")
	fmt.Println(string(it.Value))
	// Output: 87
}

// A weighted, consistent-hashed cluster with failure handling; servers
// that fail repeatedly are skipped until a background probe finds them
// back.
func ExampleNewFromConfig() {
	mc, err := memclient.NewFromConfig(memclient.Config{
		Servers: []memclient.Server{
			{Addr: exampleAddr, Weight: 1},
		},
		Distribution: memclient.DistributionKetama, // or DistributionModula, as python-memcached
		Protocol:     memclient.ProtocolMeta,       // or ProtocolText, for proxies and old servers
	})
	if err != nil {
		panic(err)
	}
	defer mc.Close()
	for _, s := range mc.ServerStatus() {
		fmt.Println(s.Up, s.Weight)
	}
	// Output: true 1
}

// A gutter pool keeps a lost server's keys cached: here the key's own
// server is gone (nothing listens on port 1), so reads and writes go to
// the gutter, with TTLs no longer than GutterTTL.
func ExampleConfig_gutter() {
	ctx := context.Background()
	mc, err := memclient.NewFromConfig(memclient.Config{
		Servers:   []memclient.Server{{Addr: "127.0.0.1:1"}},
		Gutter:    []memclient.Server{{Addr: exampleAddr}},
		GutterTTL: 10 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	defer mc.Close()
	_, err = mc.Get(ctx, "user:42")
	fmt.Println(errors.Is(err, memclient.ErrCacheMiss)) // the gutter answered
	_ = mc.Set(ctx, &memclient.Item{Key: "user:42", Value: []byte("Ada")})
	it, _ := mc.Get(ctx, "user:42")
	fmt.Println(string(it.Value))
	_, err = mc.Increment(ctx, "visits", 1)
	fmt.Println(errors.Is(err, memclient.ErrServerUnavailable)) // never in the gutter
	// Output:
	// true
	// Ada
	// true
}

// GetInto reads into an Item the caller keeps: after the first call, no
// allocation, and a large value goes from the socket straight into it.
func ExampleClient_GetInto() {
	ctx := context.Background()
	mc, _ := memclient.New(exampleAddr)
	defer mc.Close()
	_ = mc.Set(ctx, &memclient.Item{Key: "page", Value: []byte("<html>...</html>")})
	it := &memclient.Item{Value: make([]byte, 0, 64<<10)} // reused
	for i := 0; i < 3; i++ {
		if err := mc.GetInto(ctx, "page", it); err != nil {
			panic(err)
		}
	}
	fmt.Println(string(it.Value))
	// Output: <html>...</html>
}
