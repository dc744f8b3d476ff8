package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChiSessions drives the chi router over real memcached: two
// browsers sign in as one user, and logging out everywhere from one
// empties both.
func TestChiSessions(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	mc, err := memclient.New(srv.Addr)
	require.NoError(t, err)
	defer mc.Close()
	mgr := &session.Manager{Store: session.NewMemcacheStore(mc), Keys: [][]byte{[]byte("chi-example-hash-key-0123456789a"), nil},
		Cookie: session.CookieConfig{Insecure: true}}
	ts := httptest.NewServer(newRouter(mgr))
	defer ts.Close()
	browser := func() *http.Client {
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		return &http.Client{Jar: jar, Timeout: 10 * time.Second}
	}
	do := func(c *http.Client, method, path string) (int, string) {
		req, err := http.NewRequest(method, ts.URL+path, nil)
		require.NoError(t, err)
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}
	me := func(c *http.Client) (user string, visits int) {
		code, body := do(c, "GET", "/me")
		require.Equal(t, http.StatusOK, code)
		var m struct {
			User   string
			Visits int
		}
		require.NoError(t, json.Unmarshal([]byte(body), &m))
		return m.User, m.Visits
	}
	a, b := browser(), browser()
	code, _ := do(a, "POST", "/login?user=ann")
	require.Equal(t, http.StatusNoContent, code)
	do(b, "POST", "/login?user=ann")
	me(a)
	user, visits := me(a)
	assert.Equal(t, "ann", user)
	assert.Equal(t, 2, visits)
	code, _ = do(b, "POST", "/logout-everywhere")
	assert.Equal(t, http.StatusNoContent, code)
	user, visits = me(a)
	assert.Equal(t, "", user, "signed out on the other browser too")
	assert.Equal(t, 1, visits, "with a fresh session")
	code, _ = do(browser(), "POST", "/logout-everywhere")
	assert.Equal(t, http.StatusUnauthorized, code)
}
