package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/memkit/memkit/adapters/gorillastore"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	msession "github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEchoSessions drives both kinds of session through echo's own
// router and echo-contrib/session over real memcached.
func TestEchoSessions(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	mc, err := memclient.New(srv.Addr)
	require.NoError(t, err)
	defer mc.Close()
	keys := [][]byte{[]byte("echo-example-hash-key-0123456789"), nil}
	mgr := &msession.Manager{Store: msession.NewMemcacheStore(mc), Keys: keys, Cookie: msession.CookieConfig{Insecure: true}}
	ts := httptest.NewServer(newEcho(mgr, gorillastore.New(msession.NewMemcacheStore(mc), keys[0])))
	defer ts.Close()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	do := func(method, path string) (*http.Response, string) {
		req, err := http.NewRequest(method, ts.URL+path, nil)
		require.NoError(t, err)
		resp, err := c.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, strings.TrimSpace(string(b))
	}

	resp, _ := do("POST", "/login?user=ann")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	do("GET", "/me")
	resp, body := do("GET", "/me")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"user": "ann", "visits": 2}`, body)
	resp, body = do("POST", "/login?user=")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, body)

	_, body = do("POST", "/contrib/incr")
	assert.Equal(t, "1", body)
	resp, body = do("POST", "/contrib/incr")
	assert.Equal(t, "2", body)
	assert.Contains(t, resp.Header.Get("Set-Cookie"), "contrib=")
	assert.Contains(t, resp.Header.Get("Set-Cookie"), "Max-Age=3600")
	_, body = do("GET", "/me")
	assert.JSONEq(t, `{"user": "ann", "visits": 3}`, body, "the two kinds of session live side by side")
}
