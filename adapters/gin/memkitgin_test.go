package memkitgin_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ginsessions "github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	memkitgin "github.com/memkit/memkit/adapters/gin"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func init() { gin.SetMode(gin.TestMode) }

var keys = [][]byte{[]byte("gin-hash-key-0123456789abcdefghi"), []byte("gin-block-key-16")}

func newClient(t *testing.T, srv *memcachetest.Server) *memclient.Client {
	t.Helper()
	c, err := memclient.NewFromConfig(memclient.Config{Servers: []memclient.Server{{Addr: srv.Addr}}, Timeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// browser is an HTTP client with a cookie jar against srv.
type browser struct {
	t   *testing.T
	srv *httptest.Server
	c   *http.Client
}

func newBrowser(t *testing.T, srv *httptest.Server) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, srv: srv, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (b *browser) do(method, path string) (*http.Response, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, nil)
	require.NoError(b.t, err)
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return resp, string(body)
}

// TestNativeSessions drives memkit's own sessions through gin's API
// (c.JSON, c.String, c.Status, AbortWithStatus, route groups) over real
// memcached: every write reaches the store and the cookie goes out with
// the response, which a middleware saving after c.Next() cannot do.
func TestNativeSessions(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	mgr := &session.Manager{Store: session.NewMemcacheStore(newClient(t, srv)), Keys: keys,
		Cookie: session.CookieConfig{Insecure: true}}
	r := gin.New()
	r.Use(memkitgin.Sessions(mgr))
	r.POST("/login", func(c *gin.Context) {
		s := memkitgin.Default(c)
		if err := s.Login(c.Request.Context(), c.Query("user")); err != nil {
			c.AbortWithStatus(http.StatusServiceUnavailable)
			return
		}
		c.JSON(http.StatusOK, gin.H{"user": c.Query("user")})
	})
	r.POST("/visit", func(c *gin.Context) {
		s := memkitgin.Default(c)
		require.NoError(t, session.Update(c.Request.Context(), s, "visits", func(n int, _ bool) int { return n + 1 }))
		c.Status(http.StatusNoContent) // no body: saved once the handlers return
	})
	r.GET("/me", func(c *gin.Context) {
		s := memkitgin.Default(c)
		n, _ := s.Get(c.Request.Context(), "visits")
		c.String(http.StatusOK, "%s %v", s.User(c.Request.Context()), n)
	})
	r.GET("/stream", func(c *gin.Context) {
		c.String(http.StatusOK, "first")
		c.Writer.Flush()
		err := memkitgin.Default(c).Set("late", true)
		c.String(http.StatusOK, " %v", err != nil)
	})
	r.GET("/health", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	ts := httptest.NewServer(r)
	defer ts.Close()
	b := newBrowser(t, ts)

	resp, body := b.do("POST", "/visit")
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Len(t, resp.Cookies(), 1, "the new session's cookie went out with a bodiless response")
	resp, _ = b.do("POST", "/login?user=ann")
	assert.Len(t, resp.Cookies(), 1, "login renews the ID")
	b.do("POST", "/visit")
	_, body = b.do("GET", "/me")
	assert.Equal(t, "ann 2", body, "every write reached memcached; the int stays an int")

	resp, body = b.do("GET", "/health")
	assert.Equal(t, "ok", body)
	assert.Empty(t, resp.Cookies())

	// A new session changed after the response started cannot be saved:
	// Set says so.
	resp, body = newBrowser(t, ts).do("GET", "/stream")
	assert.Equal(t, "first true", body)
	assert.Empty(t, resp.Cookies())

	// memcached down: the default hook's 503 replaces the handler's answer.
	srv.Kill()
	resp, body = b.do("GET", "/me")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
	assert.NotContains(t, body, "ann")
	resp, _ = b.do("GET", "/health")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a handler that never touches its session is unaffected")
}

// TestGinContribStore drives Store through gin-contrib/sessions' own API
// over real memcached.
func TestGinContribStore(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	client := newClient(t, srv)
	store := memkitgin.NewStore(session.NewMemcacheStore(client), keys...)
	store.Options(ginsessions.Options{Path: "/", MaxAge: 3600, HttpOnly: true})
	r := gin.New()
	r.Use(ginsessions.Sessions("app", store))
	r.POST("/incr", func(c *gin.Context) {
		s := ginsessions.Default(c)
		n, _ := s.Get("count").(int)
		s.Set("count", n+1)
		s.AddFlash("counted")
		require.NoError(t, s.Save())
		c.String(http.StatusOK, "%d", n+1)
	})
	r.GET("/read", func(c *gin.Context) {
		s := ginsessions.Default(c)
		flashes := s.Flashes()
		require.NoError(t, s.Save())
		c.String(http.StatusOK, "%v %v", s.Get("count"), flashes)
	})
	r.POST("/logout", func(c *gin.Context) {
		s := ginsessions.Default(c)
		s.Clear()
		s.Options(ginsessions.Options{Path: "/", MaxAge: -1})
		require.NoError(t, s.Save())
	})
	ts := httptest.NewServer(r)
	defer ts.Close()
	b := newBrowser(t, ts)

	_, body := b.do("POST", "/incr")
	assert.Equal(t, "1", body)
	resp, body := b.do("POST", "/incr")
	assert.Equal(t, "2", body)
	sc := resp.Header.Get("Set-Cookie")
	assert.Contains(t, sc, "app=")
	assert.Contains(t, sc, "Max-Age=3600")
	assert.Contains(t, sc, "HttpOnly")
	_, body = b.do("GET", "/read")
	assert.Equal(t, "2 [counted counted]", body)
	_, body = b.do("GET", "/read")
	assert.Equal(t, "2 []", body, "flashes were consumed and saved")

	stats, err := client.Stats(context.Background())
	require.NoError(t, err)
	assert.NotEqual(t, "0", stats[srv.Addr]["curr_items"], "the session lives in memcached")

	resp, _ = b.do("POST", "/logout")
	assert.True(t, strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0"), resp.Header.Get("Set-Cookie"))
	_, body = b.do("GET", "/read")
	assert.Equal(t, "<nil> []", body)
}
