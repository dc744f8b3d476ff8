package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

// get sends GET url with a plain client and returns the status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func readyzOf(t *testing.T, url string) (int, readiness) {
	t.Helper()
	code, body := get(t, url+"/readyz")
	var r readiness
	require.NoError(t, json.Unmarshal([]byte(body), &r), body)
	return code, r
}

// TestHealthAndReady: /healthz is 200 while the process serves; /readyz
// is 200 while any memcached answers a ping, 503 when none does, and
// names each server's state either way.
func TestHealthAndReady(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	s := startShop(t, memclient.Config{Servers: []memclient.Server{{Addr: srvs[0].Addr}, {Addr: srvs[1].Addr}}})

	code, body := get(t, s.srv.URL+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)

	code, r := readyzOf(t, s.srv.URL)
	assert.Equal(t, http.StatusOK, code)
	assert.True(t, r.Ready)
	assert.Equal(t, "memcached", r.Mode)
	require.Len(t, r.Servers, 2)
	for i, sr := range r.Servers {
		assert.Equal(t, srvs[i].Addr, sr.Addr)
		assert.True(t, sr.Answered)
		assert.Positive(t, sr.RTTSeconds)
		assert.Empty(t, sr.Error)
	}

	srvs[1].Kill()
	code, r = readyzOf(t, s.srv.URL)
	assert.Equal(t, http.StatusOK, code, "one server answers: ready")
	assert.True(t, r.Ready)
	assert.True(t, r.Servers[0].Answered)
	assert.False(t, r.Servers[1].Answered)
	assert.NotEmpty(t, r.Servers[1].Error)

	srvs[0].Kill()
	code, r = readyzOf(t, s.srv.URL)
	assert.Equal(t, http.StatusServiceUnavailable, code, "no server answers: not ready")
	assert.False(t, r.Ready)
	require.Len(t, r.Servers, 2)
	for _, sr := range r.Servers {
		assert.False(t, sr.Answered)
		assert.NotEmpty(t, sr.Error)
	}
	code, _ = get(t, s.srv.URL+"/healthz")
	assert.Equal(t, http.StatusOK, code, "the process is still up")

	require.NoError(t, srvs[0].Restart())
	require.Eventually(t, func() bool {
		code, _ := readyzOf(t, s.srv.URL)
		return code == http.StatusOK
	}, 10*time.Second, 20*time.Millisecond, "ready again once a server is back")
}

func TestReadyInMemory(t *testing.T) {
	leakcheck.Check(t)
	s := startShop(t, memclient.Config{})
	code, r := readyzOf(t, s.srv.URL)
	assert.Equal(t, http.StatusOK, code)
	assert.True(t, r.Ready)
	assert.Equal(t, "in-memory", r.Mode)
	assert.Contains(t, r.Note, "in-memory mode")
	assert.Empty(t, r.Servers)
}

