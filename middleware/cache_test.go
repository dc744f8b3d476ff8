package middleware_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
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
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/objcache"
)

// rcCache returns an objcache over a fresh client of addr.
func rcCache(t *testing.T, addr string, proto memclient.Protocol, opts objcache.Options) *objcache.Cache {
	t.Helper()
	c, _ := rcCacheClient(t, addr, proto, opts)
	return c
}

// rcCacheClient is rcCache that also returns the client, for raw access.
func rcCacheClient(t *testing.T, addr string, proto memclient.Protocol, opts objcache.Options) (*objcache.Cache, *memclient.Client) {
	t.Helper()
	mc, err := memclient.NewFromConfig(memclient.Config{Servers: []memclient.Server{{Addr: addr}}, Protocol: proto})
	require.NoError(t, err)
	t.Cleanup(func() { _ = mc.Close() })
	c, err := objcache.New(mc, opts)
	require.NoError(t, err)
	return c, mc
}

// rcServer serves h behind middleware.Cache.
func rcServer(t *testing.T, c *objcache.Cache, opts middleware.CacheOptions, h http.Handler) *httptest.Server {
	t.Helper()
	if opts.StatusHeader == "" {
		opts.StatusHeader = "X-Cache"
	}
	srv := httptest.NewServer(middleware.Cache(c, opts)(h))
	t.Cleanup(srv.Close)
	return srv
}

type rcResult struct {
	status int
	header http.Header
	body   string
}

func rcDo(t *testing.T, srv *httptest.Server, method, path string, header ...string) rcResult {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return rcResult{resp.StatusCode, resp.Header, string(b)}
}

func rcEachProtocol(t *testing.T, f func(t *testing.T, addr string, proto memclient.Protocol)) {
	for _, proto := range []memclient.Protocol{memclient.ProtocolMeta, memclient.ProtocolText} {
		t.Run(proto.String(), func(t *testing.T) {
			f(t, memcachetest.Start(t, memcachetest.Options{}).Addr, proto)
		})
	}
}

func TestResponseCacheHitMiss(t *testing.T) {
	leakcheck.Check(t)
	rcEachProtocol(t, func(t *testing.T, addr string, proto memclient.Protocol) {
		var calls atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := calls.Add(1)
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Add("X-Multi", "a")
			w.Header().Add("X-Multi", "b")
			w.WriteHeader(http.StatusNonAuthoritativeInfo)
			fmt.Fprintf(w, "%s %s call %d", r.Method, r.URL.RequestURI(), n)
		})
		c := rcCache(t, addr, proto, objcache.Options{})
		srv := rcServer(t, c, middleware.CacheOptions{}, h)

		first := rcDo(t, srv, "GET", "/products?page=2")
		assert.Equal(t, "MISS", first.header.Get("X-Cache"))
		assert.Equal(t, "GET /products?page=2 call 1", first.body)
		for range 3 {
			again := rcDo(t, srv, "GET", "/products?page=2")
			assert.Equal(t, "HIT", again.header.Get("X-Cache"))
			assert.Equal(t, first.body, again.body)
			assert.Equal(t, http.StatusNonAuthoritativeInfo, again.status)
			assert.Equal(t, []string{"a", "b"}, again.header.Values("X-Multi"))
			assert.Equal(t, "text/plain", again.header.Get("Content-Type"))
		}
		assert.Equal(t, int32(1), calls.Load())

		other := rcDo(t, srv, "GET", "/products?page=3")
		assert.Equal(t, "GET /products?page=3 call 2", other.body, "the query is part of the key")

		head := rcDo(t, srv, "HEAD", "/products?page=2")
		assert.Equal(t, "MISS", head.header.Get("X-Cache"), "the method is part of the key")
		head = rcDo(t, srv, "HEAD", "/products?page=2")
		assert.Equal(t, "HIT", head.header.Get("X-Cache"))
		assert.Equal(t, http.StatusNonAuthoritativeInfo, head.status)
		assert.Empty(t, head.body)
		assert.Equal(t, int32(3), calls.Load())
	})
}

