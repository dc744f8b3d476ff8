package middleware

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/memkit/memkit/objcache"
)

// Defaults for the CacheOptions fields whose zero value means "use the
// default".
const (
	// DefaultCacheKeyPrefix starts the key of every cached response.
	DefaultCacheKeyPrefix = "http:"
	// DefaultCacheMaxBody is the largest body cached, in bytes; larger
	// responses are passed through. memcached's default item limit is 1 MB.
	DefaultCacheMaxBody = 512 << 10
	// DefaultPassTTL is how long a URL whose response could not be cached
	// is remembered as such.
	DefaultPassTTL = 30 * time.Second
)

// CacheOptions configure Cache. The zero value of every field means its
// default.
type CacheOptions struct {
	// TTL is how long a response is cached when it names no s-maxage or
	// max-age in its Cache-Control header (with one, that is used). 0
	// means the objcache's Options.TTL.
	TTL time.Duration
	// VaryHeaders are the request headers whose values are part of the
	// key, such as "Accept-Language". A response with a Vary header naming
	// another header (or "*") is not cached.
	VaryHeaders []string
	// KeyPrefix starts every key, after the objcache's own prefix. Empty
	// means DefaultCacheKeyPrefix.
	KeyPrefix string
	// MaxBodySize is the largest body cached, in bytes; a handler that
	// writes more is streamed through uncached. 0 means
	// DefaultCacheMaxBody.
	MaxBodySize int
	// PassTTL is how long a URL whose response was not cacheable goes
	// straight to the handler, with no lease and no waiting (Varnish's
	// hit-for-pass). 0 means DefaultPassTTL.
	PassTTL time.Duration

	// CacheStatus decides which status codes are cached. nil means 2xx
	// but 206 (partial content).
	CacheStatus func(code int) bool
	// CacheSetCookie, when true, caches responses that set cookies, and
	// replays their cookies to every client. Off by default: a response
	// with Set-Cookie is never cached.
	CacheSetCookie bool
	// IgnoreCacheControl, when true, caches responses whose
	// Cache-Control says private, no-store, no-cache or a zero max-age.
	// Off by default: those are never cached.
	IgnoreCacheControl bool
	// Skip, when set, sends the requests for which it returns true
	// straight to the handler. Requests other than GET and HEAD, and those
	// with an Authorization header (unless listed in VaryHeaders), a Range
	// or an Upgrade header always are.
	Skip func(*http.Request) bool
	// StatusHeader, when set, names a response header that says "HIT"
	// (served from the cache), "MISS" (the handler ran and its response
	// was cached) or "PASS" (the handler ran, nothing cached), such as
	// "X-Cache".
	StatusHeader string
}

// Cache returns middleware that caches whole responses (status, headers
// and body) to GET and HEAD requests in cache, keyed by method, host, URL
// (path and query) and the values of opts.VaryHeaders.
//
// It never caches a response that sets a cookie, whose Cache-Control says
// private, no-store or no-cache, or whose status is not 2xx, unless opts
// says so. It fills the cache through objcache.GetOrLoad, so a cold or
// expiring URL runs the handler once across every process sharing the
// cluster while other requests for it wait for that response (or, in the
// objcache's EarlyRefresh window, get the current one). Requests whose
// response turned out not cacheable share nothing: each runs the handler.
//
// The handler that fills the cache runs with conditional request headers
// (If-None-Match, If-Modified-Since...) removed, so that it produces a
// full response for everyone; pages that depend on the Cookie header must
// say so with Cache-Control: private or list Cookie in VaryHeaders.
//
// When memcached fails, requests go to the handler. The returned
// middleware is safe for concurrent use.
func Cache(cache *objcache.Cache, opts CacheOptions) func(http.Handler) http.Handler {
	if cache == nil {
		panic("middleware: Cache with a nil *objcache.Cache")
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultCacheKeyPrefix
	}
	if opts.MaxBodySize <= 0 {
		opts.MaxBodySize = DefaultCacheMaxBody
	}
	if opts.PassTTL <= 0 {
		opts.PassTTL = DefaultPassTTL
	}
	if opts.CacheStatus == nil {
		opts.CacheStatus = func(code int) bool { return code >= 200 && code < 300 && code != http.StatusPartialContent }
	}
	vary := make(map[string]bool, len(opts.VaryHeaders))
	names := make([]string, len(opts.VaryHeaders))
	for i, h := range opts.VaryHeaders {
		names[i] = http.CanonicalHeaderKey(h)
		vary[names[i]] = true
	}
	opts.VaryHeaders = names
	rc := &responseCache{cache: cache, opts: opts, vary: vary}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc.serve(w, r, next)
		})
	}
}

