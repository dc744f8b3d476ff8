package main

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/memkit/memkit/memclient"
)

// numKeys is how many distinct keys each client benchmark cycles through
// (fewer for big values, see keysPerImpl); multiKeys is how many keys one
// GetMulti asks for; valueBudget bounds what one implementation stores.
const (
	numKeys     = 1000
	multiKeys   = 100
	valueBudget = 16 << 20
)

// keysPerImpl is how many keys of size bytes each implementation stores:
// most (0: numKeys), or as many as valueBudget holds (at least 16), so
// that every implementation of a 1 MB benchmark fits in one server's
// memory at once.
func keysPerImpl(size, most int) int {
	if most == 0 {
		most = numKeys
	}
	return min(most, max(16, valueBudget/max(1, size)))
}

func makeKeys(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	return keys
}

// checkLen checks that a value read has the length stored.
func checkLen(v []byte, size int) error {
	if len(v) != size {
		return fmt.Errorf("got %d bytes, want %d", len(v), size)
	}
	return nil
}

// keyFor spreads the workers over the key space.
func keyFor(keys []string, w, i int) string {
	return keys[(w*7919+i)%len(keys)]
}

// multiSet returns the w-th/i-th window of multiKeys consecutive keys.
func multiSet(sets [][]string, w, i int) []string {
	return sets[(w+i)%len(sets)]
}

func windows(keys []string) [][]string {
	var out [][]string
	for i := 0; i+multiKeys <= len(keys); i += multiKeys {
		out = append(out, keys[i:i+multiKeys])
	}
	return out
}

func value(size int) []byte {
	return bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
}

type clientKind int

const (
	opGet clientKind = iota
	opSet
	opGetMulti
)

func (k clientKind) String() string {
	switch k {
	case opGet:
		return "get"
	case opSet:
		return "set"
	}
	return "getmulti" + strconv.Itoa(multiKeys)
}

func sizeName(size int) string {
	if size >= 1<<20 && size%(1<<20) == 0 {
		return strconv.Itoa(size>>20) + "MB"
	}
	if size >= 1024 && size%1024 == 0 {
		return strconv.Itoa(size/1024) + "KB"
	}
	return strconv.Itoa(size) + "B"
}

// memkitOpts are the memclient settings of a memkit benchmark.
type memkitOpts struct {
	conns     int                // Config.MaxConnsPerServer; 0 means the default
	proto     memclient.Protocol // Config.Protocol
	cancelCtx bool               // a cancellable context per worker instead of Background
	into      bool               // Get through GetInto, each worker reusing its Item
}

func (o memkitOpts) config(servers []string) memclient.Config {
	cfg := memclient.Config{MaxConnsPerServer: o.conns, Protocol: o.proto}
	for _, a := range servers {
		cfg.Servers = append(cfg.Servers, memclient.Server{Addr: a})
	}
	return cfg
}

// getSizes are the value sizes of the Get benchmarks; the other client
// benchmarks use the first two.
var getSizes = []int{100, 10 << 10, 100 << 10, 1 << 20}

// clientParams are the settings of the client benchmarks.
type clientParams struct {
	conns      int // memclient's MaxConnsPerServer (0: its default)
	limitDepth int // the batched client's requests per batch
	keys       int // most keys stored per implementation (0: numKeys); at least multiKeys
}

// clientCases returns the memclient comparisons: Get against every peer
// and the batched client (the limit), Set and GetMulti against
// gomemcache.
func clientCases(p clientParams) []benchCase {
	var cases []benchCase
	conns := p.conns
	addSize := func(kind clientKind, goroutines, size, servers int, cancelCtx bool) {
		nkeys := keysPerImpl(size, p.keys)
		name := fmt.Sprintf("%s/%dg/%s/%dsrv", kind, goroutines, sizeName(size), servers)
		if cancelCtx {
			name += "/cancelctx"
		}
		opts := memkitOpts{conns: conns, cancelCtx: cancelCtx}
		impls := []impl{{name: "memkit", setup: memkitClientSetup(kind, goroutines, size, nkeys, opts)}}
		if kind == opGet && !cancelCtx {
			into := opts
			into.into = true
			impls = append(impls, impl{name: "memkit-into", setup: memkitClientSetup(kind, goroutines, size, nkeys, into)})
		}
		impls = append(impls, impl{name: "gomemcache", setup: gomemcacheSetup(kind, goroutines, size, nkeys)})
		switch {
		case kind == opGet && !cancelCtx:
			impls = append(impls,
				impl{name: "grafana", setup: grafanaSetup(goroutines, size, nkeys)},
				impl{name: "rainycape", setup: rainycapeSetup(goroutines, size, nkeys)},
				impl{name: "quangtung97", setup: quangtungSetup(size, nkeys, conns)})
		case kind == opGetMulti:
			// The meta protocol has no multi-key get: one mg per key. The
			// text protocol's gets takes them all; show what that saves.
			text := opts
			text.proto = memclient.ProtocolText
			impls = append(impls, impl{name: "memkit-text", setup: memkitClientSetup(kind, goroutines, size, nkeys, text)})
		}
		if kind == opGet {
			impls = append(impls, impl{name: limitName, setup: limitSetup(size, nkeys, p.limitDepth),
				workers: limitConns * servers, batch: p.limitDepth})
		}
		cases = append(cases, benchCase{name: name, goroutines: goroutines, servers: servers, impls: impls})
	}
	add := func(kind clientKind, goroutines, servers int, sizes []int) {
		for _, size := range sizes {
			addSize(kind, goroutines, size, servers, false)
		}
	}
	add(opGet, 1, 3, getSizes)
	add(opGet, 64, 3, getSizes)
	// The same with a cancellable context per goroutine, as an HTTP
	// handler's request context is, instead of context.Background.
	addSize(opGet, 64, 100, 3, true)
	add(opGet, 64, 1, getSizes)
	add(opGet, 64, 6, getSizes)
	add(opSet, 64, 3, getSizes[:2])
	add(opGetMulti, 1, 3, getSizes[:2])
	add(opGetMulti, 16, 3, getSizes[:2])
	return cases
}

