package objcache_test

// Values stored by earlier releases must keep reading, so that a rolling
// deploy does not turn the cache into misses (or, worse, misread values).
// testdata/stored/ holds the memcached items (key, flags, bytes) that a
// release wrote for the operations in storedCases: cached values of
// several types and serializers, memoized results (whose keys encode the
// arguments), a namespace's generation and value, a cached "not found",
// and the lease placeholder and text-protocol lock key a loader leaves
// while it runs. TestStoredItems writes every file's items into a fresh
// memcached and reads them back through today's API, forever.
//
// The files are history: never regenerate one. When a release changes
// what it writes, run
//
//	go test ./objcache -run TestStoredItems -write-stored=NAME
//
// to add testdata/stored/NAME.json (it refuses to overwrite a file).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/serializer"
)

var writeStored = flag.String("write-stored", "", "write the items of storedCases, as this code stores them, to testdata/stored/NAME.json")

const storedPrefix = "stored:"

type storedFile struct {
	WrittenBy string `json:"written_by"`
	// WrittenAt is when the items were written. Values carry their
	// expiry (since the envelope): they are read back on a clock set a
	// minute after this, as a process of the next release would read
	// them during a rolling deploy. Zero in files written before.
	WrittenAt time.Time    `json:"written_at,omitzero"`
	Items     []storedItem `json:"items"`
}

type storedItem struct {
	Case  string `json:"case"`
	Key   string `json:"key"`
	Flags uint32 `json:"flags"`
	Data  []byte `json:"data"`
}

