package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/objcache"
	"github.com/memkit/memkit/session"
)

// Defaults for the config fields whose zero value means the default.
const (
	DefaultCacheTTL    = 5 * time.Minute
	DefaultIdleTimeout = 30 * time.Minute
)

// config configures the shop.
type config struct {
	// Memcached is the cluster for sessions, memoized queries and the
	// cached catalogue page. No Servers means the in-memory mode: sessions
	// in session.MemoryStore, queries memoized in a small in-process cache
	// (objcache needs memcached) and the catalogue page not cached.
	Memcached memclient.Config
	// DBPath is the SQLite database file, created and seeded if missing.
	// "" means a private in-memory database.
	DBPath string
	// SessionKeys are the securecookie key pairs (see session.Manager.Keys).
	// nil means random keys: sessions do not survive a restart.
	SessionKeys [][]byte
	// SecureCookie sets the Secure attribute on the session cookie. Off by
	// default because the demo serves plain HTTP on loopback.
	SecureCookie bool
	// CacheTTL is how long query results and the catalogue page stay
	// cached. 0 means DefaultCacheTTL.
	CacheTTL time.Duration
	// Log receives the app's log lines, the access log and memclient's
	// servers down and up (unless Memcached.Logger is set). nil means none.
	Log *slog.Logger
	// Observability is what the shop exports (observability.go); the zero
	// value exports nothing.
	Observability observability
	// AdminListener says /metrics and /debug/* are served by AdminHandler
	// on a listener of their own (-admin-addr), not by Handler.
	AdminListener bool
}

// app is the shop: its database, caches, sessions and routes. Its Handler
// is safe for concurrent use; Close it after the server has stopped.
type app struct {
	log      *slog.Logger
	obs      observability
	rec      *recorder // the dashboard's time series
	db       *shopDB
	client   *memclient.Client // nil in the in-memory mode
	cache    *objcache.Cache   // nil in the in-memory mode
	local    *localMemo        // nil when cache is set
	sessions *session.Manager

	adminListener bool
	handler       http.Handler // the main listener's routes
	adminHandler  http.Handler // the admin listener's

	// The memoized queries.
	productByID  func(context.Context, int64) (Product, error)
	productPage  func(context.Context, int) ([]Product, error)
	productCount func(context.Context) (int, error)
	productList  // the product list, its queries and the tag that invalidates them (catalogue.go)
}

