package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
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

const cookieName = "shop_session"

// shop is the app served in-process, and a user's browser for it.
type shop struct {
	t   *testing.T
	app *app
	srv *httptest.Server
	url *url.URL
	c   *http.Client // with a cookie jar; does not follow redirects
	log *testWriter  // the app's log
}

// startShop starts the app over memcached servers (none: in-memory mode)
// and stops it when the test ends.
func startShop(t *testing.T, mc memclient.Config) *shop {
	t.Helper()
	tw := &testWriter{t: t}
	a, err := newApp(context.Background(), config{
		Memcached: mc,
		DBPath:    filepath.Join(t.TempDir(), "shop.db"),
		Log:       tw.logger(),
	})
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, a.Close())
	})
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	return &shop{t: t, app: a, srv: srv, url: u, c: newBrowser(t), log: tw}
}

func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// testWriter sends the app's log to the test log and keeps a copy.
type testWriter struct {
	t   *testing.T
	mu  sync.Mutex // protects buf
	buf strings.Builder
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// logger returns a text logger that writes to w.
func (w *testWriter) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (w *testWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// do sends a request with the browser c and returns the response with its
// body read.
func (s *shop) do(c *http.Client, method, path string, form url.Values) (*http.Response, string) {
	s.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, s.srv.URL+path, body)
	require.NoError(s.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp, string(b)
}

// json sends a request and decodes a 200 JSON answer into v.
func (s *shop) json(method, path string, form url.Values, v any) *http.Response {
	s.t.Helper()
	resp, body := s.do(s.c, method, path, form)
	require.Equal(s.t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, path, body)
	require.NoError(s.t, json.Unmarshal([]byte(body), v), body)
	return resp
}

type me struct {
	User   *string `json:"user"`
	Visits int     `json:"visits"`
}

func (s *shop) me() me {
	s.t.Helper()
	var m me
	s.json("GET", "/api/me", nil, &m)
	return m
}

// cookie returns the session cookie value the browser holds ("" if none).
func (s *shop) cookie() string {
	for _, c := range s.c.Jar.Cookies(s.url) {
		if c.Name == cookieName {
			return c.Value
		}
	}
	return ""
}

// withCookie sends GET path with only the given session cookie value.
func (s *shop) withCookie(value, path string) (*http.Response, string) {
	s.t.Helper()
	req, err := http.NewRequest("GET", s.srv.URL+path, nil)
	require.NoError(s.t, err)
	req.AddCookie(&http.Cookie{Name: cookieName, Value: value})
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp, string(b)
}

func ptr(s string) *string { return &s }

// TestShop walks the shop as a user would, over three real memcached
// servers with weights 1:2:3.
func TestShop(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	s := startShop(t, memclient.Config{Servers: []memclient.Server{
		{Addr: srvs[0].Addr, Weight: 1}, {Addr: srvs[1].Addr, Weight: 2}, {Addr: srvs[2].Addr, Weight: 3},
	}})
	walkShop(t, s)

	// The sessions and the memoized product live in memcached.
	var info debugInfo
	s.json("GET", "/debug/cache?format=json", nil, &info)
	require.Len(t, info.Servers, 3)
	items := uint64(0)
	for i, si := range info.Servers {
		assert.Equal(t, srvs[i].Addr, si.Addr)
		assert.Equal(t, i+1, si.Weight)
		assert.Equal(t, "up", si.State)
		assert.True(t, si.Up)
		assert.NotNil(t, si.HitRatio)
		assert.Positive(t, si.Connections)
		assert.Positive(t, si.LimitBytes)
		items += si.Items
	}
	assert.Positive(t, items)
	assert.Equal(t, "memcached", info.Mode)
	assert.Positive(t, info.Cache.Hits)
	assert.Positive(t, info.Cache.Loads)
	assert.Equal(t, s.app.db.Queries(), info.DBQueries)

	resp, body := s.do(s.c, "GET", "/debug/cache", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, srv := range srvs {
		assert.Contains(t, body, srv.Addr)
	}
	assert.Contains(t, body, "database queries")
	assert.Contains(t, body, "coalesced")
	assert.Contains(t, body, " MiB</dd>", "memory of each server")
}

func TestSize(t *testing.T) {
	for in, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 64 << 20: "64.0 MiB", 3 << 30: "3.0 GiB"} {
		assert.Equal(t, want, size(in), "%d", in)
	}
}

// TestShopInMemory walks the same shop with no memcached: the in-memory
// session store and the in-process memo.
func TestShopInMemory(t *testing.T) {
	leakcheck.Check(t)
	s := startShop(t, memclient.Config{})
	assert.Contains(t, s.log.String(), "no -memcached: in-memory mode", "the log says so")
	walkShop(t, s)
	var info debugInfo
	s.json("GET", "/debug/cache?format=json", nil, &info)
	assert.Empty(t, info.Servers)
	assert.Positive(t, info.Cache.Hits)
}

func walkShop(t *testing.T, s *shop) {
	// A first visit gets a session cookie; visits are counted.
	assert.Equal(t, me{User: nil, Visits: 1}, s.me())
	anon := s.cookie()
	require.NotEmpty(t, anon)
	assert.Equal(t, me{User: nil, Visits: 2}, s.me())
	assert.Equal(t, anon, s.cookie(), "same session, same cookie")

	// Login renews the session ID (the cookie changes) and keeps the data.
	var login map[string]string
	s.json("POST", "/login", url.Values{"user": {"alice"}}, &login)
	assert.Equal(t, "alice", login["user"])
	loggedIn := s.cookie()
	require.NotEmpty(t, loggedIn)
	assert.NotEqual(t, anon, loggedIn, "login renews the session ID")
	assert.Equal(t, me{User: ptr("alice"), Visits: 3}, s.me())
	// The pre-login ID is worthless now (session fixation).
	_, body := s.withCookie(anon, "/api/me")
	assert.JSONEq(t, `{"user": null, "visits": 1}`, body)

	// 30 concurrent adds to one session's cart are all kept.
	const adds = 30
	var wg sync.WaitGroup
	codes := make([]int, adds)
	for i := range adds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"item": {fmt.Sprintf("item-%02d", i)}}
			resp, err := s.c.PostForm(s.srv.URL+"/api/cart", form)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	want := make([]string, adds)
	for i := range want {
		want[i] = fmt.Sprintf("item-%02d", i)
		assert.Equal(t, http.StatusOK, codes[i], "add %d", i)
	}
	var cart struct{ Items []string }
	s.json("GET", "/api/cart", nil, &cart)
	assert.ElementsMatch(t, want, cart.Items)
	assert.Equal(t, loggedIn, s.cookie(), "adding to the cart keeps the session ID")

	// Concurrent visits of one session all count too.
	before := s.me().Visits
	const visits = 10
	wg = sync.WaitGroup{}
	for range visits {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := s.c.Get(s.srv.URL + "/api/me"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, me{User: ptr("alice"), Visits: before + visits + 1}, s.me())

	// The memoized product query: a miss runs the query, then hits.
	q0 := s.app.db.Queries()
	var p Product
	resp := s.json("GET", "/api/products/42", nil, &p)
	assert.Equal(t, "miss", resp.Header.Get("X-Cache"))
	assert.Equal(t, int64(42), p.ID)
	assert.NotEmpty(t, p.Name)
	var again Product
	resp = s.json("GET", "/api/products/42", nil, &again)
	assert.Equal(t, "hit", resp.Header.Get("X-Cache"))
	assert.Equal(t, p, again)
	resp, body = s.do(s.c, "GET", "/products/42", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hit", resp.Header.Get("X-Cache"))
	assert.Contains(t, body, p.Name)
	assert.Contains(t, body, "Signed in as <strong>alice</strong>")
	assert.Contains(t, body, "Cart: 30 item(s)")
	assert.Equal(t, int64(1), s.app.db.Queries()-q0, "one DB query for three reads of product 42")

	// Bad and unknown products.
	resp, _ = s.do(s.c, "GET", "/api/products/abc", nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = s.do(s.c, "GET", "/api/products/100000", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	// The catalogue page: cached whole by middleware.Cache on memcached.
	q0 = s.app.db.Queries()
	resp, body = s.do(s.c, "GET", "/", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `href="/products/1"`)
	assert.Contains(t, body, fmt.Sprintf("%d products", seedProducts))
	assert.Empty(t, resp.Header.Values("Set-Cookie"), "the public page never touches the session")
	assert.Equal(t, int64(3), s.app.db.Queries()-q0, "count, page 1's IDs and one IN query for its products")
	if s.app.cache != nil {
		assert.Equal(t, "MISS", resp.Header.Get("X-Cache"))
	}
	resp, body2 := s.do(s.c, "GET", "/", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	if s.app.cache != nil {
		assert.Equal(t, "HIT", resp.Header.Get("X-Cache"), "the page comes from memcached")
		assert.Equal(t, body, body2, "the very same page, render time included")
	} else {
		assert.Empty(t, resp.Header.Get("X-Cache"), "no page cache in the in-memory mode")
	}
	assert.Equal(t, int64(3), s.app.db.Queries()-q0, "no query for the cached page")
	resp, _ = s.do(s.c, "GET", "/?page=2", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, _ = s.do(s.c, "GET", "/?page=999", nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	// Logout destroys the session: the cookie goes and the ID is dead.
	var out map[string]any
	s.json("POST", "/logout", nil, &out)
	assert.Empty(t, s.cookie(), "logout expires the cookie")
	_, body = s.withCookie(loggedIn, "/api/cart")
	assert.JSONEq(t, `{"items": []}`, body, "the session is gone from the store")
	assert.Equal(t, me{User: nil, Visits: 1}, s.me(), "a fresh session after logout")

	// A tampered cookie gets a fresh session, not a 500.
	valid := s.cookie()
	require.NotEmpty(t, valid)
	tampered := []byte(valid)
	tampered[len(tampered)/2] ^= 0x01
	for name, v := range map[string]string{"tampered": string(tampered), "garbage": "not-a-cookie!", "empty-ish": "="} {
		t.Run(name, func(t *testing.T) {
			resp, body := s.withCookie(v, "/api/me")
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.JSONEq(t, `{"user": null, "visits": 1}`, body)
			var fresh string
			for _, c := range resp.Cookies() {
				if c.Name == cookieName {
					fresh = c.Value
				}
			}
			assert.NotEmpty(t, fresh, "a new session cookie")
			assert.NotEqual(t, v, fresh)
		})
	}

	// Browser forms redirect to their page; bad forms are refused.
	resp, _ = s.do(s.c, "POST", "/login", url.Values{"user": {"bob"}, "next": {"/products/7"}})
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/products/7", resp.Header.Get("Location"))
	resp, _ = s.do(s.c, "POST", "/login", url.Values{"user": {"mallory"}, "next": {"//evil.example/"}})
	assert.Equal(t, http.StatusOK, resp.StatusCode, "no open redirect")
	resp, _ = s.do(s.c, "POST", "/login", url.Values{"user": {"  "}})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = s.do(s.c, "POST", "/api/cart", url.Values{})
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = s.do(s.c, "GET", "/login", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// TestShopTLSAuth runs the shop against a memcached that wants TLS and
// ASCII auth, as the README describes.
func TestShopTLSAuth(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{TLS: true, Username: "shop", Password: "s3cret"})
	s := startShop(t, memclient.Config{
		Servers:  []memclient.Server{{Addr: srv.Addr}},
		TLS:      srv.TLSConfig,
		Username: "shop", Password: "s3cret",
	})
	var p Product
	resp := s.json("GET", "/api/products/3", nil, &p)
	assert.Equal(t, "miss", resp.Header.Get("X-Cache"))
	resp = s.json("GET", "/api/products/3", nil, &p)
	assert.Equal(t, "hit", resp.Header.Get("X-Cache"))
	var login map[string]string
	s.json("POST", "/login", url.Values{"user": {"carol"}}, &login)
	assert.Equal(t, me{User: ptr("carol"), Visits: 1}, s.me())
}

func TestParseFlags(t *testing.T) {
	env := map[string]string{"MEMCACHED_PASSWORD": "pw", "SHOP_SESSION_KEY": strings.Repeat("ab", 32)}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		name  string
		args  []string
		check func(t *testing.T, opts options)
		err   string
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, opts options) {
			assert.Equal(t, DefaultAddr, opts.Addr)
			assert.Empty(t, opts.AdminAddr)
			assert.Equal(t, "text", opts.LogFormat)
			cfg := opts.App
			assert.Empty(t, cfg.Memcached.Servers)
			assert.NotEmpty(t, cfg.DBPath)
			assert.Nil(t, cfg.Memcached.TLS)
			assert.Len(t, cfg.SessionKeys, 2)
		}},
		{name: "cluster", args: []string{"-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:9", "-memcached", "127.0.0.1:1:1,127.0.0.1:2:2,127.0.0.1:3:3", "-db", "x.db", "-distribution", "modula", "-log-format", "json"},
			check: func(t *testing.T, opts options) {
				assert.Equal(t, "127.0.0.1:0", opts.Addr)
				assert.Equal(t, "127.0.0.1:9", opts.AdminAddr)
				assert.Equal(t, "json", opts.LogFormat)
				cfg := opts.App
				assert.Equal(t, []memclient.Server{{Addr: "127.0.0.1:1", Weight: 1}, {Addr: "127.0.0.1:2", Weight: 2}, {Addr: "127.0.0.1:3", Weight: 3}}, cfg.Memcached.Servers)
				assert.Equal(t, "x.db", cfg.DBPath)
				assert.Equal(t, memclient.DistributionModula, cfg.Memcached.Distribution)
			}},
		{name: "tls and auth", args: []string{"-memcached", "127.0.0.1:1", "-memcached-tls", "-memcached-user", "shop", "-text-protocol"},
			check: func(t *testing.T, opts options) {
				cfg := opts.App
				require.NotNil(t, cfg.Memcached.TLS)
				assert.Equal(t, "shop", cfg.Memcached.Username)
				assert.Equal(t, "pw", cfg.Memcached.Password)
				assert.Equal(t, memclient.ProtocolText, cfg.Memcached.Protocol)
			}},
		{name: "bad server", args: []string{"-memcached", "127.0.0.1"}, err: "bad server address"},
		{name: "bad weight", args: []string{"-memcached", "127.0.0.1:1:0"}, err: "bad weight"},
		{name: "bad distribution", args: []string{"-distribution", "random"}, err: "want ketama or modula"},
		{name: "bad log format", args: []string{"-log-format", "xml"}, err: "want text or json"},
		{name: "missing CA file", args: []string{"-memcached-ca", "/nonexistent.pem"}, err: "no such file"},
		{name: "stray argument", args: []string{"extra"}, err: "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := parseFlags(tc.args, getenv, io.Discard)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			tc.check(t, opts)
		})
	}
	_, err := parseFlags(nil, func(k string) string {
		if k == "SHOP_SESSION_KEY" {
			return "zz"
		}
		return ""
	}, io.Discard)
	assert.ErrorContains(t, err, "SHOP_SESSION_KEY")

	// $MEMKIT_MEMCACHED is the default of -memcached, as the README says.
	env["MEMKIT_MEMCACHED"] = "127.0.0.1:7:1,127.0.0.1:8:2"
	opts, err := parseFlags(nil, getenv, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []memclient.Server{{Addr: "127.0.0.1:7", Weight: 1}, {Addr: "127.0.0.1:8", Weight: 2}}, opts.App.Memcached.Servers)
	opts, err = parseFlags([]string{"-memcached", "127.0.0.1:9:3"}, getenv, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []memclient.Server{{Addr: "127.0.0.1:9", Weight: 3}}, opts.App.Memcached.Servers, "the flag wins")
}

// TestFlagsFromEnvironment sets every flag through its environment
// variable alone, and checks that -help names each variable.
func TestFlagsFromEnvironment(t *testing.T) {
	env := map[string]string{
		"MEMKIT_ADDR":           "127.0.0.1:1",
		"MEMKIT_ADMIN_ADDR":     "127.0.0.1:2",
		"MEMKIT_MEMCACHED":      "127.0.0.1:3:2",
		"MEMKIT_DISTRIBUTION":   "modula",
		"MEMKIT_TEXT_PROTOCOL":  "true",
		"MEMKIT_MEMCACHED_TLS":  "1",
		"MEMKIT_MEMCACHED_CA":   "",
		"MEMKIT_MEMCACHED_USER": "shop",
		"MEMKIT_DB":             "env.db",
		"MEMKIT_SECURE_COOKIE":  "true",
		"MEMKIT_LOG_FORMAT":     "json",
		"MEMCACHED_PASSWORD":    "pw",
	}
	var help strings.Builder
	_, err := parseFlags([]string{"-help"}, func(string) string { return "" }, &help)
	require.ErrorIs(t, err, flag.ErrHelp)
	for _, name := range []string{"addr", "admin-addr", "memcached", "distribution", "text-protocol", "memcached-tls",
		"memcached-ca", "memcached-user", "db", "secure-cookie", "log-format"} {
		_, ok := env[envName(name)]
		assert.True(t, ok, "the test sets $%s", envName(name))
		assert.Regexp(t, `(?m)^  -`+name+`( |$)`, help.String())
		assert.Contains(t, help.String(), "($"+envName(name)+")", "-help names the variable of -%s", name)
	}
	assert.Len(t, regexp.MustCompile(`\(\$MEMKIT_[A-Z_]+\)`).FindAllString(help.String(), -1), len(env)-1,
		"a variable for every flag, and a test for every variable")
	assert.Contains(t, help.String(), "SHOP_SESSION_KEY")

	opts, err := parseFlags(nil, func(k string) string { return env[k] }, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:1", opts.Addr)
	assert.Equal(t, "127.0.0.1:2", opts.AdminAddr)
	assert.Equal(t, "json", opts.LogFormat)
	cfg := opts.App
	assert.Equal(t, []memclient.Server{{Addr: "127.0.0.1:3", Weight: 2}}, cfg.Memcached.Servers)
	assert.Equal(t, memclient.DistributionModula, cfg.Memcached.Distribution)
	assert.Equal(t, memclient.ProtocolText, cfg.Memcached.Protocol)
	assert.NotNil(t, cfg.Memcached.TLS)
	assert.Equal(t, "shop", cfg.Memcached.Username)
	assert.Equal(t, "env.db", cfg.DBPath)
	assert.True(t, cfg.SecureCookie)

	env["MEMKIT_MEMCACHED_CA"] = "/nonexistent.pem"
	_, err = parseFlags(nil, func(k string) string { return env[k] }, io.Discard)
	assert.ErrorContains(t, err, "no such file")
	env["MEMKIT_MEMCACHED_TLS"] = "maybe"
	_, err = parseFlags(nil, func(k string) string { return env[k] }, io.Discard)
	assert.ErrorContains(t, err, "$MEMKIT_MEMCACHED_TLS", "a bad value names its variable")
}

// TestShopServerDown: with one memcached dead the catalogue and products
// are still served (objcache falls back to the database) and /debug/cache
// says which server is gone.
func TestShopServerDown(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	s := startShop(t, memclient.Config{Servers: []memclient.Server{{Addr: srvs[0].Addr}, {Addr: srvs[1].Addr}}})
	srvs[1].Kill()
	for id := 1; id <= 20; id++ {
		var p Product
		s.json("GET", fmt.Sprintf("/api/products/%d", id), nil, &p)
		assert.Equal(t, int64(id), p.ID)
	}
	resp, _ := s.do(s.c, "GET", "/", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	var info debugInfo
	s.json("GET", "/debug/cache?format=json", nil, &info)
	require.Len(t, info.Servers, 2)
	assert.Equal(t, "up", info.Servers[0].State)
	assert.NotEqual(t, "up", info.Servers[1].State)
	assert.NotEmpty(t, info.Servers[1].LastError)
	assert.Positive(t, info.Cache.Errors)
	assert.Equal(t, "down", info.Servers[1].State)
	assert.False(t, info.Servers[1].Up)
	assert.NotNil(t, info.Servers[1].DownSince)
	resp, body := s.do(s.c, "GET", "/debug/cache", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, srvs[1].Addr)
}