type responseCache struct {
	cache *objcache.Cache
	opts  CacheOptions
	vary  map[string]bool // canonical VaryHeaders
}

// cachedResponse is what is stored: a response, or the note that the
// URL's responses are not cacheable.
type cachedResponse struct {
	Status int
	Header http.Header
	Body   []byte
	Pass   bool
}

func (rc *responseCache) bypass(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return true
	}
	if r.Header.Get("Range") != "" || r.Header.Get("Upgrade") != "" {
		return true // partial content; websockets and other hijacked connections
	}
	if r.Header.Get("Authorization") != "" && !rc.vary["Authorization"] {
		return true
	}
	return rc.opts.Skip != nil && rc.opts.Skip(r)
}

func (rc *responseCache) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if rc.bypass(r) {
		next.ServeHTTP(w, r)
		return
	}
	var rec *recorder // set when this request's handler filled the cache
	resp, err := objcache.GetOrLoadTTL(r.Context(), rc.cache, rc.key(r), func(ctx context.Context) (cachedResponse, time.Duration, error) {
		rec = &recorder{w: w, header: make(http.Header), max: rc.opts.MaxBodySize, statusHeader: rc.opts.StatusHeader}
		next.ServeHTTP(rec, fillRequest(r.WithContext(ctx)))
		resp, ttl, err := rc.toCache(rec)
		rec.pass = resp.Pass
		return resp, ttl, err
	})
	switch {
	case rec != nil:
		rec.finish()
	case err != nil || resp.Pass:
		// Not cacheable, or the cache failed us: the handler answers.
		rc.status(w, "PASS")
		next.ServeHTTP(w, r)
	default:
		h := w.Header()
		for k, v := range resp.Header {
			h[k] = v
		}
		rc.status(w, "HIT")
		w.WriteHeader(resp.Status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(resp.Body)
		}
	}
}

func (rc *responseCache) status(w http.ResponseWriter, s string) {
	if rc.opts.StatusHeader != "" {
		w.Header().Set(rc.opts.StatusHeader, s)
	}
}

// key is the objcache key of r's response: readable when it can be
// ("GET:example.com/products?page=2"), hashed when it holds bytes a
// memcached key cannot.
func (rc *responseCache) key(r *http.Request) string {
	var b strings.Builder
	b.WriteString(rc.opts.KeyPrefix)
	b.WriteString(r.Method)
	b.WriteByte(':')
	b.WriteString(r.Host)
	b.WriteString(r.URL.RequestURI())
	if len(rc.opts.VaryHeaders) > 0 {
		h := sha256.New()
		for _, name := range rc.opts.VaryHeaders {
			h.Write([]byte(name))
			for _, v := range r.Header.Values(name) {
				h.Write([]byte{0})
				h.Write([]byte(v))
			}
			h.Write([]byte{1})
		}
		b.WriteByte('|')
		b.WriteString(hex.EncodeToString(h.Sum(nil)[:16]))
	}
	k := b.String()
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c == 0x7f {
			sum := sha256.Sum256([]byte(k))
			return rc.opts.KeyPrefix + r.Method + ":#" + hex.EncodeToString(sum[:])
		}
	}
	return k
}

// conditional request headers, removed from the request that fills the
// cache.
var conditionalHeaders = []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range"}

func fillRequest(r *http.Request) *http.Request {
	for _, h := range conditionalHeaders {
		if r.Header.Get(h) != "" {
			r.Header = r.Header.Clone()
			for _, h := range conditionalHeaders {
				r.Header.Del(h)
			}
			break
		}
	}
	return r
}

