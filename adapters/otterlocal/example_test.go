package otterlocal_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/memkit/memkit/adapters/otterlocal"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// exampleAddr is a memcached started for the example by TestMain.
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

// A product page read over and over: the first read loads it, the next
// ones read memcached until the key is hot (its second read), and then
// the local tier serves it, without a round trip, for up to a second
// after another process changed it. This process's own writes drop it at
// once.
func Example() {
	client, err := memclient.New(exampleAddr) // a real program passes its servers
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.Close()
	local, err := otterlocal.New(otterlocal.Config{TTL: time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer local.Close()
	cache, err := objcache.New(client, objcache.Options{Prefix: "example:", Local: local})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cache.Close()

	ctx := context.Background()
	loads := 0
	page := func(ctx context.Context) ([]byte, error) {
		loads++
		return []byte("<h1>Chair</h1>"), nil
	}
	for range 5 {
		html, err := objcache.GetOrLoad(ctx, cache, "page:chair", time.Hour, page)
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = html // shared with the local tier: read it, never modify it
	}
	st := cache.Stats()
	fmt.Printf("loads %d, hits %d, of which local %d\n", loads, st.Hits, st.LocalHits)

	// A write through the Cache drops the local copy at once.
	if err := cache.Set(ctx, "page:chair", []byte("<h1>Chair, on sale</h1>"), time.Hour); err != nil {
		fmt.Println(err)
		return
	}
	html, _ := objcache.Get[string](ctx, cache, "page:chair")
	fmt.Println(html)
	// Output:
	// loads 1, hits 4, of which local 2
	// <h1>Chair, on sale</h1>
}