// TestAdminListener: with an admin listener, /metrics and /debug/* are
// served there and only there; the health checks on both.
func TestAdminListener(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	a, err := newApp(context.Background(), config{
		Memcached:     memclient.Config{Servers: []memclient.Server{{Addr: srv.Addr}}},
		DBPath:        filepath.Join(t.TempDir(), "shop.db"),
		AdminListener: true,
	})
	require.NoError(t, err)
	main, admin := httptest.NewServer(a.Handler()), httptest.NewServer(a.AdminHandler())
	t.Cleanup(func() {
		main.Close()
		admin.Close()
		require.NoError(t, a.Close())
	})
	for _, tc := range []struct {
		srv  *httptest.Server
		path string
		code int
	}{
		{main, "/", http.StatusOK},
		{main, "/api/products/1", http.StatusOK},
		{main, "/healthz", http.StatusOK},
		{main, "/readyz", http.StatusOK},
		{main, "/debug/cache", http.StatusNotFound},
		{main, "/debug/cache?format=json", http.StatusNotFound},
		{main, "/metrics", http.StatusNotFound},
		{admin, "/debug/cache", http.StatusOK},
		{admin, "/debug/cache?format=json", http.StatusOK},
		{admin, "/debug/cache?part=live", http.StatusOK},
		{admin, "/healthz", http.StatusOK},
		{admin, "/readyz", http.StatusOK},
		{admin, "/metrics", http.StatusNotFound}, // no exporter wired
		{admin, "/", http.StatusNotFound},
		{admin, "/api/products/1", http.StatusNotFound},
	} {
		name := "main"
		if tc.srv == admin {
			name = "admin"
		}
		code, _ := get(t, tc.srv.URL+tc.path)
		assert.Equal(t, tc.code, code, "%s %s", name, tc.path)
	}
	_, body := get(t, main.URL+"/")
	assert.NotContains(t, body, `href="/debug/cache"`, "the shop does not link to a page it does not serve")
	_, body = get(t, admin.URL+"/metrics")
	assert.Contains(t, body, "no metrics exporter is wired")

	// Without an admin listener, the main one serves everything.
	s := startShop(t, memclient.Config{Servers: []memclient.Server{{Addr: srv.Addr}}})
	code, _ := get(t, s.srv.URL+"/debug/cache")
	assert.Equal(t, http.StatusOK, code)
	_, body = get(t, s.srv.URL+"/")
	assert.Contains(t, body, `href="/debug/cache"`)
}

// countingObserver stands for an exporter: it counts what it hears.
type countingObserver struct {
	ops, serverEvents, cacheEvents, sessionEvents atomic.Int64
}

func (o *countingObserver) ObserveOp(context.Context, memclient.Op) { o.ops.Add(1) }
func (o *countingObserver) ObserveServer(context.Context, memclient.ServerEvent) {
	o.serverEvents.Add(1)
}
func (o *countingObserver) ObserveCache(context.Context, objcache.Event)  { o.cacheEvents.Add(1) }
func (o *countingObserver) ObserveSession(context.Context, session.Event) { o.sessionEvents.Add(1) }

// ServeHTTP stands for a /metrics handler.
func (o *countingObserver) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	_, _ = io.WriteString(w, "memkit_test_ops "+strconv.FormatInt(o.ops.Load(), 10)+"\n")
}

// wrap stands for a tracing wrapper: it marks every response.
func (o *countingObserver) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Wrapped", "yes")
		h.ServeHTTP(w, r)
	})
}

// TestObservabilityPlugs wires an exporter into the plug point: its
// observers hear memclient, objcache and the sessions while the
// dashboard's recorder hears memclient and objcache too, /metrics serves
// its handler, and its wrapper wraps every route.
func TestObservabilityPlugs(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	var exp countingObserver
	a, err := newApp(context.Background(), config{
		Memcached: memclient.Config{Servers: []memclient.Server{{Addr: srv.Addr}}},
		DBPath:    filepath.Join(t.TempDir(), "shop.db"),
		Observability: observability{Metrics: &exp, Memcached: &exp, Cache: &exp, Sessions: &exp,
			Wrap: exp.wrap},
	})
	require.NoError(t, err)
	ts := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		ts.Close()
		require.NoError(t, a.Close())
	})
	s := &shop{t: t, app: a, srv: ts, c: newBrowser(t)}
	var p Product
	resp := s.json("GET", "/api/products/5", nil, &p)
	assert.Equal(t, "yes", resp.Header.Get("X-Wrapped"))
	s.json("GET", "/api/products/5", nil, &p)
	s.me()

	assert.Positive(t, exp.ops.Load(), "the exporter hears memcached operations")
	assert.Positive(t, exp.cacheEvents.Load(), "and objcache's events")
	assert.Positive(t, exp.sessionEvents.Load(), "and the sessions'")
	srv.Kill()
	id := 5
	assert.Eventually(t, func() bool {
		id++
		s.json("GET", "/api/products/"+strconv.Itoa(id), nil, &p) // from the database, the server gone
		return exp.serverEvents.Load() > 0
	}, 10*time.Second, 10*time.Millisecond, "and servers marked down")

	ops, hits := a.rec.totals()
	assert.Positive(t, ops, "the dashboard's recorder hears memcached operations too")
	assert.Positive(t, hits, "and objcache's hits")

	code, body := get(t, ts.URL+"/metrics")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "memkit_test_ops ")
}