func TestResponseCacheNeverCaches(t *testing.T) {
	leakcheck.Check(t)
	addr := memcachetest.Start(t, memcachetest.Options{}).Addr
	tests := []struct {
		name     string
		opts     middleware.CacheOptions
		method   string
		header   []string // request header pairs
		respond  func(w http.ResponseWriter)
		wantPass bool
	}{
		{name: "Set-Cookie", respond: func(w http.ResponseWriter) {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "x"})
		}, wantPass: true},
		{name: "Set-Cookie when told", opts: middleware.CacheOptions{CacheSetCookie: true}, respond: func(w http.ResponseWriter) {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "x"})
		}},
		{name: "Cache-Control private", respond: func(w http.ResponseWriter) { w.Header().Set("Cache-Control", "private, max-age=60") }, wantPass: true},
		{name: "Cache-Control no-store", respond: func(w http.ResponseWriter) { w.Header().Set("Cache-Control", "no-store") }, wantPass: true},
		{name: "Cache-Control no-cache", respond: func(w http.ResponseWriter) { w.Header().Set("Cache-Control", "No-Cache") }, wantPass: true},
		{name: "Cache-Control max-age=0", respond: func(w http.ResponseWriter) { w.Header().Set("Cache-Control", "public, max-age=0") }, wantPass: true},
		{name: "Cache-Control private when told", opts: middleware.CacheOptions{IgnoreCacheControl: true}, respond: func(w http.ResponseWriter) {
			w.Header().Set("Cache-Control", "private")
		}},
		{name: "Cache-Control public max-age", respond: func(w http.ResponseWriter) { w.Header().Set("Cache-Control", "public, max-age=60") }},
		{name: "404", respond: func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }, wantPass: true},
		{name: "500", respond: func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }, wantPass: true},
		{name: "206", respond: func(w http.ResponseWriter) { w.WriteHeader(http.StatusPartialContent) }, wantPass: true},
		{name: "404 when told", opts: middleware.CacheOptions{CacheStatus: func(code int) bool { return code == 200 || code == 404 }},
			respond: func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }},
		{name: "Vary on an unlisted header", respond: func(w http.ResponseWriter) { w.Header().Set("Vary", "Cookie") }, wantPass: true},
		{name: "Vary on a listed header", opts: middleware.CacheOptions{VaryHeaders: []string{"accept-language"}},
			respond: func(w http.ResponseWriter) { w.Header().Set("Vary", "Accept-Language") }},
		{name: "Vary *", respond: func(w http.ResponseWriter) { w.Header().Set("Vary", "*") }, wantPass: true},
		{name: "body over MaxBodySize", opts: middleware.CacheOptions{MaxBodySize: 10}, respond: func(w http.ResponseWriter) {
			_, _ = io.WriteString(w, strings.Repeat("x", 11))
		}, wantPass: true},
		{name: "flushed", respond: func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, wantPass: true},
		{name: "POST", method: "POST", wantPass: true},
		{name: "Authorization", header: []string{"Authorization", "Bearer t"}, wantPass: true},
		{name: "Range", header: []string{"Range", "bytes=0-1"}, wantPass: true},
		{name: "Upgrade", header: []string{"Upgrade", "websocket"}, wantPass: true},
		{name: "Skip", opts: middleware.CacheOptions{Skip: func(r *http.Request) bool { return r.URL.Query().Has("nocache") }},
			header: nil, wantPass: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := calls.Add(1)
				if tt.respond != nil {
					tt.respond(w)
				}
				fmt.Fprintf(w, "call %d", n)
			})
			c := rcCache(t, addr, memclient.ProtocolMeta, objcache.Options{Prefix: strconv.Itoa(i) + ":"})
			srv := rcServer(t, c, tt.opts, h)
			method := tt.method
			if method == "" {
				method = "GET"
			}
			path := "/page"
			if tt.opts.Skip != nil {
				path += "?nocache"
			}
			for j := 1; j <= 3; j++ {
				res := rcDo(t, srv, method, path, tt.header...)
				assert.Contains(t, res.body, "call ")
				if tt.wantPass {
					assert.True(t, strings.HasSuffix(res.body, fmt.Sprintf("call %d", j)), "request %d ran the handler: %q", j, res.body)
				} else {
					assert.True(t, strings.HasSuffix(res.body, "call 1"), "request %d was served from the cache: %q", j, res.body)
				}
			}
			if tt.wantPass {
				assert.Equal(t, int32(3), calls.Load())
			} else {
				assert.Equal(t, int32(1), calls.Load())
			}
		})
	}
}