// newApp opens the database (seeding it on first start), connects the
// caches and sessions, and builds the routes.
func newApp(ctx context.Context, cfg config) (*app, error) {
	a := &app{log: cfg.Log, obs: cfg.Observability, adminListener: cfg.AdminListener}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	ttl := cfg.CacheTTL
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	var err error
	if a.db, err = openDB(ctx, cfg.DBPath); err != nil {
		return nil, err
	}
	a.sessions = &session.Manager{
		Keys:          cfg.SessionKeys,
		DevRandomKeys: len(cfg.SessionKeys) == 0, // said in the log below
		// Cookies end with the browser unless the user asks to be
		// remembered (POST /login with remember=1).
		Cookie:      session.CookieConfig{Name: "shop_session", Insecure: !cfg.SecureCookie, BrowserSession: true},
		Token:       session.TokenConfig{Enabled: true}, // Authorization: Bearer, from POST /api/login
		IdleTimeout: DefaultIdleTimeout,
		Observer:    a.obs.Sessions,
		ErrorFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			a.log.WarnContext(r.Context(), "session", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
			session.DefaultErrorFunc(w, r, err)
		},
	}
	if len(cfg.SessionKeys) == 0 {
		a.log.Warn("no session keys given: using random ones, so sessions end when the shop restarts")
	}

	pageCache := func(h http.Handler) http.Handler { return h }
	if len(cfg.Memcached.Servers) > 0 {
		mc := cfg.Memcached
		var addrs []string
		for _, s := range append(mc.Servers[:len(mc.Servers):len(mc.Servers)], mc.Gutter...) {
			addrs = append(addrs, s.Addr)
		}
		// The dashboard's recorder hears every operation, beside whatever
		// observer the caller or the exporters set.
		a.rec = newRecorder(DefaultWindow, addrs)
		mc.Observer = fanOut[memclient.Observer, memclientObservers](mc.Observer, a.rec, a.obs.Memcached)
		if mc.Logger == nil {
			mc.Logger = a.log // servers marked down and up
		}
		if a.client, err = memclient.NewFromConfig(mc); err != nil {
			a.db.Close()
			return nil, err
		}
		if a.obs.Watch != nil {
			a.obs.Watch(a.client) // metrics read each server's state from it
		}
		a.cache, err = objcache.New(a.client, objcache.Options{
			Prefix:       "shop:",
			TTL:          ttl,
			EarlyRefresh: ttl / 10, // one caller refreshes a hot product before it expires
			NegativeTTL:  time.Minute,
			Observer:     fanOut[objcache.Observer, cacheObservers](a.rec, a.obs.Cache),
		})
		if err != nil {
			a.Close()
			return nil, err
		}
		a.sessions.Store = session.NewMemcacheStore(a.client)
		a.setupCatalogue(ttl)
		// The catalogue is public (it never touches the session), so
		// whole responses can be cached and shared by every visitor;
		// they show products, so they carry the products' tag.
		pageCache = middleware.Cache(a.products, middleware.CacheOptions{TTL: ttl, StatusHeader: "X-Cache"})
		list := make([]string, len(cfg.Memcached.Servers))
		for i, s := range cfg.Memcached.Servers {
			list[i] = fmt.Sprintf("%s (weight %d)", s.Addr, max(s.Weight, 1))
		}
		a.log.Info("memcached", slog.String("servers", strings.Join(list, ", ")),
			slog.String("distribution", cfg.Memcached.Distribution.String()), slog.String("protocol", cfg.Memcached.Protocol.String()))
	} else {
		a.rec = newRecorder(DefaultWindow, nil)
		a.local = newLocalMemo(ttl, fanOut[objcache.Observer, cacheObservers](a.rec, a.obs.Cache))
		a.setupCatalogue(ttl)
		a.log.Warn("no -memcached: in-memory mode. Sessions live in session.MemoryStore, queries are memoized " +
			"in a small in-process cache (objcache needs memcached) and the catalogue page is not cached. " +
			"Nothing is shared between processes.")
	}

	mux := http.NewServeMux()
	mux.Handle("GET /{$}", pageCache(http.HandlerFunc(a.catalogue)))
	mux.HandleFunc("GET /products/{id}", a.productHTML)
	mux.HandleFunc("GET /api/products/{id}", a.productJSON)
	mux.HandleFunc("POST /admin/products/{id}", a.editProduct)
	mux.HandleFunc("GET /api/me", a.me)
	mux.HandleFunc("POST /api/cart", a.addToCart)
	mux.HandleFunc("GET /api/cart", a.cart)
	a.accountRoutes(mux)
	// Unsafe requests from other sites (forms, fetches) are refused
	// before they reach the session: cross-site request forgery.
	a.routes(http.NewCrossOriginProtection().Handler(middleware.Session(a.sessions)(routeNamed(mux))))
	return a, nil
}

// Handler returns the main listener's routes: the shop's (in the session
// middleware), the health checks and, unless config.AdminListener is
// set, /metrics and /debug/*. Every request is logged.
func (a *app) Handler() http.Handler { return a.handler }

// AdminHandler returns the admin listener's routes: /metrics, /debug/*
// and the health checks. Every request is logged.
func (a *app) AdminHandler() http.Handler { return a.adminHandler }

// Close releases the database, the memcached client and the in-memory
// session store. Stop serving first.
func (a *app) Close() error {
	var errs []error
	if a.sessions != nil {
		errs = append(errs, a.sessions.Close())
	}
	if a.client != nil {
		errs = append(errs, a.client.Close())
	}
	errs = append(errs, a.db.Close())
	return errors.Join(errs...)
}

// catalogue is GET /: a public page (it never touches the session), which
// is why it can be cached whole by middleware.Cache.
func (a *app) catalogue(w http.ResponseWriter, r *http.Request) {
	page := 1
	if p := r.URL.Query().Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			http.Error(w, "bad page", http.StatusBadRequest)
			return
		}
		page = n
	}
	total, err := a.productCount(r.Context())
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	pages := max(1, (total+pageSize-1)/pageSize)
	if page > pages {
		http.NotFound(w, r)
		return
	}
	products, err := a.productPage(r.Context(), page)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.render(w, r, "catalogue", map[string]any{
		"Products": products, "Page": page, "Pages": pages, "Total": total,
		"Prev": page - 1, "Next": min(page+1, pages), "Rendered": time.Now().Format(time.TimeOnly),
	})
}

