package objcache_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// exampleAddr is a memcached started for the examples by TestMain.
var exampleAddr string

func TestMain(m *testing.M) {
	if os.Getenv(helperJob) != "" {
		os.Exit(m.Run()) // a worker process (procs_test.go): it uses its parent's memcached
	}
	os.Exit(memcachetest.Main(m, func() (func(), error) {
		srv, err := memcachetest.Launch(memcachetest.Options{})
		if err != nil {
			return nil, err
		}
		exampleAddr = srv.Addr
		return srv.Close, nil
	}))
}

// exampleCache connects to the example memcached. A real program passes
// its own servers to memclient.New.
func exampleCache(prefix string) (*objcache.Cache, func()) {
	return exampleCacheOptions(objcache.Options{Prefix: prefix, TTL: 10 * time.Minute})
}

func exampleCacheOptions(opts objcache.Options) (*objcache.Cache, func()) {
	client, err := memclient.New(exampleAddr)
	if err != nil {
		panic(err)
	}
	c, err := objcache.New(client, opts)
	if err != nil {
		panic(err)
	}
	return c, func() {
		_ = c.Close()
		_ = client.Close()
	}
}

type Product struct {
	ID    int
	Name  string
	Price float64
}

func ExampleGetOrLoad() {
	c, done := exampleCache("example1:")
	defer done()
	ctx := context.Background()

	load := func(ctx context.Context) (Product, error) {
		fmt.Println("loading product 7 from the database")
		return Product{ID: 7, Name: "lamp", Price: 19}, nil
	}
	for range 3 {
		p, err := objcache.GetOrLoad(ctx, c, "product:7", time.Minute, load)
		if err != nil {
			panic(err)
		}
		fmt.Println(p.Name, p.Price)
	}
	st := c.Stats()
	fmt.Println("loads:", st.Loads, "hits:", st.Hits)
	// Output:
	// loading product 7 from the database
	// lamp 19
	// lamp 19
	// lamp 19
	// loads: 1 hits: 2
}

func ExampleMemoize1() {
	c, done := exampleCache("example2:")
	defer done()
	ctx := context.Background()

	productByID := func(ctx context.Context, id int) (Product, error) {
		fmt.Println("SELECT ... WHERE id =", id)
		if id != 7 {
			return Product{}, objcache.ErrNotFound
		}
		return Product{ID: 7, Name: "lamp"}, nil
	}
	byID := objcache.Memoize1(c, "products.byID", time.Minute, productByID)

	p, _ := byID(ctx, 7)
	p, _ = byID(ctx, 7) // served from memcached
	fmt.Println(p.Name)
	_, err := byID(ctx, 8)
	fmt.Println(err)
	// Output:
	// SELECT ... WHERE id = 7
	// lamp
	// SELECT ... WHERE id = 8
	// objcache: not found
}

func ExampleUpdate() {
	c, done := exampleCache("example3:")
	defer done()
	ctx := context.Background()

	_ = c.Set(ctx, "tickets", 88, 0)
	left, err := objcache.Update(ctx, c, "tickets", 0, func(left int, found bool) (int, error) {
		if !found || left == 0 {
			return 0, errors.New("sold out")
		}
		return left - 1, nil
	})
	fmt.Println(left, err)
	// Output:
	// 87 <nil>
}

func ExampleCache_Namespace() {
	c, done := exampleCache("example4:")
	defer done()
	ctx := context.Background()

	users := c.Namespace("users")
	_ = users.Set(ctx, "42", "Ada", 0)
	name, _ := objcache.Get[string](ctx, users, "42")
	fmt.Println(name)

	// One increment drops every key of the namespace.
	_ = users.InvalidateNamespace(ctx)
	_, err := objcache.Get[string](ctx, users, "42")
	fmt.Println(err)
	// Output:
	// Ada
	// objcache: cache miss
}

