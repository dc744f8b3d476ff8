package memclient_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/faultproxy"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// TestInvariantUnderFaults runs many goroutines doing Get, GetMulti, Set
// and CompareAndSwap with random short deadlines through a proxy that
// drops, duplicates, delays and cuts replies and resets connections, in
// front of real memcached servers. Every value names its own key and a
// version, and every call is checked:
//
//   - no call returns a value under another key, nor a version of a key
//     that was never written;
//   - a GetMulti names, in its result or its error, nothing it was not
//     asked for, and (meta protocol) every key it was asked for: all keys
//     exist, so a key missing from both would be a reply taken for
//     another's. The text protocol cannot promise that last one (see
//     memclient.ProtocolText): there a lost key only has to be one asked for.
func TestInvariantUnderFaults(t *testing.T) {
	for _, m := range plainModes {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			var proxies []*faultproxy.Proxy
			cfg := memclient.Config{
				Protocol:         m.proto,
				Timeout:          time.Second,
				FailureThreshold: 1 << 20, // keep serving through the faults
			}
			for i := 0; i < 2; i++ {
				srv := memcachetest.Start(t, memcachetest.Options{})
				p := faultproxy.Start(t, srv.Addr)
				proxies = append(proxies, p)
				cfg.Servers = append(cfg.Servers, memclient.Server{Addr: p.Addr()})
			}
			c, err := memclient.NewFromConfig(cfg)
			require.NoError(t, err)
			defer c.Close()

			const nkeys = 64
			keys := make([]string, nkeys)
			written := make([]atomic.Int64, nkeys) // the highest version ever sent per key
			index := make(map[string]int, nkeys)
			for i := range keys {
				keys[i] = "inv:" + strconv.Itoa(i)
				index[keys[i]] = i
				require.NoError(t, c.Set(ctxT(t), &memclient.Item{Key: keys[i], Value: encodeVersion(keys[i], 0)}))
			}
			check := func(k string, v []byte) error {
				key, ver, ok := decodeVersion(v)
				switch {
				case !ok:
					return fmt.Errorf("value %q is not a versioned value", v)
				case key != k:
					return fmt.Errorf("value of %q returned for %q", key, k)
				case ver > written[index[k]].Load():
					return fmt.Errorf("version %d of %q was never written", ver, k)
				}
				return nil
			}

			for i, p := range proxies {
				p.SetChaos(faultproxy.Chaos{Seed: uint64(i + 1), Drop: 0.002, Duplicate: 0.002, Reset: 0.001, MaxDelay: 200 * time.Microsecond})
			}
			var (
				wg                            sync.WaitGroup
				ok, failed, protocol, timeout atomic.Int64
			)
			count := func(err error) {
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, memclient.ErrProtocol):
					protocol.Add(1)
				case errors.Is(err, context.DeadlineExceeded):
					timeout.Add(1)
				default:
					failed.Add(1)
				}
			}
			stop := time.Now().Add(3 * time.Second)
			for g := 0; g < 24; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(g), 7))
					for i := 0; i < 20000 && time.Now().Before(stop); i++ {
						dl := 300*time.Microsecond + time.Duration(rng.Int64N(int64(30*time.Millisecond)))
						ctx, cancel := context.WithTimeout(context.Background(), dl)
						k := rng.IntN(nkeys)
						switch op := rng.IntN(10); {
						case op < 4:
							it, err := c.Get(ctx, keys[k])
							if err == nil {
								if err := check(keys[k], it.Value); err != nil {
									t.Errorf("Get: %v", err)
								}
								if it.Key != keys[k] {
									t.Errorf("Get(%q) returned item %q", keys[k], it.Key)
								}
							} else if errors.Is(err, memclient.ErrCacheMiss) {
								t.Errorf("Get(%q): a key that exists missed", keys[k])
							}
							count(err)
						case op < 7:
							n := 1 + rng.IntN(40)
							start := rng.IntN(nkeys - n + 1)
							asked := keys[start : start+n]
							got, err := c.GetMulti(ctx, asked)
							if m.proto == memclient.ProtocolMeta {
								checkGetMulti(t, asked, got, err, check)
							} else {
								checkGetMultiWeak(t, asked, got, err, check)
							}
							count(err)
						case op < 9:
							v := written[k].Add(1)
							count(c.Set(ctx, &memclient.Item{Key: keys[k], Value: encodeVersion(keys[k], v)}))
						default:
							it, err := c.Get(ctx, keys[k])
							if err == nil {
								if err := check(keys[k], it.Value); err != nil {
									t.Errorf("Get before CAS: %v", err)
								}
								v := written[k].Add(1)
								it.Value = encodeVersion(keys[k], v)
								err = c.CompareAndSwap(ctx, it)
								if errors.Is(err, memclient.ErrCASConflict) {
									err = nil
								}
							}
							count(err)
						}
						cancel()
					}
				}()
			}
			wg.Wait()

			var injected int
			for _, p := range proxies {
				st := p.Stats()
				injected += st.Dropped + st.Duplicated + st.Cut
				p.SetChaos(faultproxy.Chaos{})
			}
			t.Logf("%s: %d ok, %d timed out, %d protocol errors, %d other failures; %d replies dropped, duplicated or cut",
				m.name, ok.Load(), timeout.Load(), protocol.Load(), failed.Load(), injected)
			assert.NotZero(t, injected, "the proxies injected no fault")
			assert.NotZero(t, ok.Load(), "no call succeeded")

			// With the faults off, everything reads back whole, once the
			// connections that may still carry a repeated or late reply
			// from the chaos are gone.
			for _, p := range proxies {
				p.ResetAll()
			}
			var got map[string]*memclient.Item
			for i := 0; i < 10; i++ {
				if got, err = c.GetMulti(ctxT(t), keys); err == nil {
					break
				}
			}
			require.NoError(t, err)
			checkGetMulti(t, keys, got, nil, check)
		})
	}
}

// checkGetMultiWeak is checkGetMulti without the promise that every key
// asked for is accounted for, which the text protocol cannot keep.
func checkGetMultiWeak(t *testing.T, asked []string, got map[string]*memclient.Item, err error, want func(key string, value []byte) error) {
	t.Helper()
	isAsked := make(map[string]bool, len(asked))
	for _, k := range asked {
		isAsked[k] = true
	}
	var failed memclient.MultiError
	if err != nil && !errors.As(err, &failed) {
		t.Fatalf("GetMulti returned %v, not a MultiError", err)
	}
	for k, it := range got {
		if !isAsked[k] || it.Key != k {
			t.Fatalf("GetMulti returned %q under %q, asked %v", it.Key, k, asked)
		}
		if err := want(k, it.Value); err != nil {
			t.Fatalf("GetMulti %q: %v", k, err)
		}
	}
	for k := range failed {
		if !isAsked[k] {
			t.Fatalf("GetMulti's error names key %q, which it was not asked for", k)
		}
	}
}

// encodeVersion and decodeVersion give a value that names its key and
// version: "key#version".
func encodeVersion(key string, v int64) []byte {
	return []byte(key + "#" + strconv.FormatInt(v, 10))
}

func decodeVersion(b []byte) (key string, v int64, ok bool) {
	key, ver, found := strings.Cut(string(b), "#")
	if !found {
		return "", 0, false
	}
	v, err := strconv.ParseInt(ver, 10, 64)
	return key, v, err == nil
}