func TestResponseCacheVaryHeaders(t *testing.T) {
	leakcheck.Check(t)
	addr := memcachetest.Start(t, memcachetest.Options{}).Addr
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		fmt.Fprintf(w, "hello in %s", r.Header.Get("Accept-Language"))
	})
	c := rcCache(t, addr, memclient.ProtocolMeta, objcache.Options{})
	srv := rcServer(t, c, middleware.CacheOptions{VaryHeaders: []string{"Accept-Language"}}, h)
	for range 2 {
		assert.Equal(t, "hello in en", rcDo(t, srv, "GET", "/", "Accept-Language", "en").body)
		assert.Equal(t, "hello in fr", rcDo(t, srv, "GET", "/", "Accept-Language", "fr").body)
	}
	assert.Equal(t, int32(2), calls.Load())
}

// Responses that are not cacheable are never shared, not even with
// requests that arrived while the handler ran.
func TestResponseCacheUncacheableNotShared(t *testing.T) {
	leakcheck.Check(t)
	addr := memcachetest.Start(t, memcachetest.Options{}).Addr
	// A barrier instead of a sleep: each wave's handler answers only once
	// all ten requests of its wave are inside the middleware.
	waves := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var arrived atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.Header.Get("X-User")
		select {
		case <-waves[user[1]-'0']:
		case <-time.After(10 * time.Second):
			t.Errorf("the requests of %s's wave never all arrived", user)
		}
		http.SetCookie(w, &http.Cookie{Name: "user", Value: user})
		fmt.Fprintf(w, "hello %s", user)
	})
	c := rcCache(t, addr, memclient.ProtocolMeta, objcache.Options{})
	cached := middleware.Cache(c, middleware.CacheOptions{StatusHeader: "X-Cache"})(h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch arrived.Add(1) {
		case 10:
			close(waves[0])
		case 20:
			close(waves[1])
		}
		cached.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	var wg sync.WaitGroup
	for wave := range 2 {
		for i := range 10 {
			wg.Go(func() {
				user := fmt.Sprintf("u%d-%d", wave, i)
				res := rcDo(t, srv, "GET", "/me", "X-User", user)
				assert.Equal(t, "hello "+user, res.body)
				assert.Contains(t, res.header.Get("Set-Cookie"), "user="+user)
				assert.Equal(t, "PASS", res.header.Get("X-Cache"))
			})
		}
		wg.Wait()
	}
}

// The handler that fills the cache gets no conditional headers, so a 304
// for one client never becomes everyone's answer.
func TestResponseCacheConditionalRequest(t *testing.T) {
	leakcheck.Check(t)
	addr := memcachetest.Start(t, memcachetest.Options{}).Addr
	modified := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.ServeContent(w, r, "page.txt", modified, strings.NewReader("full page"))
	})
	c := rcCache(t, addr, memclient.ProtocolMeta, objcache.Options{})
	srv := rcServer(t, c, middleware.CacheOptions{}, h)
	first := rcDo(t, srv, "GET", "/p", "If-Modified-Since", modified.Format(http.TimeFormat))
	assert.Equal(t, http.StatusOK, first.status)
	assert.Equal(t, "full page", first.body)
	second := rcDo(t, srv, "GET", "/p")
	assert.Equal(t, "HIT", second.header.Get("X-Cache"))
	assert.Equal(t, "full page", second.body)
	assert.Equal(t, int32(1), calls.Load())
}

