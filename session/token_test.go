package session_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tokenRequest starts a request carrying header: value.
func tokenRequest(mgr *session.Manager, header, value string) (*session.Session, *session.Commit, *httptest.ResponseRecorder) {
	req := request(nil)
	if value != "" {
		req.Header.Set(header, value)
	}
	rec := httptest.NewRecorder()
	r, cm := mgr.Begin(rec, req)
	return session.FromContext(r.Context()), cm, rec
}

// TestHeaderTokens: an API client logs in for a token and sends it back
// in the Authorization header; no cookie is ever set for it, and
// revocation reaches it as it reaches cookies.
func TestHeaderTokens(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		var hookErrs []error
		mgr := &session.Manager{Store: st, Keys: testKeys, Token: session.TokenConfig{Enabled: true},
			ErrorFunc: func(w http.ResponseWriter, r *http.Request, err error) { hookErrs = append(hookErrs, err) }}
		ctx := context.Background()

		s, cm, rec := tokenRequest(mgr, "", "")
		require.NoError(t, s.Login(ctx, "ann"))
		require.NoError(t, s.Set("n", 1))
		tok, err := s.Token()
		require.NoError(t, err)
		require.NoError(t, cm.Save(ctx))
		assert.Empty(t, rec.Result().Cookies(), "a session whose token was issued sets no cookie")

		for _, auth := range []string{"Bearer " + tok, "bearer  " + tok} {
			s, cm, rec = tokenRequest(mgr, "Authorization", auth)
			assert.Equal(t, "ann", s.User(ctx))
			require.NoError(t, session.Update(ctx, s, "n", func(n int, _ bool) int { return n + 1 }))
			require.NoError(t, cm.Save(ctx))
			assert.Empty(t, rec.Result().Cookies(), "no cookie for a token request")
		}
		s, _, _ = tokenRequest(mgr, "Authorization", "Bearer "+tok)
		n, _ := session.Get[int](ctx, s, "n")
		assert.Equal(t, 3, n, "lazy load and merged saves work the same")

		// The token is the cookie's value: it works as a cookie too.
		assert.Equal(t, "ann", load(mgr, &http.Cookie{Name: session.DefaultCookieName, Value: tok}).User(ctx))

		// A bad token reads as a new session; writing to it without
		// issuing a token is refused, not stored where nobody finds it.
		for _, bad := range []string{"Bearer garbage", "Bearer " + tok[:len(tok)-4]} {
			hookErrs = nil
			s, cm, rec = tokenRequest(mgr, "Authorization", bad)
			assert.Equal(t, "", s.User(ctx))
			require.NoError(t, s.Set("x", 1))
			err = cm.Save(ctx)
			assert.ErrorIs(t, err, session.ErrTokenNotIssued)
			assert.False(t, session.Fatal(err))
			assert.Empty(t, rec.Result().Cookies())
			require.Len(t, hookErrs, 1)
		}

		// Other schemes are not tokens: the request is a cookie request.
		s, _, _ = tokenRequest(mgr, "Authorization", "Basic "+tok)
		assert.Equal(t, "", s.User(ctx))

		require.NoError(t, mgr.RevokeUser(ctx, "ann"))
		s, _, _ = tokenRequest(mgr, "Authorization", "Bearer "+tok)
		assert.Equal(t, "", s.User(ctx), "a revoked token reads as an empty session")
		assert.Empty(t, s.Keys(ctx))
	})
}

func TestTokenHeaderConfig(t *testing.T) {
	leakcheck.Check(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, header, scheme, send, prefix string
	}{
		{"custom header, no scheme", "X-Session", "", "X-Session", ""},
		{"custom header and scheme", "X-Session", "Token", "X-Session", "Token "},
		{"authorization, custom scheme", "", "Session", "Authorization", "session "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mgr := &session.Manager{Keys: testKeys, Token: session.TokenConfig{Enabled: true, Header: tc.header, Scheme: tc.scheme}}
			defer mgr.Close()
			s, cm, _ := tokenRequest(mgr, "", "")
			require.NoError(t, s.Set("k", "v"))
			tok, err := s.Token()
			require.NoError(t, err)
			require.NoError(t, cm.Save(ctx))
			s, _, rec := tokenRequest(mgr, tc.send, tc.prefix+tok)
			assert.True(t, s.Has(ctx, "k"))
			assert.Empty(t, rec.Result().Cookies())
		})
	}

	// Tokens are off by default: the header is ignored, and no token is
	// issued.
	mgr := &session.Manager{Keys: testKeys}
	defer mgr.Close()
	s, cm, _ := tokenRequest(mgr, "", "")
	require.NoError(t, s.Set("k", "v"))
	_, err := s.Token()
	assert.ErrorIs(t, err, session.ErrTokensDisabled)
	require.NoError(t, cm.Save(ctx))
}