// totals returns the operations and cache hits recorded in the window,
// the current second included.
func (r *recorder) totals() (ops, hits uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.tl.secs {
		ops, hits = ops+s.ops, hits+s.hits
	}
	return ops, hits
}

func TestFanOut(t *testing.T) {
	var a, b countingObserver
	assert.Nil(t, fanOut[memclient.Observer, memclientObservers](nil, nil), "none: nil, which costs memclient nothing")
	assert.Same(t, &a, fanOut[memclient.Observer, memclientObservers](nil, &a), "one: itself")
	both := fanOut[memclient.Observer, memclientObservers](&a, nil, &b)
	both.ObserveOp(context.Background(), memclient.Op{})
	both.ObserveServer(context.Background(), memclient.ServerEvent{})
	fanOut[objcache.Observer, cacheObservers](&a, &b).ObserveCache(context.Background(), objcache.Event{})
	fanOut[session.Observer, sessionObservers](&a, &b).ObserveSession(context.Background(), session.Event{})
	for _, o := range []*countingObserver{&a, &b} {
		assert.Equal(t, int64(1), o.ops.Load())
		assert.Equal(t, int64(1), o.serverEvents.Load())
		assert.Equal(t, int64(1), o.cacheEvents.Load())
		assert.Equal(t, int64(1), o.sessionEvents.Load())
	}
}

// TestAccessLog: one line per request with its method, path, status,
// body size and duration, and nothing of its query string or cookies.
func TestAccessLog(t *testing.T) {
	leakcheck.Check(t)
	s := startShop(t, memclient.Config{})
	s.me() // a session cookie
	cookie := s.cookie()
	require.NotEmpty(t, cookie)
	req, err := http.NewRequest("GET", s.srv.URL+"/api/products/7?token=s3cret-in-query", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer s3cret-in-header")
	resp, err := s.c.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	get(t, s.srv.URL+"/no/such/page")

	log := s.log.String()
	line := logLine(t, log, "path=/api/products/7")
	for _, want := range []string{"msg=request", "listener=main", "method=GET", "status=200", "bytes=" + strconv.Itoa(len(body)), "duration="} {
		assert.Contains(t, line, want)
	}
	assert.Contains(t, logLine(t, log, "path=/no/such/page"), "status=404")
	assert.NotContains(t, log, "s3cret", "no query string, no header")
	assert.NotContains(t, log, cookie, "no cookie")
}

// logLine returns the line of log that contains needle.
func logLine(t *testing.T, log, needle string) string {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, needle) {
			return l
		}
	}
	t.Fatalf("no log line with %q in:\n%s", needle, log)
	return ""
}

// lineWaiter is an io.Writer for a JSON log that hands each line to a
// channel.
type lineWaiter struct {
	mu    sync.Mutex // protects lines and buf
	buf   strings.Builder
	lines chan map[string]any
}

func (w *lineWaiter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			select {
			case w.lines <- m:
			default: // nobody is waiting for that many
			}
		}
	}
	return len(p), nil
}

func (w *lineWaiter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor returns the first log line whose msg starts with prefix.
func (w *lineWaiter) waitFor(t *testing.T, prefix string) map[string]any {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m := <-w.lines:
			if msg, _ := m["msg"].(string); strings.HasPrefix(msg, prefix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no log line %q in:\n%s", prefix, w.String())
		}
	}
}

