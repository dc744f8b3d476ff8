package objcache_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
)

var protocols = []memclient.Protocol{memclient.ProtocolMeta, memclient.ProtocolText}

// newClient returns a client of addr speaking proto, closed when the test
// ends.
func newClient(t testing.TB, addr string, proto memclient.Protocol) *memclient.Client {
	t.Helper()
	cl, err := memclient.NewFromConfig(memclient.Config{
		Servers:  []memclient.Server{{Addr: addr}},
		Protocol: proto,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// newCache returns a cache over a fresh client of addr.
func newCache(t testing.TB, addr string, proto memclient.Protocol, opts objcache.Options) *objcache.Cache {
	t.Helper()
	c, err := objcache.New(newClient(t, addr, proto), opts)
	require.NoError(t, err)
	return c
}

// newCacheClient is newCache that also returns the client, for raw access.
func newCacheClient(t testing.TB, addr string, proto memclient.Protocol, opts objcache.Options) (*objcache.Cache, *memclient.Client) {
	t.Helper()
	mc := newClient(t, addr, proto)
	c, err := objcache.New(mc, opts)
	require.NoError(t, err)
	return c, mc
}

// eachProtocol runs f over a fresh memcached for each protocol.
func eachProtocol(t *testing.T, f func(t *testing.T, srv *memcachetest.Server, proto memclient.Protocol)) {
	for _, proto := range protocols {
		t.Run(proto.String(), func(t *testing.T) {
			srv := memcachetest.Start(t, memcachetest.Options{})
			f(t, srv, proto)
		})
	}
}
