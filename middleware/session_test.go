package middleware_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var sessKeys = [][]byte{[]byte("middleware-test-hash-key-32bytes"), nil}

// newMemcacheManager returns a Manager on a fresh memcached, and its store.
func newMemcacheManager(t testing.TB) (*session.Manager, *session.MemcacheStore, *memcachetest.Server) {
	t.Helper()
	srv := memcachetest.Start(t, memcachetest.Options{})
	c, err := memclient.NewFromConfig(memclient.Config{Servers: []memclient.Server{{Addr: srv.Addr}}, Timeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	st := session.NewMemcacheStore(c)
	return &session.Manager{Store: st, Keys: sessKeys, Cookie: session.CookieConfig{Insecure: true}}, st, srv
}

func get(t *testing.T, c *http.Client, url string, cookies ...*http.Cookie) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func sessionCookieOf(resp *http.Response) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == session.DefaultCookieName {
			return c
		}
	}
	return nil
}

func TestSessionWithServeMux(t *testing.T) {
	leakcheck.Check(t)
	mgr, _, _ := newMemcacheManager(t)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items/{name}", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		require.NoError(t, s.Set("item:"+r.PathValue("name"), true))
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /items", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(session.FromContext(r.Context()).Keys(r.Context()), " "))
	})
	srv := httptest.NewServer(middleware.Session(mgr)(mux))
	defer srv.Close()

	c := srv.Client()
	resp, err := c.Post(srv.URL+"/items/a", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	ck := sessionCookieOf(resp)
	require.NotNil(t, ck)
	req, _ := http.NewRequest("POST", srv.URL+"/items/b", nil)
	req.AddCookie(ck)
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Nil(t, sessionCookieOf(resp), "an existing session keeps its cookie")
	assert.Empty(t, resp.Header.Get("Vary"), "Vary only when a cookie is set")
	assert.Equal(t, "item:a item:b", readBody(t, get(t, c, srv.URL+"/items", ck)))
	assert.Equal(t, http.StatusNotFound, get(t, c, srv.URL+"/nowhere", ck).StatusCode)
}

func TestCommitBeforeFirstByte(t *testing.T) {
	leakcheck.Check(t)
	mgr, _, _ := newMemcacheManager(t)
	cases := []struct {
		name  string
		write func(w http.ResponseWriter)
	}{
		{"Write", func(w http.ResponseWriter) { io.WriteString(w, "body") }},
		{"WriteHeader", func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) }},
		{"return without writing", func(http.ResponseWriter) {}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				require.NoError(t, session.FromContext(r.Context()).Set("k", "v"))
				tc.write(w)
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			require.NotEmpty(t, rec.Result().Cookies(), "the cookie went out with the headers")
			assert.Equal(t, "Cookie", rec.Header().Get("Vary"))
			assert.Equal(t, `no-cache="Set-Cookie"`, rec.Header().Get("Cache-Control"))
		})
	}
}

func TestCacheHeadersMerge(t *testing.T) {
	leakcheck.Check(t)
	mgr := &session.Manager{Keys: sessKeys}
	defer mgr.Close()
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		require.NoError(t, session.FromContext(r.Context()).Set("k", 1))
		io.WriteString(w, "x")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	assert.Equal(t, `private, max-age=60, no-cache="Set-Cookie"`, rec.Header().Get("Cache-Control"))
	assert.Equal(t, []string{"Accept-Encoding", "Cookie"}, rec.Header().Values("Vary"))
}

// TestFlushThroughResponseController streams a response: Flush through
// http.ResponseController commits the session first, so the cookie is in
// the headers the client gets before the body ends.
func TestFlushThroughResponseController(t *testing.T) {
	leakcheck.Check(t)
	mgr, st, _ := newMemcacheManager(t)
	release := make(chan struct{})
	ids := make(chan string, 1)
	srv := httptest.NewServer(middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		require.NoError(t, s.Set("k", "v"))
		ids <- s.ID()
		io.WriteString(w, "first\n")
		assert.NoError(t, http.NewResponseController(w).Flush())
		select {
		case <-release:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "second\n")
	})))
	defer srv.Close()

	resp := get(t, srv.Client(), srv.URL)
	// The client has the headers while the handler still waits.
	require.NotNil(t, sessionCookieOf(resp))
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "first\n", line)
	_, found, err := st.Load(context.Background(), session.HashKey(session.DefaultKeyPrefix, <-ids), 0)
	require.NoError(t, err)
	assert.True(t, found, "the session was saved before the first byte")
	close(release)
	resp.Body.Close()
}

func TestHijackThroughResponseController(t *testing.T) {
	leakcheck.Check(t)
	mgr, st, _ := newMemcacheManager(t)
	ids := make(chan string, 1)
	srv := httptest.NewServer(middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		require.NoError(t, s.Set("k", "v"))
		ids <- s.ID()
		conn, brw, err := http.NewResponseController(w).Hijack()
		if !assert.NoError(t, err) {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		brw.Flush()
	})))
	defer srv.Close()
	resp := get(t, srv.Client(), srv.URL)
	assert.Equal(t, "hijacked", readBody(t, resp))
	_, found, err := st.Load(context.Background(), session.HashKey(session.DefaultKeyPrefix, <-ids), 0)
	require.NoError(t, err)
	assert.True(t, found, "Hijack committed the session")
}

func TestUnwrapReachesTheServerWriter(t *testing.T) {
	leakcheck.Check(t)
	mgr := &session.Manager{Keys: sessKeys}
	defer mgr.Close()
	srv := httptest.NewServer(middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		assert.NoError(t, rc.SetWriteDeadline(time.Now().Add(5*time.Second)), "reached through Unwrap")
		assert.NoError(t, rc.EnableFullDuplex())
		_, isFlusher := w.(http.Flusher)
		assert.True(t, isFlusher)
		io.WriteString(w, "ok")
	})))
	defer srv.Close()
	assert.Equal(t, "ok", readBody(t, get(t, srv.Client(), srv.URL)))
}