// TestRunFromEnvironment runs the shop as main does, configured only by
// the environment: the addresses, the memcached servers, the database and
// the log format. The admin routes are on the admin listener only, the
// access log is JSON, and cancelling the context (SIGTERM in main) stops
// it with exit code 0.
func TestRunFromEnvironment(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	env := map[string]string{
		"MEMKIT_ADDR": "127.0.0.1:0", "MEMKIT_ADMIN_ADDR": "127.0.0.1:0", "MEMKIT_MEMCACHED": srv.Addr,
		"MEMKIT_DB": filepath.Join(t.TempDir(), "shop.db"), "MEMKIT_LOG_FORMAT": "json",
	}
	logs := &lineWaiter{lines: make(chan map[string]any, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, nil, func(k string) string { return env[k] }, logs) }()

	mc := logs.waitFor(t, "memcached")
	assert.Equal(t, srv.Addr+" (weight 1)", mc["servers"], "$MEMKIT_MEMCACHED is used")
	main := "http://" + logs.waitFor(t, "shop open at http://")["addr"].(string)
	admin := "http://" + logs.waitFor(t, "admin endpoints")["admin_addr"].(string)

	code, _ := get(t, main+"/api/products/3")
	assert.Equal(t, http.StatusOK, code)
	code, _ = get(t, main+"/debug/cache")
	assert.Equal(t, http.StatusNotFound, code)
	code, _ = get(t, admin+"/debug/cache")
	assert.Equal(t, http.StatusOK, code)
	code, _ = get(t, main+"/readyz")
	assert.Equal(t, http.StatusOK, code)

	for {
		l := logs.waitFor(t, "request")
		if l["path"] == "/api/products/3" {
			assert.Equal(t, "main", l["listener"])
			assert.Equal(t, "GET", l["method"])
			assert.Equal(t, 200.0, l["status"])
			assert.Positive(t, l["bytes"])
			assert.Positive(t, l["duration"])
			break
		}
	}
	cancel()
	select {
	case code := <-exit:
		assert.Equal(t, 0, code)
	case <-time.After(30 * time.Second):
		t.Fatal("the shop did not stop")
	}
	assert.Contains(t, logs.String(), `"msg":"shutting down"`)
}

func TestRunBadFlags(t *testing.T) {
	var out strings.Builder
	assert.Equal(t, 2, run(context.Background(), []string{"-distribution", "x"}, func(string) string { return "" }, &out))
	assert.Contains(t, out.String(), "want ketama or modula")
	out.Reset()
	assert.Equal(t, 0, run(context.Background(), []string{"-help"}, func(string) string { return "" }, &out))
	assert.Contains(t, out.String(), "$MEMKIT_ADMIN_ADDR")
}

// TestGracefulShutdown: a request in flight when the shop is told to stop
// is answered; new connections are refused; serve returns.
func TestGracefulShutdown(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	logs := &lineWaiter{lines: make(chan map[string]any, 100)}
	entered := make(chan struct{}, 1)
	opts := options{Addr: "127.0.0.1:0", App: config{
		Memcached: memclient.Config{Servers: []memclient.Server{{Addr: srv.Addr}}},
		DBPath:    filepath.Join(t.TempDir(), "shop.db"),
		Log:       newLogger(logs, "json"),
		Observability: observability{Wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/readyz" {
					entered <- struct{}{}
				}
				h.ServeHTTP(w, r)
			})
		}},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- serve(ctx, opts) }()
	url := "http://" + logs.waitFor(t, "shop open at http://")["addr"].(string)
	assert.Contains(t, logs.waitFor(t, "no -admin-addr")["msg"], "served on the main port")

	// A frozen memcached holds /readyz's ping for ReadyTimeout.
	srv.Freeze()
	defer srv.Resume()
	type result struct {
		code int
		err  error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url + "/readyz")
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		resp.Body.Close()
		inFlight <- result{code: resp.StatusCode}
	}()
	<-entered
	cancel()
	logs.waitFor(t, "shutting down")
	r := <-inFlight
	require.NoError(t, r.err, "the request in flight is answered")
	assert.Equal(t, http.StatusServiceUnavailable, r.code, "its server does not answer")
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return")
	}
	_, err := (&http.Client{Timeout: 5 * time.Second}).Get(url + "/healthz")
	assert.Error(t, err, "the listener is closed")
	assert.False(t, errors.Is(err, context.DeadlineExceeded))
}