// TestRememberMe: the Manager's default and a per-session choice of
// cookie persistence and lifetime.
func TestRememberMe(t *testing.T) {
	leakcheck.Check(t)
	clock := newFakeClock()
	st := &recordingTTLStore{Store: session.NewMemoryStore()}
	session.SetStoreClock(st.Store.(*session.MemoryStore), clock.Now)
	mgr := &session.Manager{Store: st, Keys: testKeys, Lifetime: 2 * time.Hour, Cookie: session.CookieConfig{BrowserSession: true}}
	session.SetClock(mgr, clock.Now)
	ctx := context.Background()

	s, cm, rec := begin(mgr, nil)
	require.NoError(t, s.Login(ctx, "ann"))
	require.NoError(t, cm.Save(ctx))
	plain := rec.Result().Cookies()[0]
	assert.Zero(t, plain.MaxAge, "by default a browser-session cookie")
	assert.True(t, plain.Expires.IsZero())

	s, cm, rec = begin(mgr, nil)
	require.NoError(t, s.Login(ctx, "ann"))
	require.NoError(t, s.SetLifetime(30*24*time.Hour))
	require.NoError(t, s.SetPersistent(true))
	require.NoError(t, cm.Save(ctx))
	remembered := rec.Result().Cookies()[0]
	assert.Equal(t, 30*24*3600, remembered.MaxAge, "remember me persists for 30 days")
	assert.Equal(t, 30*24*time.Hour, st.ttls[len(st.ttls)-1], "and so does the record")

	clock.Advance(3 * time.Hour)
	assert.Equal(t, "", load(mgr, plain).User(ctx), "the plain login ended with the Manager's Lifetime")
	assert.Equal(t, "ann", load(mgr, remembered).User(ctx))
	clock.Advance(30 * 24 * time.Hour)
	assert.Equal(t, "", load(mgr, remembered).User(ctx), "30 days later it ends too")

	// Changing an existing session's persistence re-sends its cookie.
	ck := newSession(t, mgr)
	s, cm, rec = begin(mgr, ck)
	require.NoError(t, s.SetPersistent(true))
	require.NoError(t, cm.Save(ctx))
	require.Len(t, rec.Result().Cookies(), 1)
	assert.Positive(t, rec.Result().Cookies()[0].MaxAge)

}

// TestLateChangesRefused: once the response has started, every change
// that needs a cookie is refused with ErrHeadersSent, and the hook hears
// of it; changes to a session whose cookie is out still save.
func TestLateChangesRefused(t *testing.T) {
	leakcheck.Check(t)
	var hookErrs []error
	mgr := &session.Manager{Keys: testKeys, ErrorFunc: func(w http.ResponseWriter, r *http.Request, err error) {
		hookErrs = append(hookErrs, err)
	}}
	defer mgr.Close()
	ctx := context.Background()
	ck := newSession(t, mgr)
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		_, _ = w.Write([]byte("started"))
		errs := []error{
			s.Set("a", 1), s.Flash("", "f"), session.Update(ctx, s, "n", func(n int, _ bool) int { return n + 1 }),
			s.SetLifetime(time.Hour), s.SetPersistent(true), s.RenewID(ctx), s.Login(ctx, "ann"),
		}
		for _, err := range errs {
			_, _ = w.Write([]byte(" " + errName(err)))
		}
	}))
	for _, tc := range []struct {
		name   string
		cookie *http.Cookie
		want   string
	}{
		{"new session", nil, "started late late late late late late late"},
		{"existing session", ck, "started ok ok ok late late late late"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hookErrs = nil
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, request(tc.cookie))
			assert.Equal(t, tc.want, rec.Body.String())
			require.NotEmpty(t, hookErrs, "the hook hears of it")
			assert.ErrorIs(t, hookErrs[0], session.ErrHeadersSent)
			assert.Empty(t, rec.Result().Cookies())
		})
	}
	s := load(mgr, ck)
	n, _ := session.Get[int](ctx, s, "a")
	assert.Equal(t, 1, n, "the existing session saved its late change")
}

func errName(err error) string {
	switch {
	case err == nil:
		return "ok"
	case strings.Contains(err.Error(), session.ErrHeadersSent.Error()):
		return "late"
	}
	return err.Error()
}

// TestNoKeys: a Manager without Keys fails every session with ErrNoKeys,
// which says what to do, unless DevRandomKeys; handlers that never touch
// their session are not affected.
func TestNoKeys(t *testing.T) {
	leakcheck.Check(t)
	mgr := &session.Manager{}
	defer mgr.Close()
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/untouched" {
			return
		}
		err := session.FromContext(r.Context()).Set("k", 1)
		assert.ErrorIs(t, err, session.ErrNoKeys)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Empty(t, rec.Result().Cookies())
	assert.True(t, session.Fatal(session.ErrNoKeys))
	assert.Contains(t, session.ErrNoKeys.Error(), "set Keys")
	assert.Contains(t, session.ErrNoKeys.Error(), "DevRandomKeys")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/untouched", nil))
	assert.Equal(t, http.StatusOK, rec.Code)

	dev := &session.Manager{DevRandomKeys: true}
	defer dev.Close()
	s, cm, rec := begin(dev, nil)
	require.NoError(t, s.Set("k", 1))
	require.NoError(t, cm.Save(context.Background()))
	assert.Len(t, rec.Result().Cookies(), 1)
}
