package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/gorilla/sessions"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newTestMemcache(t *testing.T) *memcache.Client {
	t.Helper()
	s := memcachetest.Start(t, memcachetest.Options{MemoryMB: 16})
	c := newGomemcache([]string{s.Addr}, 2)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTTLSeconds(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    time.Duration
		want int32
	}{
		{"expired", -time.Second, -1},
		{"under a second", 500 * time.Millisecond, -1},
		{"an hour", time.Hour, 3600},
		{"thirty days", 30 * 24 * time.Hour, 30 * 24 * 3600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ttlSeconds(tc.d))
		})
	}
	abs := ttlSeconds(31 * 24 * time.Hour)
	assert.InDelta(t, time.Now().Add(31*24*time.Hour).Unix(), int64(abs), 5, "beyond 30 days: absolute Unix time")
}

func TestSCSStore(t *testing.T) {
	st := &scsStore{client: newTestMemcache(t), prefix: "scs:"}
	_, found, err := st.Find("tok")
	require.NoError(t, err)
	assert.False(t, found)
	_, found, err = st.Find("bad token with spaces")
	require.NoError(t, err, "a malformed token is not found, not an error")
	assert.False(t, found)

	require.NoError(t, st.Commit("tok", []byte("data"), time.Now().Add(time.Hour)))
	b, found, err := st.Find("tok")
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, []byte("data"), b)

	require.NoError(t, st.Commit("tok", []byte("new"), time.Now().Add(time.Hour)))
	b, _, _ = st.Find("tok")
	assert.Equal(t, []byte("new"), b)

	require.NoError(t, st.Delete("tok"))
	_, found, err = st.Find("tok")
	require.NoError(t, err)
	assert.False(t, found)
	require.NoError(t, st.Delete("tok"), "deleting a missing token is a no-op")

	require.NoError(t, st.Commit("old", []byte("x"), time.Now().Add(-time.Second)))
	_, found, _ = st.Find("old")
	assert.False(t, found, "an already expired session is not stored")
}

func TestGorillaStore(t *testing.T) {
	mc := newTestMemcache(t)
	st := newGorillaStore(mc, "g:", benchHashKey, nil)

	// First request: a new session, saved.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	s, err := st.Get(r, "sess")
	require.NoError(t, err)
	assert.True(t, s.IsNew)
	s.Values["n"] = 41
	w := httptest.NewRecorder()
	require.NoError(t, s.Save(r, w))
	cookies := w.Result().Cookies()
	require.Len(t, cookies, 1)
	require.NotEmpty(t, s.ID)
	assert.NotContains(t, cookies[0].Value, s.ID, "the cookie is signed, not the bare ID")
	it, err := mc.Get("g:" + s.ID)
	require.NoError(t, err, "values live in memcached")
	assert.NotEmpty(t, it.Value)

	// Second request with the cookie: the same session and values.
	r2 := httptest.NewRequest(http.MethodGet, "/", nil)
	r2.AddCookie(cookies[0])
	s2, err := st.Get(r2, "sess")
	require.NoError(t, err)
	assert.False(t, s2.IsNew)
	assert.Equal(t, s.ID, s2.ID)
	assert.Equal(t, 41, s2.Values["n"])
	again, err := st.Get(r2, "sess")
	require.NoError(t, err)
	assert.Same(t, s2, again, "cached in the request's registry")

	// A tampered cookie gives a new session.
	r3 := httptest.NewRequest(http.MethodGet, "/", nil)
	r3.AddCookie(&http.Cookie{Name: "sess", Value: cookies[0].Value + "x"})
	s3, err := st.Get(r3, "sess")
	require.NoError(t, err)
	assert.True(t, s3.IsNew)
	assert.Empty(t, s3.Values)

	// MaxAge < 0 deletes the record and expires the cookie.
	s2.Options.MaxAge = -1
	w4 := httptest.NewRecorder()
	require.NoError(t, sessions.Save(r2, w4))
	_, err = mc.Get("g:" + s.ID)
	assert.ErrorIs(t, err, memcache.ErrCacheMiss)
	require.Len(t, w4.Result().Cookies(), 1)
	assert.Negative(t, w4.Result().Cookies()[0].MaxAge)
}
