package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// req sends a request with browser c (nil: no cookies), extra headers and
// an optional form, and returns the response with its body read.
func (s *shop) req(c *http.Client, method, path string, form url.Values, header map[string]string) (*http.Response, string) {
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
	for k, v := range header {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	resp, err := c.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp, string(b)
}

type sessionsJSON struct {
	Sessions []sessionJSON `json:"sessions"`
}

// TestAccountRoutes walks the account routes exactly as the shop's doc
// lists them: remember me, tokens, the session list and the three ways to
// revoke, over memcached and in the in-memory mode.
func TestAccountRoutes(t *testing.T) {
	for _, mode := range []string{"memcached", "in-memory"} {
		t.Run(mode, func(t *testing.T) {
			leakcheck.Check(t)
			var mc memclient.Config
			if mode == "memcached" {
				srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
				mc.Servers = []memclient.Server{{Addr: srvs[0].Addr}, {Addr: srvs[1].Addr}}
			}
			walkAccount(t, startShop(t, mc))
		})
	}
}

func walkAccount(t *testing.T, s *shop) {
	laptop, phone := newBrowser(t), newBrowser(t)
	ua := func(name string) map[string]string { return map[string]string{"User-Agent": name} }

	// POST /login: a browser-session cookie, persistent only with remember=1.
	resp, _ := s.req(laptop, "POST", "/login", url.Values{"user": {"ann"}}, ua("laptop"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := resp.Header.Get("Set-Cookie")
	assert.NotContains(t, sc, "Max-Age")
	assert.NotContains(t, sc, "Expires")
	resp, _ = s.req(phone, "POST", "/login", url.Values{"user": {"ann"}, "remember": {"1"}}, ua("phone"))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Set-Cookie"), "Max-Age=2592000", "remember me: 30 days")

	// POST /api/login: a token, and no cookie; the token works on /api/me
	// and /api/cart without setting one.
	resp, body := s.req(nil, "POST", "/api/login", url.Values{"user": {"ann"}}, ua("curl"))
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Empty(t, resp.Header.Values("Set-Cookie"))
	var tok struct{ Token string }
	require.NoError(t, json.Unmarshal([]byte(body), &tok))
	require.NotEmpty(t, tok.Token)
	bearer := map[string]string{"Authorization": "Bearer " + tok.Token, "User-Agent": "curl"}
	resp, body = s.req(nil, "GET", "/api/me", nil, bearer)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, `{"user": "ann", "visits": 1}`, body)
	assert.Empty(t, resp.Header.Values("Set-Cookie"), "no cookie for a bearer request")
	resp, _ = s.req(nil, "POST", "/api/cart", url.Values{"item": {"pen"}}, bearer)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, resp.Header.Values("Set-Cookie"))
	resp, body = s.req(nil, "GET", "/api/cart", nil, bearer)
	assert.JSONEq(t, `{"items": ["pen"]}`, body)
	assert.Empty(t, resp.Header.Values("Set-Cookie"))

	// GET /api/sessions: newest first, the current one marked.
	resp, body = s.req(laptop, "GET", "/api/sessions", nil, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	var list sessionsJSON
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list.Sessions, 3)
	var raw map[string][]map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &raw))
	for _, field := range []string{"id", "current", "user_agent", "ip", "created", "last_seen"} {
		assert.Contains(t, raw["sessions"][0], field)
	}
	byUA := map[string]sessionJSON{}
	for i, ss := range list.Sessions {
		byUA[ss.UserAgent] = ss
		created, err := time.Parse(time.RFC3339, ss.Created)
		require.NoError(t, err)
		assert.True(t, strings.HasSuffix(ss.Created, "Z") && strings.HasSuffix(ss.LastSeen, "Z"), "UTC")
		_, err = time.Parse(time.RFC3339, ss.LastSeen)
		require.NoError(t, err)
		assert.Equal(t, "127.0.0.1", ss.IP)
		if i > 0 {
			prev, _ := time.Parse(time.RFC3339, list.Sessions[i-1].Created)
			assert.False(t, created.After(prev), "newest first")
		}
		for _, c := range []*http.Client{laptop, phone} {
			for _, ck := range c.Jar.Cookies(s.url) {
				assert.NotContains(t, ck.Value, ss.ID, "the id is not the cookie")
			}
		}
		assert.NotContains(t, tok.Token, ss.ID)
	}
	assert.True(t, byUA["laptop"].Current)
	assert.False(t, byUA["phone"].Current)
	assert.False(t, byUA["curl"].Current)

	// Not signed in: 401 with a JSON error on every account API route.
	for _, rt := range []struct{ method, path string }{
		{"GET", "/api/sessions"}, {"POST", "/api/sessions/revoke"}, {"POST", "/api/sessions/revoke-others"}, {"POST", "/api/logout-everywhere"},
	} {
		resp, body = s.req(nil, rt.method, rt.path, url.Values{"id": {byUA["phone"].ID}}, nil)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, rt.path)
		assert.JSONEq(t, `{"error": "not signed in"}`, body, rt.path)
	}

	// POST /api/sessions/revoke: 404 for an unknown id; the token's
	// session is signed out.
	resp, body = s.req(laptop, "POST", "/api/sessions/revoke", url.Values{"id": {"nope"}}, nil)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.JSONEq(t, `{"error": "no such session"}`, body)
	resp, _ = s.req(laptop, "POST", "/api/sessions/revoke", url.Values{"id": {byUA["curl"].ID}}, nil)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	_, body = s.req(nil, "GET", "/api/cart", nil, bearer)
	assert.JSONEq(t, `{"items": []}`, body, "the revoked token's session is empty")

	// POST /api/sessions/revoke-others from the laptop: the phone is out.
	resp, _ = s.req(laptop, "POST", "/api/sessions/revoke-others", nil, nil)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp, _ = s.req(phone, "GET", "/api/sessions", nil, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the phone was signed out")
	_, body = s.req(laptop, "GET", "/api/sessions", nil, nil)
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list.Sessions, 1)
	assert.True(t, list.Sessions[0].Current)

	// GET /account: the page, with a button per other session.
	s.req(phone, "POST", "/login", url.Values{"user": {"ann"}}, ua("phone"))
	resp, body = s.req(laptop, "GET", "/account", nil, nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, "Signed in as <strong>ann</strong>")
	assert.Contains(t, body, "this browser")
	assert.Equal(t, 1, strings.Count(body, `action="/api/sessions/revoke"`), "a button for the phone")
	assert.Contains(t, body, "Sign out everywhere else")
	// The page's buttons are forms that come back to it.
	resp, _ = s.req(laptop, "POST", "/api/sessions/revoke-others", url.Values{"next": {"/account"}}, nil)
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Equal(t, "/account", resp.Header.Get("Location"))

	// Unsafe requests from another site are refused before they act.
	for name, h := range map[string]map[string]string{
		"Sec-Fetch-Site": {"Sec-Fetch-Site": "cross-site"},
		"Origin":         {"Origin": "https://evil.example"},
	} {
		resp, _ = s.req(laptop, "POST", "/api/logout-everywhere", nil, h)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, name)
		resp, _ = s.req(nil, "POST", "/login", url.Values{"user": {"mallory"}}, h)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, name)
	}
	resp, _ = s.req(laptop, "GET", "/api/sessions", nil, map[string]string{"Sec-Fetch-Site": "cross-site"})
	assert.Equal(t, http.StatusOK, resp.StatusCode, "safe requests pass, and the laptop is still signed in")
	resp, _ = s.req(laptop, "POST", "/api/cart", url.Values{"item": {"cup"}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	assert.Equal(t, http.StatusOK, resp.StatusCode, "same-origin forms pass")

	// POST /api/logout-everywhere: everyone, this browser too.
	resp, _ = s.req(laptop, "POST", "/api/logout-everywhere", nil, nil)
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	resp, _ = s.req(laptop, "GET", "/api/sessions", nil, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = s.req(phone, "GET", "/api/sessions", nil, nil)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	_, body = s.req(laptop, "GET", "/account", nil, nil)
	assert.Contains(t, body, "You are not signed in.")
	assert.Contains(t, body, `name="remember"`)
}