func TestResponseCacheMaxAge(t *testing.T) {
	leakcheck.Check(t)
	addr := memcachetest.Start(t, memcachetest.Options{}).Addr
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", r.URL.Query().Get("cc"))
		_, _ = io.WriteString(w, "x")
	})
	c, mc := rcCacheClient(t, addr, memclient.ProtocolMeta, objcache.Options{TTL: time.Hour})
	srv := rcServer(t, c, middleware.CacheOptions{TTL: 10 * time.Minute, KeyPrefix: "page:"}, h)
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		cc   string
		want float64
	}{
		{"public, max-age=5", 5},
		{"max-age=5, s-maxage=7", 7},
		{"public", 600},
	}
	for _, tt := range tests {
		t.Run(tt.cc, func(t *testing.T) {
			path := "/?cc=" + strings.NewReplacer(" ", "%20", ",", "%2C", "=", "%3D").Replace(tt.cc)
			rcDo(t, srv, "GET", path)
			l, err := mc.GetLease(context.Background(), "page:GET:"+host+path, memclient.LeaseOptions{})
			require.NoError(t, err)
			assert.InDelta(t, tt.want, l.TTL.Seconds(), 2)
		})
	}
}

// The proof, for whole pages: 4 processes x 25 concurrent requests for a
// cold URL whose handler takes 100ms run the handler once.
func TestResponseCacheStampede(t *testing.T) {
	leakcheck.Check(t)
	rcEachProtocol(t, func(t *testing.T, addr string, proto memclient.Protocol) {
		var calls atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			time.Sleep(100 * time.Millisecond)
			_, _ = io.WriteString(w, "rendered page")
		})
		var srvs []*httptest.Server
		for range 4 {
			srvs = append(srvs, rcServer(t, rcCache(t, addr, proto, objcache.Options{}), middleware.CacheOptions{}, h))
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, srv := range srvs {
			for range 25 {
				wg.Go(func() {
					<-start
					req, err := http.NewRequest("GET", srv.URL+"/catalogue", nil)
					if !assert.NoError(t, err) {
						return
					}
					req.Host = "shop.example" // one site behind 4 servers
					resp, err := srv.Client().Do(req)
					if !assert.NoError(t, err) {
						return
					}
					defer resp.Body.Close()
					b, _ := io.ReadAll(resp.Body)
					assert.Equal(t, "rendered page", string(b))
				})
			}
		}
		close(start)
		wg.Wait()
		assert.Equal(t, int32(1), calls.Load(), "the handler ran once across 4 processes")
	})
}

func TestResponseCacheMemcachedDown(t *testing.T) {
	leakcheck.Check(t)
	mc := memcachetest.Start(t, memcachetest.Options{})
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = io.WriteString(w, "ok")
	})
	srv := rcServer(t, rcCache(t, mc.Addr, memclient.ProtocolMeta, objcache.Options{}), middleware.CacheOptions{}, h)
	mc.Kill()
	for range 2 {
		res := rcDo(t, srv, "GET", "/")
		assert.Equal(t, http.StatusOK, res.status)
		assert.Equal(t, "ok", res.body)
	}
	assert.Equal(t, int32(2), calls.Load())
}

func BenchmarkResponseCacheHit(b *testing.B) {
	mc := memcachetest.Start(b, memcachetest.Options{})
	cl, err := memclient.New(mc.Addr)
	require.NoError(b, err)
	b.Cleanup(func() { _ = cl.Close() })
	c, err := objcache.New(cl, objcache.Options{})
	require.NoError(b, err)
	page := strings.Repeat("<p>product</p>", 500)
	h := middleware.Cache(c, middleware.CacheOptions{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, page)
	}))
	req := httptest.NewRequest("GET", "/catalogue?page=1", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Body.Len() != len(page) {
			b.Fatal("short body")
		}
	}
}

