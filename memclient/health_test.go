package memclient_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// TestMarkDownAndRecover: a dead server is marked down after
// FailureThreshold failures, its keys then fail fast with
// ErrServerUnavailable naming it, and the background probe brings it back
// once it answers again.
func TestMarkDownAndRecover(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	c, err := memclient.NewFromConfig(memclient.Config{
		Servers:          []memclient.Server{{Addr: srv.Addr}},
		FailureThreshold: 2,
		RetryInterval:    20 * time.Millisecond,
		MaxRetryInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	defer c.Close()
	ctx := ctxT(t)
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("v")}))

	srv.Kill()
	var lastErr error
	for i := 0; i < 10; i++ {
		_, lastErr = c.Get(ctx, "k")
		require.Error(t, lastErr)
		if st := c.ServerStatus()[0]; !st.Up {
			break
		}
	}
	st := c.ServerStatus()[0]
	require.False(t, st.Up, "server should be marked down; last error %v", lastErr)
	assert.False(t, st.DownSince.IsZero())
	assert.NotEmpty(t, st.LastError)
	assert.NotZero(t, st.Errors)

	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, memclient.ErrServerUnavailable)
	assert.Contains(t, err.Error(), srv.Addr)

	require.NoError(t, srv.Restart())
	require.Eventually(t, func() bool { return c.ServerStatus()[0].Up }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("again")}))
	it, err := c.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "again", string(it.Value))
}

// TestPartialMulti: with one of two servers down, GetMulti returns what
// the live one has plus a MultiError for exactly the dead one's keys.
func TestPartialMulti(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	c, err := memclient.New(srvs[0].Addr, srvs[1].Addr)
	require.NoError(t, err)
	defer c.Close()
	ctx := ctxT(t)
	var keys []string
	var items []*memclient.Item
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("pm:%d", i)
		keys = append(keys, k)
		items = append(items, &memclient.Item{Key: k, Value: []byte(k)})
	}
	require.NoError(t, c.SetMulti(ctx, items))
	got, err := c.GetMulti(ctx, keys)
	require.NoError(t, err)
	require.Len(t, got, 200)

	srvs[1].Kill()
	got, err = c.GetMulti(ctx, keys)
	var me memclient.MultiError
	require.ErrorAs(t, err, &me)
	require.NotEmpty(t, got)
	require.NotEmpty(t, me)
	assert.Equal(t, 200, len(got)+len(me), "every key is either served or reported")
	for k := range me {
		assert.NotContains(t, got, k)
	}
	assert.Contains(t, err.Error(), srvs[1].Addr)

	// SetMulti and DeleteMulti report the same keys.
	err = c.SetMulti(ctx, items)
	require.ErrorAs(t, err, &me)
	assert.Equal(t, 200-len(got), len(me))
	_, err = c.Stats(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), srvs[1].Addr)
}

// TestSetServers keeps working connections and drops removed servers.
func TestSetServers(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	c, err := memclient.New(srvs[0].Addr)
	require.NoError(t, err)
	defer c.Close()
	ctx := ctxT(t)
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("v")}))
	require.NoError(t, c.SetServers(
		memclient.Server{Addr: srvs[0].Addr}, memclient.Server{Addr: srvs[1].Addr, Weight: 2}, memclient.Server{Addr: srvs[2].Addr}))
	st := c.ServerStatus()
	require.Len(t, st, 3)
	assert.Equal(t, 2, st[1].Weight)
	assert.NotZero(t, st[0].Requests, "the kept server keeps its counters")
	for i := 0; i < 50; i++ {
		require.NoError(t, c.Set(ctx, &memclient.Item{Key: fmt.Sprintf("s%d", i), Value: []byte("v")}))
	}
	require.NoError(t, c.SetServers(memclient.Server{Addr: srvs[2].Addr}))
	require.Len(t, c.ServerStatus(), 1)
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("v")}))
	require.NoError(t, c.SetServers())
	_, err = c.Get(ctx, "k")
	require.ErrorIs(t, err, memclient.ErrNoServers)
}

// TestServerRestartIdle: connections left idle across a server restart
// are noticed before use, so the first request after it succeeds.
func TestServerRestartIdle(t *testing.T) {
	for _, m := range []mode{modes[0], modes[2]} {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srv := memcachetest.Start(t, m.opts)
			c := newClient(t, srv, m, nil)
			ctx := ctxT(t)
			for i := 0; i < 4; i++ { // touch every connection slot
				require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("v")}))
			}
			// An idle, healthy connection is kept.
			total := func() string {
				st, err := c.Stats(ctx)
				require.NoError(t, err)
				return st[srv.Addr]["total_connections"]
			}
			before := total()
			c.SetIdleSinceForTest(2 * time.Second)
			_, err := c.Get(ctx, "k")
			require.NoError(t, err)
			require.Equal(t, before, total(), "a healthy idle connection must not be replaced")

			require.NoError(t, srv.Restart())
			c.SetIdleSinceForTest(2 * time.Second)
			for i := 0; i < 4; i++ {
				_, err := c.Get(ctx, "k")
				require.ErrorIs(t, err, memclient.ErrCacheMiss, "the restarted server is empty; no request may fail")
			}
			assert.True(t, c.ServerStatus()[0].Up)
		})
	}
}
