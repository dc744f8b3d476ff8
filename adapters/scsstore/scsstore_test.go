package scsstore_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/memkit/memkit/adapters/scsstore"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSCSAPI drives the store through scs's own SessionManager and
// LoadAndSave middleware over real memcached.
func TestSCSAPI(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	client, err := memclient.New(srv.Addr)
	require.NoError(t, err)
	defer client.Close()
	store := scsstore.New(session.NewMemcacheStore(client))

	sm := scs.New()
	sm.Store = store
	sm.Lifetime = time.Hour
	var tokens []string
	mux := http.NewServeMux()
	mux.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "msg", r.FormValue("m"))
		sm.Put(r.Context(), "n", 7)
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sm.GetString(r.Context(), "msg"))
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, sm.RenewToken(r.Context()))
		sm.Put(r.Context(), "user", "ann")
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, sm.Destroy(r.Context()))
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		sm.Put(r.Context(), "touch", true)
		tok, _, err := sm.Commit(r.Context())
		require.NoError(t, err)
		tokens = append(tokens, tok)
	})
	ts := httptest.NewServer(sm.LoadAndSave(mux))
	defer ts.Close()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	body := func(path string) string {
		resp, err := c.Get(ts.URL + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode, string(b))
		return string(b)
	}

	body("/put?m=hello")
	assert.Equal(t, "hello", body("/get"))
	body("/token")
	require.Len(t, tokens, 1)
	key := session.HashKey(scsstore.DefaultKeyPrefix, tokens[0])
	assert.NotContains(t, key, tokens[0])
	_, err = client.Get(context.Background(), key)
	require.NoError(t, err, "stored in memcached under the hashed token")

	body("/login")
	assert.Equal(t, "hello", body("/get"), "data survives RenewToken")
	_, err = client.Get(context.Background(), key)
	assert.ErrorIs(t, err, memclient.ErrCacheMiss, "the old token's data is gone")

	body("/logout")
	assert.Equal(t, "", body("/get"))

	// The store itself: expiry in the past deletes, Find of unknown tokens.
	ctx := context.Background()
	require.NoError(t, store.CommitCtx(ctx, "tok", []byte("data"), time.Now().Add(time.Minute)))
	b, found, err := store.FindCtx(ctx, "tok")
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, "data", string(b))
	require.NoError(t, store.Commit("tok", []byte("data"), time.Now().Add(-time.Second)))
	_, found, err = store.Find("tok")
	require.NoError(t, err)
	assert.False(t, found)
	require.NoError(t, store.Delete("never-existed"))

	srv.Kill()
	_, _, err = store.Find("tok")
	assert.ErrorIs(t, err, session.ErrStore)
}

// TestIterateNotSupported: scs's Iterate gets a clear error from this
// store instead of scs's panic for a store that cannot iterate.
func TestIterateNotSupported(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	client, err := memclient.New(srv.Addr)
	require.NoError(t, err)
	defer client.Close()
	sm := scs.New()
	sm.Store = scsstore.New(session.NewMemcacheStore(client))
	called := false
	require.NotPanics(t, func() {
		err = sm.Iterate(context.Background(), func(context.Context) error { called = true; return nil })
	})
	assert.ErrorIs(t, err, scsstore.ErrNotIterable)
	assert.Contains(t, err.Error(), "UserSessions")
	assert.False(t, called)
}