// FuzzResponseCache feeds arbitrary URLs, hosts, header values and
// Cache-Control directives through the middleware over a real memcached:
// every request is answered by the handler's body, a second identical
// request is a HIT exactly when the response was cacheable, and private or
// no-store responses are never cached.
func FuzzResponseCache(f *testing.F) {
	f.Add("/products", "page=2", "shop.example", "en", "public, max-age=60")
	f.Add("/a b", "q=\x00\r\n", "h\x7f", "fr fr", "Private")
	f.Add("/"+strings.Repeat("x", 300), "", "", "", "no-store")
	f.Add("/", "", "", "", "max-age=-1, s-maxage=\"3\"")
	f.Add("/", "", "", "", "000000PrivAte0")
	mc := memcachetest.Start(f, memcachetest.Options{})
	cl, err := memclient.New(mc.Addr)
	require.NoError(f, err)
	f.Cleanup(func() { _ = cl.Close() })
	c, err := objcache.New(cl, objcache.Options{})
	require.NoError(f, err)
	var seq atomic.Int64
	h := middleware.Cache(c, middleware.CacheOptions{StatusHeader: "X-Cache", VaryHeaders: []string{"Accept-Language"}})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", r.Header.Get("X-CC"))
			fmt.Fprintf(w, "body %d", seq.Add(1))
		}))
	f.Fuzz(func(t *testing.T, path, query, host, lang, cc string) {
		_ = cl.FlushAll(context.Background())
		req := func() *httptest.ResponseRecorder {
			r := httptest.NewRequest("GET", "/", nil)
			r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host = path, "", query, host
			r.Header.Set("Accept-Language", lang)
			r.Header.Set("X-CC", cc)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w
		}
		first, second := req(), req()
		require.True(t, strings.HasPrefix(first.Body.String(), "body "))
		require.True(t, strings.HasPrefix(second.Body.String(), "body "))
		hit := second.Header().Get("X-Cache") == "HIT"
		assert.Equal(t, hit, first.Body.String() == second.Body.String())
		for _, d := range strings.Split(cc, ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "private", "no-store", "no-cache":
				assert.False(t, hit, "Cache-Control %q was cached", cc)
			}
		}
		if first.Header().Get("X-Cache") == "MISS" {
			assert.True(t, hit, "a cached response is served next time (path %q, host %q)", path, host)
		}
	})
}

// A handler that panics while filling the cache leaves no lease behind:
// the next request runs it again at once instead of waiting LeaseWait.
func TestResponseCacheHandlerPanic(t *testing.T) {
	leakcheck.Check(t)
	rcEachProtocol(t, func(t *testing.T, addr string, proto memclient.Protocol) {
		var calls atomic.Int32
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				panic("template bug")
			}
			_, _ = io.WriteString(w, "fixed")
		})
		c := rcCache(t, addr, proto, objcache.Options{LeaseWait: time.Minute})
		srv := httptest.NewUnstartedServer(middleware.Cache(c, middleware.CacheOptions{StatusHeader: "X-Cache"})(h))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // net/http logs the recovered panic
		srv.Start()
		t.Cleanup(srv.Close)

		_, err := srv.Client().Get(srv.URL + "/")
		require.Error(t, err, "net/http aborts the response of a panicking handler")

		client := srv.Client()
		client.Timeout = 10 * time.Second
		resp, err := client.Get(srv.URL + "/")
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "fixed", string(b))
		assert.Equal(t, "MISS", resp.Header.Get("X-Cache"))
		assert.Equal(t, uint64(0), c.Stats().LeaseWaits)
	})
}