func ExampleSetMulti() {
	c, done := exampleCache("example5:")
	defer done()
	ctx := context.Background()

	_ = objcache.SetMulti(ctx, c, "price:", map[string]float64{"lamp": 19, "chair": 49.5}, 0)
	prices, _ := objcache.GetMulti[float64](ctx, c, "price:", []string{"lamp", "chair", "sofa"})
	fmt.Println(len(prices), prices["lamp"], prices["chair"])
	// Output:
	// 2 19 49.5
}

func ExampleGetOrLoadMulti() {
	c, done := exampleCacheOptions(objcache.Options{Prefix: "example6:", NegativeTTL: time.Minute})
	defer done()
	ctx := context.Background()

	// One query for all the products that are not cached.
	productsByID := func(ctx context.Context, ids []string) (map[string]Product, error) {
		fmt.Println("SELECT ... WHERE id IN", ids)
		out := make(map[string]Product)
		for _, id := range ids {
			if id != "404" { // no such product: not returned, so "not found"
				out[id] = Product{Name: "product " + id}
			}
		}
		return out, nil
	}
	_ = c.Set(ctx, "2", Product{Name: "product 2"}, 0)
	for range 2 {
		ps, err := objcache.GetOrLoadMulti(ctx, c, []string{"1", "2", "3", "404", "1"}, time.Minute, productsByID)
		fmt.Println(len(ps), ps["1"].Name, ps["3"].Name, err)
	}
	st := c.Stats()
	fmt.Println("batch loads:", st.BatchLoads, "keys loaded:", st.BatchKeys, "not found:", st.NotFound)
	// Output:
	// SELECT ... WHERE id IN [1 3 404]
	// 3 product 1 product 3 <nil>
	// 3 product 1 product 3 <nil>
	// batch loads: 1 keys loaded: 3 not found: 1
}

// With FailSafe, a value whose reload fails is served past its expiry
// instead of the error, then kept in service for FailSafeBackoff before
// the next attempt.
func ExampleOptions_failSafe() {
	c, done := exampleCacheOptions(objcache.Options{Prefix: "example7:", FailSafe: time.Hour, FailSafeBackoff: time.Minute})
	defer done()
	ctx := context.Background()

	v, err := objcache.GetOrLoad(ctx, c, "price", time.Millisecond, func(context.Context) (int, error) { return 42, nil })
	fmt.Println(v, err)
	time.Sleep(5 * time.Millisecond) // the value expires

	down := func(context.Context) (int, error) {
		fmt.Println("querying the database")
		return 0, errors.New("database down")
	}
	v, err = objcache.GetOrLoad(ctx, c, "price", time.Millisecond, down)
	fmt.Println(v, err)
	v, err = objcache.GetOrLoad(ctx, c, "price", time.Millisecond, down) // in the back-off: no query
	fmt.Println(v, err)
	st := c.Stats()
	fmt.Println("load errors:", st.LoadErrors, "fail-safe served:", st.FailSafeServed)
	// Output:
	// 42 <nil>
	// querying the database
	// 42 <nil>
	// 42 <nil>
	// load errors: 1 fail-safe served: 2
}

func ExampleCache_WithTags() {
	c, done := exampleCache("example8:")
	defer done()
	ctx := context.Background()

	products := c.WithTags("products") // what is stored through it carries the tag
	load := func(name string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) {
			fmt.Println("loading", name)
			return name, nil
		}
	}
	_, _ = objcache.GetOrLoad(ctx, products, "product:1", 0, load("lamp"))
	_ = products.Set(ctx, "product:2", "chair", 0)
	_ = c.Set(ctx, "banner", "summer sale", 0)

	// The catalogue changed: one increment drops every value carrying the
	// tag, under any key, in every process.
	_ = c.InvalidateTags(ctx, "products")
	_, err := objcache.Get[string](ctx, c, "product:2")
	fmt.Println(err)
	banner, _ := objcache.Get[string](ctx, c, "banner")
	fmt.Println(banner)
	v, _ := objcache.GetOrLoad(ctx, products, "product:1", 0, load("brass lamp"))
	fmt.Println(v)
	// Output:
	// loading lamp
	// objcache: cache miss
	// summer sale
	// loading brass lamp
	// brass lamp
}