// memkitClientSetup returns the setup of a memclient benchmark: a client
// configured by opts, its nkeys keys stored. Its calls get context.Background(),
// or with opts.cancelCtx a cancellable context per worker (gomemcache takes
// no context). Cancelling a run is the harness's business: it checks its
// own context between operations.
func memkitClientSetup(kind clientKind, goroutines, size, nkeys int, opts memkitOpts) setupFunc {
	return func(ctx context.Context, servers []string) (op, func(), error) {
		c, err := memclient.NewFromConfig(opts.config(servers))
		if err != nil {
			return nil, nil, err
		}
		prefix := "memkit"
		if opts.into {
			prefix = "memkit-into"
		}
		keys := makeKeys(fmt.Sprintf("%s:%s:%d:%d:", prefix, opts.proto, len(servers), size), nkeys)
		val := value(size)
		for _, k := range keys {
			if err := c.Set(ctx, &memclient.Item{Key: k, Value: val}); err != nil {
				c.Close()
				return nil, nil, fmt.Errorf("storing %s: %w", k, err)
			}
		}
		ctxs := make([]context.Context, goroutines)
		cancels := make([]context.CancelFunc, goroutines)
		for w := range ctxs {
			ctxs[w] = context.Background()
			if opts.cancelCtx {
				ctxs[w], cancels[w] = context.WithCancel(ctxs[w])
			}
		}
		closeFn := func() {
			for _, cancel := range cancels {
				if cancel != nil {
					cancel()
				}
			}
			c.Close()
		}
		switch kind {
		case opGet:
			if opts.into {
				items := make([]memclient.Item, goroutines)
				return func(_ context.Context, w, i int) error {
					it := &items[w]
					if err := c.GetInto(ctxs[w], keyFor(keys, w, i), it); err != nil {
						return err
					}
					return checkLen(it.Value, size)
				}, closeFn, nil
			}
			return func(_ context.Context, w, i int) error {
				it, err := c.Get(ctxs[w], keyFor(keys, w, i))
				if err != nil {
					return err
				}
				return checkLen(it.Value, size)
			}, closeFn, nil
		case opSet:
			items := make([]memclient.Item, goroutines)
			for w := range items {
				items[w].Value = val
			}
			return func(_ context.Context, w, i int) error {
				it := &items[w]
				it.Key = keyFor(keys, w, i)
				return c.Set(ctxs[w], it)
			}, closeFn, nil
		default:
			sets := windows(keys)
			return func(_ context.Context, w, i int) error {
				m, err := c.GetMulti(ctxs[w], multiSet(sets, w, i))
				if err != nil {
					return err
				}
				if len(m) != multiKeys {
					return fmt.Errorf("got %d items, want %d", len(m), multiKeys)
				}
				return nil
			}, closeFn, nil
		}
	}
}

// gomemcacheSetup returns the setup of a gomemcache benchmark: a client on
// servers with MaxIdleConns equal to the goroutine count (its default of 2
// would make it dial and close a connection for most requests) and a
// Timeout of one second so that it does not fail under load.
func gomemcacheSetup(kind clientKind, goroutines, size, nkeys int) setupFunc {
	return func(ctx context.Context, servers []string) (op, func(), error) {
		c := memcache.New(servers...)
		c.MaxIdleConns = goroutines
		c.Timeout = time.Second
		keys := makeKeys(fmt.Sprintf("gomemcache:%d:%d:", len(servers), size), nkeys)
		val := value(size)
		for _, k := range keys {
			if err := c.Set(&memcache.Item{Key: k, Value: val}); err != nil {
				c.Close()
				return nil, nil, fmt.Errorf("storing %s: %w", k, err)
			}
		}
		closeFn := func() { c.Close() }
		switch kind {
		case opGet:
			return func(ctx context.Context, w, i int) error {
				it, err := c.Get(keyFor(keys, w, i))
				if err != nil {
					return err
				}
				return checkLen(it.Value, size)
			}, closeFn, nil
		case opSet:
			items := make([]memcache.Item, goroutines)
			for w := range items {
				items[w].Value = val
			}
			return func(ctx context.Context, w, i int) error {
				it := &items[w]
				it.Key = keyFor(keys, w, i)
				return c.Set(it)
			}, closeFn, nil
		default:
			sets := windows(keys)
			return func(ctx context.Context, w, i int) error {
				m, err := c.GetMulti(multiSet(sets, w, i))
				if err != nil {
					return err
				}
				if len(m) != multiKeys {
					return fmt.Errorf("got %d items, want %d", len(m), multiKeys)
				}
				return nil
			}, closeFn, nil
		}
	}
}
