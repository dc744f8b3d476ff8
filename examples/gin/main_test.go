package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	memkitgin "github.com/memkit/memkit/adapters/gin"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGinExample drives the example's gin engine over real memcached.
func TestGinExample(t *testing.T) {
	leakcheck.Check(t)
	gin.SetMode(gin.TestMode)
	srv := memcachetest.Start(t, memcachetest.Options{})
	mc, err := memclient.New(srv.Addr)
	require.NoError(t, err)
	defer mc.Close()
	key := []byte("gin-example-hash-key-0123456789a")
	mgr := &session.Manager{Store: session.NewMemcacheStore(mc), Keys: [][]byte{key, nil}, Cookie: session.CookieConfig{Insecure: true}}
	ts := httptest.NewServer(newEngine(mgr, memkitgin.NewStore(session.NewMemcacheStore(mc), key)))
	defer ts.Close()
	browser := func() *http.Client {
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		return &http.Client{Jar: jar, Timeout: 10 * time.Second}
	}
	do := func(c *http.Client, method, path string) (*http.Response, string) {
		req, err := http.NewRequest(method, ts.URL+path, nil)
		require.NoError(t, err)
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, strings.TrimSpace(string(b))
	}
	a, b := browser(), browser()
	resp, _ := do(a, "POST", "/login?user=ann&remember=1")
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Set-Cookie"), "Max-Age=2592000", "remember me: 30 days")
	resp, _ = do(b, "POST", "/login?user=ann")
	assert.Contains(t, resp.Header.Get("Set-Cookie"), "Max-Age=86400", "otherwise the Manager's lifetime")
	do(a, "GET", "/me")
	_, body := do(a, "GET", "/me")
	assert.JSONEq(t, `{"user": "ann", "visits": 2}`, body)
	resp, _ = do(b, "POST", "/logout-everywhere")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	_, body = do(a, "GET", "/me")
	assert.JSONEq(t, `{"user": "", "visits": 1}`, body, "signed out on the other browser")

	_, body = do(a, "POST", "/contrib/incr")
	assert.Equal(t, "1", body)
	_, body = do(a, "POST", "/contrib/incr")
	assert.Equal(t, "2", body)
}