// product loads the product named by the {id} path value through the
// memoized query and sets X-Cache. It writes the error response itself
// and returns ok false when there is none.
func (a *app) product(w http.ResponseWriter, r *http.Request) (Product, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		http.Error(w, "bad product id", http.StatusBadRequest)
		return Product{}, false
	}
	// The query marks ctx when it runs: miss. A request that found the
	// value in the cache, or waited for another request's query, ran
	// none: hit.
	ctx, loaded := withLoadMark(r.Context())
	p, err := a.productByID(ctx, id)
	if loaded.Load() {
		w.Header().Set("X-Cache", "miss")
	} else {
		w.Header().Set("X-Cache", "hit")
	}
	if errors.Is(err, objcache.ErrNotFound) {
		http.Error(w, "no such product", http.StatusNotFound)
		return Product{}, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return Product{}, false
	}
	return p, true
}

// productJSON is GET /api/products/{id}.
func (a *app) productJSON(w http.ResponseWriter, r *http.Request) {
	if p, ok := a.product(w, r); ok {
		writeJSON(w, http.StatusOK, p)
	}
}

// productHTML is GET /products/{id}: the product and, from the session,
// who is signed in and what is in the cart.
func (a *app) productHTML(w http.ResponseWriter, r *http.Request) {
	p, ok := a.product(w, r)
	if !ok {
		return
	}
	s := session.FromContext(r.Context())
	user, visits := a.visit(r.Context(), s)
	a.render(w, r, "product", map[string]any{
		"Product": p, "User": user, "Visits": visits, "Cart": cartItems(r.Context(), s), "Path": r.URL.Path,
	})
}

// visit counts a visit in the session and returns the user and the count.
// session.Update re-applies the increment if a concurrent request of the
// same session saved first, so concurrent visits all count.
func (a *app) visit(ctx context.Context, s *session.Session) (user string, visits int) {
	user, _ = session.Get[string](ctx, s, "user")
	_ = session.Update(ctx, s, "visits", func(n int, _ bool) int { return n + 1 })
	visits, _ = session.Get[int](ctx, s, "visits")
	return user, visits
}

// me is GET /api/me: {"user": ..., "visits": N}, counting this visit.
func (a *app) me(w http.ResponseWriter, r *http.Request) {
	user, visits := a.visit(r.Context(), session.FromContext(r.Context()))
	var u any
	if user != "" {
		u = user
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": u, "visits": visits})
}

// addToCart is POST /api/cart (form item): adds one item to the list
// under the session key "cart". session.Update re-applies the append on
// top of whatever a concurrent request saved first, so concurrent adds to
// one cart (two tabs, a double click, a script) are all kept, where a
// plain Get-then-Set would keep only the last writer's list.
func (a *app) addToCart(w http.ResponseWriter, r *http.Request) {
	item := strings.TrimSpace(r.FormValue("item"))
	if item == "" || len(item) > 100 {
		http.Error(w, "item: 1 to 100 characters", http.StatusBadRequest)
		return
	}
	err := session.Update(r.Context(), session.FromContext(r.Context()), "cart", func(items []string, _ bool) []string {
		return append(slices.Clip(items), item) // never write into a slice fn may see again
	})
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.done(w, r, map[string]any{"added": item})
}

// cart is GET /api/cart: {"items": [...]} in the order they were added.
func (a *app) cart(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"items": cartItems(r.Context(), session.FromContext(r.Context()))})
}

func cartItems(ctx context.Context, s *session.Session) []string {
	items, _ := session.Get[[]string](ctx, s, "cart")
	if items == nil {
		items = []string{}
	}
	return items
}

// done answers a form post: a redirect to the form's "next" field when it
// names a page of this site (a browser), else v as JSON (a script).
func (a *app) done(w http.ResponseWriter, r *http.Request, v any) {
	if next := r.FormValue("next"); safeNext(next) {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *app) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.requestError(r, err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// requestError logs err, which failed request r.
func (a *app) requestError(r *http.Request, err error) {
	a.log.ErrorContext(r.Context(), "request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// routeNamed names the request's span (when tracing makes one) after the
// route mux matches, "GET /products/{id}", never after the path with its
// IDs; a span is named when it starts, before any mux has routed.
func routeNamed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
			if _, pattern := mux.Handler(r); pattern != "" {
				span.SetName(pattern)
			}
		}
		mux.ServeHTTP(w, r)
	})
}
