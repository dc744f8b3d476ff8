// Command chi serves memkit sessions through the chi router: memkit's
// net/http middleware (middleware.Session) plugs into chi as it is.
//
//	go run ./chi -memcached 127.0.0.1:11211
//
// Without -memcached (or $MEMKIT_MEMCACHED) the sessions live in memory.
//
// Routes:
//
//	POST /login?user=NAME   sign in (bind the session to the user)
//	GET  /me                {"user": ..., "visits": N}
//	POST /logout-everywhere sign the user out of every session
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/session"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	servers := flag.String("memcached", os.Getenv("MEMKIT_MEMCACHED"), "memcached servers host:port,... (default $MEMKIT_MEMCACHED; none: in memory)")
	flag.Parse()
	mgr := &session.Manager{DevRandomKeys: true, Cookie: session.CookieConfig{Insecure: true}}
	if *servers != "" {
		mc, err := memclient.New(strings.Split(*servers, ",")...)
		if err != nil {
			log.Fatal(err)
		}
		defer mc.Close()
		mgr.Store = session.NewMemcacheStore(mc)
	}
	defer mgr.Close()
	log.Printf("chi example on http://%s/ (random session keys: sessions end with the process)", *addr)
	srv := &http.Server{Addr: *addr, Handler: newRouter(mgr), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// newRouter returns the example's chi router with memkit sessions.
func newRouter(mgr *session.Manager) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Session(mgr))
	r.Post("/login", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).Login(r.Context(), r.URL.Query().Get("user")); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	r.Get("/me", func(w http.ResponseWriter, r *http.Request) {
		ctx, s := r.Context(), session.FromContext(r.Context())
		_ = session.Update(ctx, s, "visits", func(n int, _ bool) int { return n + 1 })
		visits, _ := s.Get(ctx, "visits")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user": s.User(ctx), "visits": visits})
	})
	r.Post("/logout-everywhere", func(w http.ResponseWriter, r *http.Request) {
		ctx, s := r.Context(), session.FromContext(r.Context())
		user := s.User(ctx)
		if user == "" {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		if err := mgr.RevokeUser(ctx, user); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return r
}
