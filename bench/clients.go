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

// numKeys is how many distinct keys each client benchmark cycles through;
// multiKeys is how many keys one GetMulti asks for.
const (
	numKeys   = 1000
	multiKeys = 100
)

func makeKeys(prefix string) []string {
	keys := make([]string, numKeys)
	for i := range keys {
		keys[i] = prefix + strconv.Itoa(i)
	}
	return keys
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
}

func (o memkitOpts) config(servers []string) memclient.Config {
	cfg := memclient.Config{MaxConnsPerServer: o.conns, Protocol: o.proto}
	for _, a := range servers {
		cfg.Servers = append(cfg.Servers, memclient.Server{Addr: a})
	}
	return cfg
}

// clientCases returns memclient-vs-gomemcache comparisons on the three
// servers in three and the single server in one; conns is memclient's
// MaxConnsPerServer (0: its default).
func clientCases(three, one []string, conns int) []benchCase {
	var cases []benchCase
	addSize := func(kind clientKind, goroutines, size int, servers []string, cancelCtx bool) {
		name := fmt.Sprintf("%s/%dg/%s/%dsrv", kind, goroutines, sizeName(size), len(servers))
		if cancelCtx {
			name += "/cancelctx"
		}
		opts := memkitOpts{conns: conns, cancelCtx: cancelCtx}
		impls := []impl{
			{name: "memkit", setup: memkitClientSetup(kind, goroutines, size, servers, opts)},
			{name: "gomemcache", setup: gomemcacheSetup(kind, goroutines, size, servers)},
		}
		if kind == opGetMulti {
			// The meta protocol has no multi-key get: one mg per key. The
			// text protocol's gets takes them all; show what that saves.
			text := opts
			text.proto = memclient.ProtocolText
			impls = append(impls, impl{name: "memkit-text", setup: memkitClientSetup(kind, goroutines, size, servers, text)})
		}
		cases = append(cases, benchCase{name: name, goroutines: goroutines, impls: impls})
	}
	add := func(kind clientKind, goroutines int, servers []string) {
		for _, size := range []int{100, 10 * 1024} {
			addSize(kind, goroutines, size, servers, false)
		}
	}
	add(opGet, 1, three)
	add(opGet, 64, three)
	// The same with a cancellable context per goroutine, as an HTTP
	// handler's request context is, instead of context.Background.
	addSize(opGet, 64, 100, three, true)
	add(opGet, 64, one)
	add(opSet, 64, three)
	add(opGetMulti, 1, three)
	add(opGetMulti, 16, three)
	return cases
}

// memkitClientSetup returns the setup of a memclient benchmark: a client
// on servers configured by opts, its keys stored. Its calls get
// context.Background(), or with opts.cancelCtx a cancellable context per
// worker (gomemcache takes no context). Cancelling a run is the harness's
// business: it checks its own context between operations.
func memkitClientSetup(kind clientKind, goroutines, size int, servers []string, opts memkitOpts) setupFunc {
	return func(ctx context.Context) (op, func(), error) {
		c, err := memclient.NewFromConfig(opts.config(servers))
		if err != nil {
			return nil, nil, err
		}
		keys := makeKeys(fmt.Sprintf("memkit:%s:%d:%d:", opts.proto, len(servers), size))
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
			return func(_ context.Context, w, i int) error {
				it, err := c.Get(ctxs[w], keyFor(keys, w, i))
				if err != nil {
					return err
				}
				if len(it.Value) != size {
					return fmt.Errorf("got %d bytes, want %d", len(it.Value), size)
				}
				return nil
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
func gomemcacheSetup(kind clientKind, goroutines, size int, servers []string) setupFunc {
	return func(ctx context.Context) (op, func(), error) {
		c := memcache.New(servers...)
		c.MaxIdleConns = goroutines
		c.Timeout = time.Second
		keys := makeKeys(fmt.Sprintf("gomemcache:%d:%d:", len(servers), size))
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
				if len(it.Value) != size {
					return fmt.Errorf("got %d bytes, want %d", len(it.Value), size)
				}
				return nil
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