type storedProduct struct {
	ID    int               `json:"id"`
	Name  string            `json:"name"`
	Price float64           `json:"price"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
}

type priceQuery struct {
	Currency string
	Country  string
}

// storedEnv is what a case works with: caches with the prefix
// storedPrefix on both protocols, and a raw client. Caches made for a
// check by cache run on the env's clock.
type storedEnv struct {
	meta, text   *objcache.Cache
	raw, rawText *memclient.Client // a meta-protocol and a text-protocol client
	clock        *clock            // moves only when a cache sleeps
}

// setClock puts c on the env's clock.
func (e storedEnv) setClock(c *objcache.Cache) {
	objcache.SetClock(c, e.clock.Now, func(_ context.Context, d time.Duration) error {
		e.clock.Add(d)
		return nil
	})
}

func (e storedEnv) now() time.Time { return e.clock.Now() }

// cache returns a cache over cl with opts (and storedPrefix), on the
// env's clock.
func (e storedEnv) cache(t *testing.T, cl *memclient.Client, opts objcache.Options) *objcache.Cache {
	t.Helper()
	opts.Prefix = storedPrefix
	c, err := objcache.New(cl, opts)
	require.NoError(t, err)
	e.setClock(c)
	return c
}

// caches returns a cache with opts over each protocol's client.
func (e storedEnv) caches(t *testing.T, opts objcache.Options) []*objcache.Cache {
	return []*objcache.Cache{e.cache(t, e.raw, opts), e.cache(t, e.rawText, opts)}
}

// capture returns the raw items under keys.
func (e storedEnv) capture(t *testing.T, ctx context.Context, keys ...string) []storedItem {
	t.Helper()
	var out []storedItem
	for _, k := range keys {
		it, err := e.raw.Get(ctx, k)
		require.NoError(t, err, k)
		out = append(out, storedItem{Key: k, Flags: it.Flags, Data: it.Value})
	}
	return out
}

func fullKey(t *testing.T, ctx context.Context, c *objcache.Cache, key string) string {
	t.Helper()
	k, err := c.Key(ctx, key)
	require.NoError(t, err)
	return k
}

type storedCase struct {
	name string
	// write performs the operation with today's code and returns the
	// items it left in memcached.
	write func(t *testing.T, ctx context.Context, e storedEnv) []storedItem
	// check reads the items back through the API.
	check func(t *testing.T, ctx context.Context, e storedEnv)
}

func storedRows() []storedProduct {
	rows := make([]storedProduct, 60)
	for i := range rows {
		rows[i] = storedProduct{ID: i, Name: "Product " + strings.Repeat("n", i%9), Price: float64(i) / 4,
			Tags: []string{"catalogue"}, Attrs: map[string]string{"colour": "blue"}}
	}
	return rows
}

var storedCup = storedProduct{ID: 42, Name: "Espresso cup", Price: 7.5, Tags: []string{"kitchen"}, Attrs: map[string]string{"size": "s"}}

// setCase stores value under key with c and checks it reads back as T.
func setCase[T any](name, key string, value T, ser *serializer.Serializer) storedCase {
	return storedCase{
		name: name,
		write: func(t *testing.T, ctx context.Context, e storedEnv) []storedItem {
			c := e.meta
			if ser != nil {
				cl := e.raw
				var err error
				c, err = objcache.New(cl, objcache.Options{Prefix: storedPrefix, Serializer: ser})
				require.NoError(t, err)
			}
			require.NoError(t, c.Set(ctx, key, value, time.Hour))
			return e.capture(t, ctx, fullKey(t, ctx, c, key))
		},
		check: func(t *testing.T, ctx context.Context, e storedEnv) {
			for _, c := range []*objcache.Cache{e.meta, e.text} {
				got, err := objcache.Get[T](ctx, c, key)
				require.NoError(t, err, name)
				assert.Equal(t, value, got, name)
			}
		},
	}
}

func storedCases() []storedCase {
	notCalled := func(t *testing.T) func(context.Context) (storedProduct, error) {
		return func(context.Context) (storedProduct, error) {
			t.Error("the loader ran: the stored value was not used")
			return storedProduct{}, errors.New("not expected")
		}
	}
	return []storedCase{
		setCase("struct", "product:42", storedCup, nil),
		setCase("string", "greeting", "héllo, wörld", nil),
		setCase("int", "visits", 123456789, nil),
		setCase("compressed-rows", "rows", storedRows(), nil),
		setCase("json-serializer", "json:prefs", map[string]int{"a": 1, "b": 2}, &serializer.Serializer{Codec: serializer.JSON}),
		setCase("zstd-rows", "zstd:rows", storedRows(), &serializer.Serializer{Compressor: serializer.Zstd}),
		{
			name: "memoized",
			write: func(t *testing.T, ctx context.Context, e storedEnv) []storedItem {
				price := objcache.Memoize2(e.meta, "price", time.Hour, func(_ context.Context, id int, q priceQuery) (storedProduct, error) {
					return storedCup, nil
				})
				_, err := price(ctx, 42, priceQuery{Currency: "EUR", Country: "FR"})
				require.NoError(t, err)
				k, err := objcache.ArgsKey("price", 42, priceQuery{Currency: "EUR", Country: "FR"})
				require.NoError(t, err)
				return e.capture(t, ctx, fullKey(t, ctx, e.meta, k))
			},
			check: func(t *testing.T, ctx context.Context, e storedEnv) {
				for _, c := range []*objcache.Cache{e.meta, e.text} {
					load := notCalled(t)
					price := objcache.Memoize2(c, "price", time.Hour, func(ctx context.Context, _ int, _ priceQuery) (storedProduct, error) {
						return load(ctx)
					})
					got, err := price(ctx, 42, priceQuery{Currency: "EUR", Country: "FR"})
					require.NoError(t, err)
					assert.Equal(t, storedCup, got)
				}
			},
		},
		{
			name: "namespace",
			write: func(t *testing.T, ctx context.Context, e storedEnv) []storedItem {
				ns := e.meta.Namespace("users")
				require.NoError(t, ns.Set(ctx, "u1", "ada", time.Hour))
				return e.capture(t, ctx, storedPrefix+"users@gen", fullKey(t, ctx, ns, "u1"))
			},
			check: func(t *testing.T, ctx context.Context, e storedEnv) {
				for _, c := range []*objcache.Cache{e.meta, e.text} {
					got, err := objcache.Get[string](ctx, c.Namespace("users"), "u1")
					require.NoError(t, err)
					assert.Equal(t, "ada", got)
				}
			},
		},
		{
			name: "not-found",
			write: func(t *testing.T, ctx context.Context, e storedEnv) []storedItem {
				c, err := objcache.New(e.raw, objcache.Options{Prefix: storedPrefix, NegativeTTL: time.Hour})
				require.NoError(t, err)
				_, err = objcache.GetOrLoad(ctx, c, "product:404", time.Hour, func(context.Context) (storedProduct, error) {
					return storedProduct{}, objcache.ErrNotFound
				})
				require.ErrorIs(t, err, objcache.ErrNotFound)
				return e.capture(t, ctx, fullKey(t, ctx, c, "product:404"))
			},
			check: func(t *testing.T, ctx context.Context, e storedEnv) {
				for _, c := range e.caches(t, objcache.Options{NegativeTTL: time.Hour}) {
					_, err := objcache.GetOrLoad(ctx, c, "product:404", time.Hour, notCalled(t))
					require.ErrorIs(t, err, objcache.ErrNotFound)
					assert.Equal(t, uint64(1), c.Stats().NegativeHits)
					_, err = objcache.Get[storedProduct](ctx, c, "product:404")
					require.ErrorIs(t, err, objcache.ErrCacheMiss, "a cached not-found is no value")
					assert.Zero(t, c.Stats().DecodeErrors)
				}
			},
		},
		{
			name: "lease-placeholder",
			write: func(t *testing.T, ctx context.Context, e storedEnv) []storedItem {
				var items []storedItem
				_, err := objcache.GetOrLoad(ctx, e.meta, "pending", time.Hour, func(ctx context.Context) (string, error) {
					items = e.capture(t, ctx, fullKey(t, ctx, e.meta, "pending")) // while the load runs
					return "loaded", nil
				})
				require.NoError(t, err)
				return items
			},
			check: func(t *testing.T, ctx context.Context, e storedEnv) {
				for _, c := range []*objcache.Cache{e.meta, e.text} {
					before := c.Stats().DecodeErrors
					_, err := objcache.Get[storedProduct](ctx, c, "pending")
					require.ErrorIs(t, err, objcache.ErrCacheMiss)
					_, err = objcache.Get[string](ctx, c, "pending")
					require.ErrorIs(t, err, objcache.ErrCacheMiss, "not an empty string")
					assert.Equal(t, before, c.Stats().DecodeErrors, "a placeholder is a miss, not a bad value")
				}
			},
		},
		{
			name: "tagged",
			write: func(t *testing.T, ctx context.Context, e storedEnv) []storedItem {
				require.NoError(t, e.meta.WithTags("catalogue", "kitchen").Set(ctx, "tagged", storedCup, time.Hour))
				return e.capture(t, ctx, fullKey(t, ctx, e.meta, "tagged"), storedPrefix+"@tag:catalogue", storedPrefix+"@tag:kitchen")
			},
			check: func(t *testing.T, ctx context.Context, e storedEnv) {
				for _, c := range []*objcache.Cache{e.meta, e.text, e.text.WithTags("catalogue")} {
					got, err := objcache.Get[storedProduct](ctx, c, "tagged")
					require.NoError(t, err)
					assert.Equal(t, storedCup, got)
				}
				require.NoError(t, e.text.InvalidateTags(ctx, "kitchen"))
				for _, c := range []*objcache.Cache{e.meta, e.text} {
					_, err := objcache.Get[storedProduct](ctx, c, "tagged")
					require.ErrorIs(t, err, objcache.ErrCacheMiss, "the tags it records are checked")
				}
			},
		},
		{
			name: "loaded",
			write: func(t *testing.T, ctx context.Context, e storedEnv) []storedItem {
				clk := newClock()
				c := e.cache(t, e.raw, objcache.Options{})
				objcache.SetClock(c, clk.Now, nil)
				_, err := objcache.GetOrLoad(ctx, c, "loaded", time.Hour, func(context.Context) (storedProduct, error) {
					clk.Add(2 * time.Second) // a load that takes 2s
					return storedCup, nil
				})
				require.NoError(t, err)
				return e.capture(t, ctx, fullKey(t, ctx, c, "loaded"))
			},
			check: func(t *testing.T, ctx context.Context, e storedEnv) {
				for _, c := range e.caches(t, objcache.Options{}) {
					got, err := objcache.GetOrLoad(ctx, c, "loaded", time.Hour, notCalled(t))
					require.NoError(t, err)
					assert.Equal(t, storedCup, got)
				}
				// The load duration is read: with it, XFetch at an
				// infinite draw refreshes; without, it never would.
				for _, c := range e.caches(t, objcache.Options{EarlyRefreshBeta: 1}) {
					objcache.SetRand(c, func() float64 { return 0 })
					clk := &clock{now: e.now()}
					objcache.SetClock(c, clk.Now, nil)
					loads := 0
					got, err := objcache.GetOrLoad(ctx, c, "loaded", time.Hour, func(context.Context) (storedProduct, error) {
						loads++
						clk.Add(2 * time.Second) // so that the next cache finds a duration too
						return storedCup, nil
					})
					require.NoError(t, err)
					assert.Equal(t, storedCup, got)
					assert.Equal(t, 1, loads, "refreshed early: the stored load duration was read")
				}
			},
		},
		{
			name: "fail-safe-in-service",
			write: func(t *testing.T, ctx context.Context, e storedEnv) []storedItem {
				// Loaded 2h ago for 1h; its reload failed just now, so it
				// is kept in service for an hour.
				clk := newClock()
				clk.Add(-2 * time.Hour)
				c := e.cache(t, e.raw, objcache.Options{FailSafe: 24 * time.Hour, FailSafeBackoff: time.Hour})
				objcache.SetClock(c, clk.Now, nil)
				_, err := objcache.GetOrLoad(ctx, c, "price", time.Hour, func(context.Context) (int, error) { return 42, nil })
				require.NoError(t, err)
				clk.Add(2 * time.Hour)
				v, err := objcache.GetOrLoad(ctx, c, "price", time.Hour, func(context.Context) (int, error) { return 0, errors.New("down") })
				require.NoError(t, err)
				require.Equal(t, 42, v)
				return e.capture(t, ctx, fullKey(t, ctx, c, "price"))
			},
			check: func(t *testing.T, ctx context.Context, e storedEnv) {
				for _, c := range e.caches(t, objcache.Options{FailSafe: 24 * time.Hour}) {
					got, err := objcache.Get[int](ctx, c, "price")
					require.NoError(t, err, "in service")
					assert.Equal(t, 42, got)
					got, err = objcache.GetOrLoad(ctx, c, "price", time.Hour, func(context.Context) (int, error) {
						t.Error("loaded during the back-off")
						return 0, nil
					})
					require.NoError(t, err)
					assert.Equal(t, 42, got)
					assert.Equal(t, uint64(1), c.Stats().FailSafeServed)
				}
			},
		},
		{
			name: "empty-bytes",
			write: func(t *testing.T, ctx context.Context, e storedEnv) []storedItem {
				require.NoError(t, e.meta.Set(ctx, "empty", []byte{}, time.Hour))
				return e.capture(t, ctx, fullKey(t, ctx, e.meta, "empty"))
			},
			check: func(t *testing.T, ctx context.Context, e storedEnv) {
				for _, c := range []*objcache.Cache{e.meta, e.text} {
					got, err := objcache.Get[[]byte](ctx, c, "empty")
					require.NoError(t, err, "an empty value, not a placeholder")
					assert.Empty(t, got)
				}
			},
		},
		{
			name: "text-lock",
			write: func(t *testing.T, ctx context.Context, e storedEnv) []storedItem {
				var items []storedItem
				_, err := objcache.GetOrLoad(ctx, e.text, "locked", time.Hour, func(ctx context.Context) (string, error) {
					items = e.capture(t, ctx, fullKey(t, ctx, e.text, "locked")+":lock") // held while the load runs
					return "loaded", nil
				})
				require.NoError(t, err)
				return items
			},
			check: func(t *testing.T, ctx context.Context, e storedEnv) {
				// Another process holds the lock: a text-protocol caller
				// waits for it (LeaseWait), then loads itself.
				c := e.cache(t, e.rawText, objcache.Options{LeaseWait: 30 * time.Millisecond})
				loads := 0
				got, err := objcache.GetOrLoad(ctx, c, "locked", time.Hour, func(context.Context) (string, error) {
					loads++
					return "mine", nil
				})
				require.NoError(t, err)
				assert.Equal(t, "mine", got)
				assert.Equal(t, 1, loads)
				assert.Equal(t, uint64(1), c.Stats().LeaseWaits, "the stored lock key was honoured")
			},
		},
	}
}

func storedEnvFor(t *testing.T, srv *memcachetest.Server, now time.Time) storedEnv {
	e := storedEnv{clock: &clock{now: now}}
	e.meta, e.raw = newCacheClient(t, srv.Addr, memclient.ProtocolMeta, objcache.Options{Prefix: storedPrefix})
	e.text, e.rawText = newCacheClient(t, srv.Addr, memclient.ProtocolText, objcache.Options{Prefix: storedPrefix})
	e.setClock(e.meta)
	e.setClock(e.text)
	return e
}

func TestStoredItems(t *testing.T) {
	cases := storedCases()
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx := context.Background()
	if *writeStored != "" {
		writeStoredItems(t, ctx, srv, *writeStored, cases)
		return
	}
	files, err := filepath.Glob(filepath.Join("testdata", "stored", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no stored items to check")
	byName := make(map[string]storedCase)
	for _, c := range cases {
		byName[c.name] = c
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		var sf storedFile
		require.NoError(t, json.Unmarshal(b, &sf))
		require.NotEmpty(t, sf.Items)
		var names []string
		items := make(map[string][]storedItem)
		for _, it := range sf.Items {
			if _, ok := items[it.Case]; !ok {
				names = append(names, it.Case)
			}
			items[it.Case] = append(items[it.Case], it)
		}
		for _, name := range names {
			t.Run(filepath.Base(file)+"/"+name, func(t *testing.T) {
				c, ok := byName[name]
				require.True(t, ok, "no case named %q: cases may be added, never renamed or removed", name)
				now := time.Now()
				if !sf.WrittenAt.IsZero() {
					now = sf.WrittenAt.Add(time.Minute)
				}
				e := storedEnvFor(t, srv, now)
				require.NoError(t, e.raw.FlushAll(ctx))
				for _, it := range items[name] {
					require.NoError(t, e.raw.Set(ctx, &memclient.Item{Key: it.Key, Flags: it.Flags, Value: it.Data, TTL: time.Hour}))
				}
				c.check(t, ctx, e)
			})
		}
	}
}

func writeStoredItems(t *testing.T, ctx context.Context, srv *memcachetest.Server, name string, cases []storedCase) {
	path := filepath.Join("testdata", "stored", name+".json")
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s exists: stored items are history, write a new file", path)
	}
	sf := storedFile{WrittenBy: "memkit " + name, WrittenAt: time.Now().UTC().Truncate(time.Second)}
	for _, c := range cases {
		e := storedEnvFor(t, srv, time.Now())
		require.NoError(t, e.raw.FlushAll(ctx))
		items := c.write(t, ctx, e)
		require.NotEmpty(t, items, c.name)
		for _, it := range items {
			it.Case = c.name
			sf.Items = append(sf.Items, it)
		}
	}
	b, err := json.MarshalIndent(sf, "", "\t")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
	t.Logf("wrote %s", path)
}

// The other direction of a rolling deploy: a reader that predates the
// envelope (objcache before it, or any serializer user) finds flags it
// does not know in an enveloped value, so it reads a miss, never the
// envelope's bytes as a value.
func TestEnvelopeUnknownToOlderReaders(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "stored", "02e7059.json"))
	require.NoError(t, err)
	var sf storedFile
	require.NoError(t, json.Unmarshal(b, &sf))
	enveloped := 0
	for _, it := range sf.Items {
		if it.Flags != 0x3f00 {
			continue
		}
		enveloped++
		var v any
		err := (&serializer.Serializer{}).Unmarshal(it.Data, it.Flags, &v)
		require.ErrorIs(t, err, serializer.ErrUnknownFormat, it.Case)
	}
	assert.GreaterOrEqual(t, enveloped, 6)
}
