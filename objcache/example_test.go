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
	client, err := memclient.New(exampleAddr)
	if err != nil {
		panic(err)
	}
	c, err := objcache.New(client, objcache.Options{Prefix: prefix, TTL: 10 * time.Minute})
	if err != nil {
		panic(err)
	}
	return c, func() { _ = client.Close() }
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
