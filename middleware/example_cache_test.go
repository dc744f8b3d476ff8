package middleware_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/objcache"
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

func ExampleCache() {
	client, err := memclient.New(exampleAddr) // a real program passes its servers

	if err != nil {
		panic(err)
	}
	defer client.Close()
	cache, err := objcache.New(client, objcache.Options{Prefix: "shop:"})
	if err != nil {
		panic(err)
	}

	renders := 0
	catalogue := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		renders++
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Cache-Control", "public, max-age=60") // cached for 60s
		fmt.Fprint(w, "<h1>Catalogue</h1>")
	})
	mux := http.NewServeMux()
	mux.Handle("GET /catalogue", middleware.Cache(cache, middleware.CacheOptions{StatusHeader: "X-Cache"})(catalogue))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for range 3 {
		resp, err := http.Get(srv.URL + "/catalogue")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.Header.Get("X-Cache"), string(body))
	}
	fmt.Println("rendered", renders, "time(s)")
	// Output:
	// MISS <h1>Catalogue</h1>
	// HIT <h1>Catalogue</h1>
	// HIT <h1>Catalogue</h1>
	// rendered 1 time(s)
}
