package memclient_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// lockedBuffer is a bytes.Buffer safe for a logger's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu     sync.Mutex
	ops    []memclient.Op
	events []memclient.ServerEvent
	ctxs   []context.Context
}

func (r *recorder) ObserveOp(ctx context.Context, op memclient.Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op)
	r.ctxs = append(r.ctxs, ctx)
}

func (r *recorder) ObserveServer(_ context.Context, ev memclient.ServerEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// take returns and forgets the ops seen so far.
func (r *recorder) take() []memclient.Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	ops := r.ops
	r.ops, r.ctxs = nil, nil
	return ops
}

type ctxKey struct{}

// TestObserver: every operation reaches the Observer with its name,
// server, outcome, failure reason, keys and bytes, and the caller's
// context; servers going down and up are reported with the reason; the
// logger says the same; nothing carries a key.
func TestObserver(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	rec := &recorder{}
	var logs lockedBuffer
	cfg := haConfig(modes[0], srvs...)
	cfg.Observer = rec
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	c := newHAClient(t, cfg)
	ctx := context.WithValue(ctxT(t), ctxKey{}, "caller")

	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "user@example.com", Value: []byte("12345")}))
	_, err := c.Get(ctx, "user@example.com")
	require.NoError(t, err)
	_, err = c.Get(ctx, "nope")
	require.ErrorIs(t, err, memclient.ErrCacheMiss)
	require.ErrorIs(t, c.Add(ctx, &memclient.Item{Key: "user@example.com", Value: []byte("x")}), memclient.ErrNotStored)
	require.ErrorIs(t, c.CompareAndSwap(ctx, &memclient.Item{Key: "user@example.com", Value: []byte("x"), CAS: 1 << 40}), memclient.ErrCASConflict)
	_, err = c.Get(ctx, "bad key")
	require.ErrorIs(t, err, memclient.ErrMalformedKey)
	ops := rec.take()
	require.Len(t, ops, 6)
	want := []struct {
		name    string
		outcome memclient.Outcome
		reason  string
	}{
		{"set", memclient.OutcomeOK, ""}, {"get", memclient.OutcomeOK, ""}, {"get", memclient.OutcomeMiss, ""},
		{"add", memclient.OutcomeNotStored, ""}, {"cas", memclient.OutcomeConflict, ""}, {"get", memclient.OutcomeFailed, "malformed-key"},
	}
	for i, w := range want {
		assert.Equal(t, w.name, ops[i].Name, "op %d", i)
		assert.Equal(t, w.outcome, ops[i].Outcome, "op %d", i)
		assert.Equal(t, w.reason, ops[i].Reason, "op %d", i)
		assert.False(t, ops[i].Start.IsZero())
		assert.GreaterOrEqual(t, ops[i].Duration, time.Duration(0))
	}
	assert.Equal(t, 5, ops[0].BytesOut)
	assert.Equal(t, 5, ops[1].BytesIn)
	assert.NotEmpty(t, ops[0].Server)
	assert.Empty(t, ops[5].Server, "refused before a server was chosen")
	rec.mu.Lock()
	rec.ctxs = append(rec.ctxs, nil)
	rec.mu.Unlock()

	// A multi-key call reports once per server it used.
	var keys []string
	for i := 0; i < 30; i++ {
		keys = append(keys, strings.Repeat("k", i+1))
	}
	_, err = c.GetMulti(ctx, keys)
	require.NoError(t, err)
	ops = rec.take()
	require.Len(t, ops, 3)
	total := 0
	for _, op := range ops {
		assert.Equal(t, "get_multi", op.Name)
		total += op.Keys
	}
	assert.Equal(t, 30, total)

	// The caller's context reaches the Observer.
	_, _ = c.Get(ctx, "nope")
	rec.mu.Lock()
	assert.Equal(t, "caller", rec.ctxs[len(rec.ctxs)-1].Value(ctxKey{}))
	rec.mu.Unlock()

	// A server down and up.
	srvs[1].Kill()
	require.Eventually(t, func() bool {
		_, _ = c.GetMulti(ctx, keys)
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.events) > 0
	}, 10*time.Second, time.Millisecond)
	failures := 0
	for _, op := range rec.take() {
		if op.Outcome == memclient.OutcomeFailed {
			failures++
			assert.Contains(t, []string{"network", "unavailable", "timeout"}, op.Reason)
		}
	}
	assert.NotZero(t, failures)
	require.NoError(t, srvs[1].Restart())
	var evs []memclient.ServerEvent
	require.Eventually(t, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		evs = append(evs[:0], rec.events...)
		return len(evs) >= 2 && evs[len(evs)-1].Up
	}, 20*time.Second, time.Millisecond, "the server was never reported up")
	require.GreaterOrEqual(t, len(evs), 2)
	assert.Equal(t, srvs[1].Addr, evs[0].Server)
	assert.False(t, evs[0].Up)
	assert.Error(t, evs[0].Reason)
	assert.True(t, evs[len(evs)-1].Up)
	assert.Contains(t, logs.String(), "memcached server down")
	assert.Contains(t, logs.String(), "memcached server up")
	assert.NotContains(t, logs.String(), "user@example.com", "keys never reach logs")
}

// TestPing: every server answers with its round trip; a dead one with its
// error, and the call's error says so.
func TestPing(t *testing.T) {
	for _, m := range append(plainModes, modes[len(modes)-1]) {
		t.Run(m.name, func(t *testing.T) {
			leakcheck.Check(t)
			srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
			cfg := haConfig(m, srvs...)
			if m.proxy {
				p := memcachetest.StartProxy(t, memcachetest.ProxyOptions{Servers: memcachetest.ProxyServers(srvs)})
				cfg.Servers = []memclient.Server{{Addr: p.Addr}}
				cfg.BehindProxy = true
			}
			c := newHAClient(t, cfg)
			res, err := c.Ping(ctxT(t))
			require.NoError(t, err)
			require.Len(t, res, len(cfg.Servers))
			for i, r := range res {
				assert.Equal(t, cfg.Servers[i].Addr, r.Addr)
				assert.NoError(t, r.Err)
				assert.Greater(t, r.RTT, time.Duration(0))
			}
			if m.proxy {
				return
			}
			srvs[2].Kill()
			res, err = c.Ping(ctxT(t))
			require.Error(t, err)
			assert.NoError(t, res[0].Err)
			assert.Error(t, res[2].Err)
			assert.Contains(t, err.Error(), srvs[2].Addr)
		})
	}
}

// TestObservers: Observers tells every observer given, skips nil ones,
// and is nil (no cost) without any.
func TestObservers(t *testing.T) {
	require.Nil(t, memclient.Observers())
	require.Nil(t, memclient.Observers(nil, nil))
	a, b := &recorder{}, &recorder{}
	assert.Same(t, a, memclient.Observers(nil, a))
	o := memclient.Observers(a, nil, b)
	o.ObserveOp(context.Background(), memclient.Op{Name: "get"})
	o.ObserveServer(context.Background(), memclient.ServerEvent{Server: "s"})
	for _, r := range []*recorder{a, b} {
		assert.Len(t, r.take(), 1)
		assert.Len(t, r.events, 1)
	}
}
