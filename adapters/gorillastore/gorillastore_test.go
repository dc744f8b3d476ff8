package gorillastore_test

import (
	"context"
	"encoding/gob"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/memkit/memkit/adapters/gorillastore"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type profile struct {
	Name string
	Age  int
}

func init() { gob.Register(profile{}) }

// TestGorillaSessionsAPI drives the store through gorilla/sessions' own
// API (registry, Session.Save, sessions.Save, flashes) over real memcached.
func TestGorillaSessionsAPI(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	client, err := memclient.New(srv.Addr)
	require.NoError(t, err)
	defer client.Close()
	store := gorillastore.New(session.NewMemcacheStore(client), []byte("gorilla-hash-key-0123456789abcde"), []byte("gorilla-blockkey"))
	store.Options.Secure = false // httptest serves plain HTTP

	var lastID string
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, "app")
		require.NoError(t, err)
		s.Values["user"] = profile{Name: "ann", Age: 41}
		s.Values[42] = "int key"
		s.AddFlash("hello")
		require.NoError(t, s.Save(r, w))
		lastID = s.ID
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, "app")
		if err != nil {
			fmt.Fprint(w, "error: ", err, " new=", s.IsNew)
			return
		}
		again, _ := sessions.GetRegistry(r).Get(store, "app")
		assert.Same(t, s, again, "the registry caches the session per request")
		flashes := s.Flashes()
		require.NoError(t, sessions.Save(r, w))
		fmt.Fprint(w, s.Values["user"], " ", s.Values[42], " ", flashes, " new=", s.IsNew)
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, "app")
		require.NoError(t, err)
		s.Options.MaxAge = -1
		require.NoError(t, s.Save(r, w))
	})
	ts := httptest.NewServer(mux)
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
		return string(b)
	}

	body("/set")
	require.NotEmpty(t, lastID)
	assert.Equal(t, "{ann 41} int key [hello] new=false", body("/get"))
	assert.Equal(t, "{ann 41} int key [] new=false", body("/get"), "the flash was consumed and saved")

	key := session.HashKey(gorillastore.DefaultKeyPrefix, lastID)
	it, err := client.Get(context.Background(), key)
	require.NoError(t, err, "stored under the hashed ID")
	assert.NotContains(t, key, lastID)
	assert.NotEmpty(t, it.Value)

	body("/logout")
	_, err = client.Get(context.Background(), key)
	assert.ErrorIs(t, err, memclient.ErrCacheMiss, "logout deletes the record")
	assert.Equal(t, "<nil> <nil> [] new=true", body("/get"))

	// A tampered cookie yields a new session and securecookie's error.
	req := httptest.NewRequest("GET", "/get", nil)
	req.AddCookie(&http.Cookie{Name: "app", Value: "tampered"})
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	assert.Contains(t, rec.Body.String(), "error: ")
	assert.Contains(t, rec.Body.String(), "new=true")
}

func TestGorillaMemcachedDown(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	client, err := memclient.New(srv.Addr)
	require.NoError(t, err)
	defer client.Close()
	store := gorillastore.New(session.NewMemcacheStore(client), []byte("gorilla-hash-key-0123456789abcde"))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	s, err := store.New(req, "app")
	require.NoError(t, err)
	s.Values["a"] = 1
	require.NoError(t, store.Save(req, rec, s))
	cookie := rec.Result().Cookies()[0]

	srv.Kill()
	req = httptest.NewRequest("GET", "/", nil)
	req.AddCookie(cookie)
	s, err = store.New(req, "app")
	assert.ErrorIs(t, err, session.ErrStore)
	assert.True(t, s.IsNew)
	assert.ErrorIs(t, store.Save(req, httptest.NewRecorder(), s), session.ErrStore)
}