// hopByHop headers belong to one connection and are never replayed.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// toCache decides what the recorded response leaves in the cache, and for
// how long.
func (rc *responseCache) toCache(rec *recorder) (cachedResponse, time.Duration, error) {
	pass := cachedResponse{Pass: true}
	if rec.streaming || !rc.opts.CacheStatus(rec.code()) {
		return pass, rc.opts.PassTTL, nil
	}
	h := rec.header
	if !rc.opts.CacheSetCookie && len(h.Values("Set-Cookie")) > 0 {
		return pass, rc.opts.PassTTL, nil
	}
	for _, v := range h.Values("Vary") {
		for _, name := range strings.Split(v, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if name != "" && !rc.vary[name] {
				return pass, rc.opts.PassTTL, nil
			}
		}
	}
	ttl := rc.opts.TTL
	if maxAge, private, ok := parseCacheControl(h.Values("Cache-Control")); !rc.opts.IgnoreCacheControl {
		if private || (ok && maxAge <= 0) {
			return pass, rc.opts.PassTTL, nil
		}
		if ok {
			ttl = maxAge
		}
	}
	stored := h.Clone()
	for _, name := range hopByHop {
		stored.Del(name)
	}
	if rc.opts.StatusHeader != "" {
		stored.Del(rc.opts.StatusHeader)
	}
	return cachedResponse{Status: rec.code(), Header: stored, Body: rec.body.Bytes()}, ttl, nil
}

// parseCacheControl reads the directives that matter to a shared cache:
// private, no-store and no-cache forbid caching; s-maxage, else max-age,
// is the lifetime (ok tells whether there was one).
func parseCacheControl(values []string) (maxAge time.Duration, private, ok bool) {
	sMaxAge, haveS := time.Duration(0), false
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "private", "no-store", "no-cache":
				private = true
			case "max-age", "s-maxage":
				n, err := strconv.ParseInt(strings.Trim(arg, `"`), 10, 64)
				if err != nil || n < 0 {
					private = true // unparsable lifetime: do not guess
					continue
				}
				d := time.Duration(min(n, int64(365*24*3600))) * time.Second
				if strings.EqualFold(name, "s-maxage") {
					sMaxAge, haveS = d, true
				} else {
					maxAge, ok = d, true
				}
			}
		}
	}
	if haveS {
		return sMaxAge, private, true
	}
	return maxAge, private, ok
}

// recorder buffers the response of the handler that fills the cache. Once
// the body outgrows max, or the handler flushes, it gives up caching and
// streams the rest to the client directly. It is not safe for concurrent
// use (nor is any http.ResponseWriter).
type recorder struct {
	w            http.ResponseWriter // the filling request's own writer
	header       http.Header
	status       int
	body         bytes.Buffer
	max          int
	statusHeader string
	streaming    bool // the response went to w; nothing is cached
	pass         bool // the response is not cacheable
	finished     bool
}

var (
	_ http.ResponseWriter = (*recorder)(nil)
	_ http.Flusher        = (*recorder)(nil)
)

func (r *recorder) Header() http.Header {
	if r.streaming {
		return r.w.Header()
	}
	return r.header
}

func (r *recorder) WriteHeader(code int) {
	if r.streaming {
		r.w.WriteHeader(code)
		return
	}
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.streaming {
		return r.w.Write(p)
	}
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len()+len(p) > r.max {
		r.stream()
		return r.w.Write(p)
	}
	return r.body.Write(p)
}

// Flush streams the response from now on: flushed responses (server-sent
// events, progress pages) are not cached.
func (r *recorder) Flush() {
	r.stream()
	if f, ok := r.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.w }

// stream sends what is buffered to the client and switches to
// pass-through.
func (r *recorder) stream() {
	if r.streaming {
		return
	}
	r.streaming = true
	r.send("PASS")
}

// send writes the buffered header and body to the client.
func (r *recorder) send(status string) {
	h := r.w.Header()
	for k, v := range r.header {
		h[k] = v
	}
	if r.statusHeader != "" {
		h.Set(r.statusHeader, status)
	}
	r.w.WriteHeader(r.code())
	if r.body.Len() > 0 {
		_, _ = r.w.Write(r.body.Bytes())
	}
}

// finish sends the buffered response, once the cache has it.
func (r *recorder) finish() {
	if r.streaming || r.finished {
		return
	}
	r.finished = true
	status := "MISS"
	if r.pass {
		status = "PASS"
	}
	r.send(status)
}
