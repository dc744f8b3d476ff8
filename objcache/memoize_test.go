package objcache_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

// productDB is a small product table in memory that counts the queries
// it answers, standing in for a database (the core module takes no
// database driver; examples/webapp memoizes real SQLite queries).
type productDB struct {
	rows    []dbProduct
	queries atomic.Int32
}

func openProductDB(t *testing.T) *productDB {
	t.Helper()
	return &productDB{rows: []dbProduct{
		{1, "chair", "furniture", 49.5}, {2, "table", "furniture", 120},
		{3, "lamp", "lighting", 19}, {4, "bulb", "lighting", 2.5},
	}}
}

type dbProduct struct {
	ID       int
	Name     string
	Category string
	Price    float64
}

func (p *productDB) byID(ctx context.Context, id int) (dbProduct, error) {
	p.queries.Add(1)
	for _, r := range p.rows {
		if r.ID == id {
			return r, nil
		}
	}
	return dbProduct{}, fmt.Errorf("product %d: %w", id, objcache.ErrNotFound)
}

type filter struct {
	Category string
	MaxPrice float64
	Exclude  map[string]bool
}

func (p *productDB) search(ctx context.Context, f filter) ([]string, error) {
	p.queries.Add(1)
	var out []string
	for _, r := range p.rows {
		if r.Category == f.Category && r.Price <= f.MaxPrice && !f.Exclude[r.Name] {
			out = append(out, r.Name)
		}
	}
	return out, nil
}

func (p *productDB) page(ctx context.Context, category string, limit int) ([]string, error) {
	return p.search(ctx, filter{Category: category, MaxPrice: 1e9, Exclude: map[string]bool{}})
}

func (p *productDB) count(ctx context.Context) (int, error) {
	p.queries.Add(1)
	return len(p.rows), nil
}