func TestStoreDownErrorHook(t *testing.T) {
	leakcheck.Check(t)
	mgr, _, mc := newMemcacheManager(t)
	var hookErrs []error
	mux := http.NewServeMux()
	mux.HandleFunc("/touch", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		v, _ := s.Get(r.Context(), "k")
		w.Header().Set("X-Handler", "ran")
		fmt.Fprint(w, "value=", v)
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, session.FromContext(r.Context()).Set("k", "w"))
		io.WriteString(w, "written")
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "plain")
	})
	srv := httptest.NewServer(middleware.Session(mgr)(mux))
	defer srv.Close()
	c := srv.Client()
	resp := get(t, c, srv.URL+"/write")
	ck := sessionCookieOf(resp)
	require.NotNil(t, ck)
	assert.Equal(t, "written", readBody(t, resp))

	mc.Kill()
	cases := []struct {
		path string
		code int
		body string
	}{
		{"/touch", http.StatusServiceUnavailable, "503 session store unavailable\n"},
		{"/write", http.StatusServiceUnavailable, "503 session store unavailable\n"},
		{"/plain", http.StatusOK, "plain"},
	}
	for _, tc := range cases {
		t.Run(tc.path, func(t *testing.T) {
			done := make(chan struct{})
			var resp *http.Response
			go func() {
				defer close(done)
				resp = get(t, c, srv.URL+tc.path, ck)
			}()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("request hung with memcached down")
			}
			assert.Equal(t, tc.code, resp.StatusCode)
			assert.Equal(t, tc.body, readBody(t, resp), "the handler's body is replaced")
		})
	}

	// A hook that writes nothing lets the handler answer.
	mgr2 := &session.Manager{Store: mgr.Store, Keys: sessKeys, ErrorFunc: func(w http.ResponseWriter, r *http.Request, err error) {
		hookErrs = append(hookErrs, err)
	}}
	srv2 := httptest.NewServer(middleware.Session(mgr2)(mux))
	defer srv2.Close()
	resp = get(t, srv2.Client(), srv2.URL+"/touch", ck)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "ran", resp.Header.Get("X-Handler"))
	assert.Equal(t, "value=<nil>", readBody(t, resp))
	require.Len(t, hookErrs, 1)
	assert.ErrorIs(t, hookErrs[0], session.ErrStore)
}

// BenchmarkSessionReadWrite is one request that reads a value and writes
// another, on an existing session in memcached: load (get-and-touch) and
// compare-and-swap save, plus cookie checks.
func BenchmarkSessionReadWrite(b *testing.B) {
	mgr, _, _ := newMemcacheManager(b)
	mgr.IdleTimeout = time.Hour
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, _ := session.Get[int](r.Context(), s, "n")
		_ = s.Set("n", n+1)
		io.WriteString(w, "ok")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	ck := rec.Result().Cookies()[0]
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(ck)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// BenchmarkSessionRead is one request that only reads its session: a
// single get-and-touch round trip, no write.
func BenchmarkSessionRead(b *testing.B) {
	mgr, _, _ := newMemcacheManager(b)
	mgr.IdleTimeout = time.Hour
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := session.Get[int](r.Context(), session.FromContext(r.Context()), "n")
		fmt.Fprint(w, n)
	}))
	setter := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = session.FromContext(r.Context()).Set("n", 1)
	}))
	rec := httptest.NewRecorder()
	setter.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(rec.Result().Cookies()[0])
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// BenchmarkSessionUntouched is a request with a session cookie whose
// handler never touches the session: no store call.
func BenchmarkSessionUntouched(b *testing.B) {
	mgr, _, _ := newMemcacheManager(b)
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	setter := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = session.FromContext(r.Context()).Set("n", 1)
	}))
	rec := httptest.NewRecorder()
	setter.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(rec.Result().Cookies()[0])
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// TestStoreHangs: a memcached that stops answering (SIGSTOP) costs at
// most the client's timeout, then the error hook answers 503.
func TestStoreHangs(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	c, err := memclient.NewFromConfig(memclient.Config{Servers: []memclient.Server{{Addr: srv.Addr}}, Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	mgr := &session.Manager{Store: session.NewMemcacheStore(c), Keys: sessKeys}
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, _ := session.Get[int](r.Context(), s, "n")
		_ = s.Set("n", n+1)
		fmt.Fprint(w, n+1)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	require.Equal(t, "1", rec.Body.String())
	ck := rec.Result().Cookies()[0]

	srv.Freeze()
	defer srv.Resume()
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(ck)
		h.ServeHTTP(rec, req)
		done <- rec
	}()
	select {
	case rec = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("the request hung on a frozen memcached")
	}
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}

// TestClientGoneStillSaves: a client that hangs up (its request context
// cancelled) does not undo the session write of a handler that ran.
func TestClientGoneStillSaves(t *testing.T) {
	leakcheck.Check(t)
	mgr, _, _ := newMemcacheManager(t)
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, session.FromContext(r.Context()).Set("order", r.FormValue("id")))
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/?id=1", nil))
	ck := rec.Result().Cookies()[0]

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("GET", "/?id=2", nil).WithContext(ctx)
	req.AddCookie(ck)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, 200, rec.Code)

	read := httptest.NewRequest("GET", "/", nil)
	read.AddCookie(ck)
	read, _ = mgr.Begin(httptest.NewRecorder(), read)
	v, _ := session.Get[string](context.Background(), session.FromContext(read.Context()), "order")
	assert.Equal(t, "2", v)
}
