package session_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock for the Manager's and MemoryStore's seams.
type fakeClock struct {
	mu sync.Mutex // protects t
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// backend is a store under test.
type backend struct {
	name string
	// new returns a store and, for memcached, its server and client.
	new func(t *testing.T, clock *fakeClock) (session.Store, *memcachetest.Server, *memclient.Client)
}

var backends = []backend{
	{"memcached", func(t *testing.T, _ *fakeClock) (session.Store, *memcachetest.Server, *memclient.Client) {
		srv := memcachetest.Start(t, memcachetest.Options{})
		c := newClient(t, srv.Addr)
		return session.NewMemcacheStore(c), srv, c
	}},
	{"memory", func(t *testing.T, clock *fakeClock) (session.Store, *memcachetest.Server, *memclient.Client) {
		s := session.NewMemoryStore()
		if clock != nil {
			session.SetStoreClock(s, clock.Now)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s, nil, nil
	}},
}

func newClient(t *testing.T, addrs ...string) *memclient.Client {
	t.Helper()
	cfg := memclient.Config{}
	for _, a := range addrs {
		cfg.Servers = append(cfg.Servers, memclient.Server{Addr: a})
	}
	return newClientFromConfig(t, cfg)
}

func newClientFromConfig(t *testing.T, cfg memclient.Config) *memclient.Client {
	t.Helper()
	cfg.Timeout, cfg.DialTimeout = 2*time.Second, 2*time.Second
	c, err := memclient.NewFromConfig(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var testKeys = [][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210")}

// countingStore counts the calls reaching a Store.
type countingStore struct {
	session.Store
	loads, saves, deletes atomic.Int64
}

func (c *countingStore) Load(ctx context.Context, key string, touch time.Duration) (session.Entry, bool, error) {
	c.loads.Add(1)
	return c.Store.Load(ctx, key, touch)
}

func (c *countingStore) Save(ctx context.Context, key string, e session.Entry, ttl time.Duration) error {
	c.saves.Add(1)
	return c.Store.Save(ctx, key, e, ttl)
}

func (c *countingStore) Delete(ctx context.Context, key string) error {
	c.deletes.Add(1)
	return c.Store.Delete(ctx, key)
}

func (c *countingStore) calls() [3]int64 {
	return [3]int64{c.loads.Load(), c.saves.Load(), c.deletes.Load()}
}

func newJarClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second}
}

func sessionCookie(t *testing.T, c *http.Client, base string) *http.Cookie {
	t.Helper()
	u, err := url.Parse(base)
	require.NoError(t, err)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == session.DefaultCookieName {
			return ck
		}
	}
	return nil
}