// The proof: memoizing a database call, N identical calls run 1 query,
// even when they come at once from several processes.
func TestMemoizeDatabase(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	db := openProductDB(t)
	cs := caches(t, processes, srv.Addr, memclient.ProtocolMeta, objcache.Options{Prefix: "shop:", NegativeTTL: time.Minute})
	byID := make([]func(context.Context, int) (dbProduct, error), len(cs))
	for i, c := range cs {
		byID[i] = objcache.Memoize1(c, "products.byID", time.Minute, db.byID)
	}

	const n = 25
	var wg sync.WaitGroup
	errs := make(chan error, processes*n)
	for i := range cs {
		for range n {
			wg.Go(func() {
				p, err := byID[i](ctx, 1)
				if err == nil && p.Name != "chair" {
					err = fmt.Errorf("got %+v", p)
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, int32(1), db.queries.Load(), "%d identical calls, 1 query", processes*n)

	for range 10 {
		p, err := byID[2](ctx, 1)
		require.NoError(t, err)
		assert.Equal(t, dbProduct{1, "chair", "furniture", 49.5}, p)
	}
	assert.Equal(t, int32(1), db.queries.Load())

	p, err := byID[0](ctx, 2)
	require.NoError(t, err)
	assert.Equal(t, "table", p.Name)
	assert.Equal(t, int32(2), db.queries.Load(), "another argument, another query")

	for range 3 {
		_, err = byID[1](ctx, 99)
		require.ErrorIs(t, err, objcache.ErrNotFound)
	}
	assert.Equal(t, int32(3), db.queries.Load(), "not found is cached with NegativeTTL")
}

func TestMemoizeStructAndMultipleArgs(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	db := openProductDB(t)
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{})

	search := objcache.Memoize1(c, "products.search", 0, db.search)
	for range 5 {
		// Equal structs built separately, map keys inserted in another
		// order each time: one key.
		ex := map[string]bool{}
		ex["zzz"], ex["table"] = true, true
		names, err := search(ctx, filter{Category: "furniture", MaxPrice: 500, Exclude: ex})
		require.NoError(t, err)
		assert.Equal(t, []string{"chair"}, names)
	}
	assert.Equal(t, int32(1), db.queries.Load())
	names, err := search(ctx, filter{Category: "lighting", MaxPrice: 500})
	require.NoError(t, err)
	assert.Equal(t, []string{"lamp", "bulb"}, names)
	assert.Equal(t, int32(2), db.queries.Load())

	byID := objcache.Memoize1(c, "products.byID", 0, db.byID)
	for range 2 {
		p, err := byID(ctx, 3)
		require.NoError(t, err)
		assert.Equal(t, "lamp", p.Name)
	}
	assert.Equal(t, int32(3), db.queries.Load())

	page := objcache.Memoize2(c, "products.page", 0, db.page)
	for range 3 {
		_, err := page(ctx, "lighting", 10)
		require.NoError(t, err)
	}
	_, err = page(ctx, "lighting", 20)
	require.NoError(t, err)
	assert.Equal(t, int32(5), db.queries.Load())

	count := objcache.Memoize0(c, "products.count", 0, db.count)
	for range 3 {
		n, err := count(ctx)
		require.NoError(t, err)
		assert.Equal(t, 4, n)
	}
	assert.Equal(t, int32(6), db.queries.Load())

	three := objcache.Memoize3(c, "three", 0, func(_ context.Context, a, b string, n int) (string, error) {
		db.queries.Add(1)
		return strings.Repeat(a+b, n), nil
	})
	for range 2 {
		s, err := three(ctx, "a", "b", 2)
		require.NoError(t, err)
		assert.Equal(t, "abab", s)
	}
	assert.Equal(t, int32(7), db.queries.Load())

	// Arguments that cannot be encoded fail without calling fn.
	bad := objcache.Memoize1(c, "bad", 0, func(context.Context, func()) (int, error) {
		db.queries.Add(1)
		return 0, nil
	})
	_, err = bad(ctx, func() {})
	require.ErrorIs(t, err, objcache.ErrUnencodableArgs)
	assert.Equal(t, int32(7), db.queries.Load())
}

func TestArgsKey(t *testing.T) {
	type point struct{ X, Y int }
	long := strings.Repeat("x", 400)
	tests := []struct {
		name string
		fn   string
		args []any
		want string
	}{
		{"int", "byID", []any{42}, "byID:42"},
		{"string", "byName", []any{"chair"}, `byName:"chair"`},
		{"struct", "near", []any{point{1, 2}}, `near:{"X":1,"Y":2}`},
		{"map keys sorted", "m", []any{map[string]int{"b": 2, "a": 1}}, `m:{"a":1,"b":2}`},
		{"two args", "page", []any{"lighting", 10}, `page:["lighting",10]`},
		{"space goes base64", "s", []any{"a b"}, "s:~ImEgYiI"},
		{"tilde goes base64", "s", []any{"a~b"}, "s:~ImF-YiI"},
		{"long", "l", []any{long}, `l:"` + long + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := objcache.ArgsKey(tt.fn, tt.args...)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	_, err := objcache.ArgsKey("ch", make(chan int))
	require.ErrorIs(t, err, objcache.ErrUnencodableArgs)
}

// Keys longer than 250 bytes are hashed and still work end to end.
func TestMemoizeLongArgs(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{})
	var calls atomic.Int32
	echo := objcache.Memoize1(c, "echo", 0, func(_ context.Context, s string) (string, error) {
		calls.Add(1)
		return s, nil
	})
	a, b := strings.Repeat("a", 500)+"1", strings.Repeat("a", 500)+"2"
	for range 2 {
		for _, s := range []string{a, b} {
			got, err := echo(ctx, s)
			require.NoError(t, err)
			assert.Equal(t, s, got)
		}
	}
	assert.Equal(t, int32(2), calls.Load())
}

// Memoize encodes common arguments (bools, integers, plain strings)
// without encoding/json; the keys must be ArgsKey's, byte for byte, or a
// release would stop finding what earlier ones memoized.
func TestFastArgsKeyIsArgsKey(t *testing.T) {
	check := func(t *testing.T, fast string, ok bool, args ...any) {
		t.Helper()
		want, err := objcache.ArgsKey("f", args...)
		require.NoError(t, err)
		if ok {
			assert.Equal(t, want, fast, "%#v", args)
		}
	}
	type named int
	for _, tc := range []struct {
		name   string
		key    func() (string, bool)
		args   []any
		wantOK bool
	}{
		{"int", func() (string, bool) { return objcache.FastArgsKey("f", -42) }, []any{-42}, true},
		{"int64 min", func() (string, bool) { return objcache.FastArgsKey("f", int64(math.MinInt64)) }, []any{int64(math.MinInt64)}, true},
		{"uint64 max", func() (string, bool) { return objcache.FastArgsKey("f", uint64(math.MaxUint64)) }, []any{uint64(math.MaxUint64)}, true},
		{"int8", func() (string, bool) { return objcache.FastArgsKey("f", int8(-8)) }, []any{int8(-8)}, true},
		{"uint8", func() (string, bool) { return objcache.FastArgsKey("f", uint8(200)) }, []any{uint8(200)}, true},
		{"int16 int32 uint uint16 uint32", func() (string, bool) {
			return objcache.FastArgsKey3("f", int16(-3), int32(7), uint(9))
		}, []any{int16(-3), int32(7), uint(9)}, true},
		{"uint16 uint32", func() (string, bool) { return objcache.FastArgsKey2("f", uint16(3), uint32(4)) }, []any{uint16(3), uint32(4)}, true},
		{"bools", func() (string, bool) { return objcache.FastArgsKey2("f", true, false) }, []any{true, false}, true},
		{"plain string", func() (string, bool) { return objcache.FastArgsKey("f", "chair-42/<a&b>") }, []any{"chair-42/<a&b>"}, true},
		{"empty string", func() (string, bool) { return objcache.FastArgsKey("f", "") }, []any{""}, true},
		{"string and int", func() (string, bool) { return objcache.FastArgsKey2("f", "lighting", 10) }, []any{"lighting", 10}, true},
		{"three", func() (string, bool) { return objcache.FastArgsKey3("f", "a", 1, true) }, []any{"a", 1, true}, true},
		{"space", func() (string, bool) { return objcache.FastArgsKey("f", "a b") }, []any{"a b"}, false},
		{"quote", func() (string, bool) { return objcache.FastArgsKey("f", `a"b`) }, []any{`a"b`}, false},
		{"backslash", func() (string, bool) { return objcache.FastArgsKey("f", `a\b`) }, []any{`a\b`}, false},
		{"tilde", func() (string, bool) { return objcache.FastArgsKey("f", "a~b") }, []any{"a~b"}, false},
		{"utf-8", func() (string, bool) { return objcache.FastArgsKey("f", "café") }, []any{"café"}, false},
		{"named type", func() (string, bool) { return objcache.FastArgsKey("f", named(1)) }, []any{named(1)}, false},
		{"float", func() (string, bool) { return objcache.FastArgsKey("f", 1.5) }, []any{1.5}, false},
		{"struct second", func() (string, bool) { return objcache.FastArgsKey2("f", 1, struct{ X int }{2}) }, []any{1, struct{ X int }{2}}, false},
		{"struct third", func() (string, bool) { return objcache.FastArgsKey3("f", 1, 2, struct{ X int }{2}) }, []any{1, 2, struct{ X int }{2}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.key()
			assert.Equal(t, tc.wantOK, ok)
			check(t, got, ok, tc.args...)
		})
	}
}

// A value stored under ArgsKey's key is what Memoize1 finds, with and
// without a prefix, through the fast encoding and encoding/json alike.
func TestMemoizeFindsArgsKey(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	for _, prefix := range []string{"", "app:"} {
		c := newCache(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{Prefix: prefix})
		byInt := objcache.Memoize1(c, "i", 0, func(context.Context, int) (string, error) { return "loaded", nil })
		byStr := objcache.Memoize1(c, "s", 0, func(context.Context, string) (string, error) { return "loaded", nil })
		two := objcache.Memoize2(c, "t", 0, func(context.Context, string, int) (string, error) { return "loaded", nil })
		for _, n := range []int{0, 7, -99, math.MaxInt} {
			k, err := objcache.ArgsKey("i", n)
			require.NoError(t, err)
			require.NoError(t, c.Set(ctx, k, "stored", 0))
			got, err := byInt(ctx, n)
			require.NoError(t, err)
			assert.Equal(t, "stored", got, "%s%s", prefix, k)
		}
		for _, s := range []string{"plain", "a b", `q"`, "~", ""} {
			k, err := objcache.ArgsKey("s", s)
			require.NoError(t, err)
			require.NoError(t, c.Set(ctx, k, "stored", 0))
			got, err := byStr(ctx, s)
			require.NoError(t, err)
			assert.Equal(t, "stored", got, "%s%s", prefix, k)
		}
		k, err := objcache.ArgsKey("t", "x", 3)
		require.NoError(t, err)
		require.NoError(t, c.Set(ctx, k, "stored", 0))
		got, err := two(ctx, "x", 3)
		require.NoError(t, err)
		assert.Equal(t, "stored", got)
	}
}
