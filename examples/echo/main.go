// Command echo serves sessions on memcached through the echo framework,
// both ways echo apps use them:
//
//   - memkit's own sessions (merged concurrent writes, per-user
//     revocation) through echo.WrapMiddleware(middleware.Session(mgr));
//
//   - echo-contrib/session (gorilla/sessions' API) with memkit's
//     gorillastore as its store.
//
//     go run . -memcached 127.0.0.1:11211
//
// Without -memcached (or $MEMKIT_MEMCACHED) it starts nothing and says so:
// both kinds of session need memcached here.
//
// This example is a module of its own, so that the examples module does
// not bring echo's dependencies.
//
// Routes:
//
//	POST /login?user=NAME   memkit session: sign in
//	GET  /me                memkit session: {"user": ..., "visits": N}
//	POST /contrib/incr      echo-contrib session: count, returns the count
package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"strings"

	"github.com/gorilla/sessions"
	"github.com/labstack/echo-contrib/session"
	"github.com/labstack/echo/v4"
	"github.com/memkit/memkit/adapters/gorillastore"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/middleware"
	msession "github.com/memkit/memkit/session"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8082", "listen address")
	servers := flag.String("memcached", os.Getenv("MEMKIT_MEMCACHED"), "memcached servers host:port,... (default $MEMKIT_MEMCACHED)")
	flag.Parse()
	if *servers == "" {
		log.Fatal("echo example: give -memcached host:port (or $MEMKIT_MEMCACHED)")
	}
	mc, err := memclient.New(strings.Split(*servers, ",")...)
	if err != nil {
		log.Fatal(err)
	}
	defer mc.Close()
	key := []byte(os.Getenv("SESSION_KEY"))
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
		log.Printf("no $SESSION_KEY: a random key, so sessions end with the process")
	}
	mgr := &msession.Manager{Store: msession.NewMemcacheStore(mc), Keys: [][]byte{key, nil},
		Cookie: msession.CookieConfig{Insecure: true}}
	e := newEcho(mgr, gorillastore.New(msession.NewMemcacheStore(mc), key))
	log.Printf("echo example on http://%s/", *addr)
	if err := e.Start(*addr); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// newEcho returns the example's echo server: memkit sessions on every
// route, and echo-contrib/session with store under /contrib.
func newEcho(mgr *msession.Manager, store *gorillastore.Store) *echo.Echo {
	store.Options.Secure = false // the example serves plain HTTP
	e := echo.New()
	e.HideBanner = true
	e.Use(echo.WrapMiddleware(middleware.Session(mgr)))
	e.POST("/login", func(c echo.Context) error {
		s := msession.FromContext(c.Request().Context())
		if err := s.Login(c.Request().Context(), c.QueryParam("user")); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
		return c.NoContent(http.StatusNoContent)
	})
	e.GET("/me", func(c echo.Context) error {
		ctx := c.Request().Context()
		s := msession.FromContext(ctx)
		_ = msession.Update(ctx, s, "visits", func(n int, _ bool) int { return n + 1 })
		visits, _ := s.Get(ctx, "visits")
		return c.JSON(http.StatusOK, map[string]any{"user": s.User(ctx), "visits": visits})
	})
	g := e.Group("/contrib", session.Middleware(store))
	g.POST("/incr", func(c echo.Context) error {
		s, err := session.Get("contrib", c)
		if err != nil && !errors.Is(err, gorillastore.ErrNotFound) {
			return err
		}
		n, _ := s.Values["n"].(int)
		s.Values["n"] = n + 1
		s.Options = &sessions.Options{Path: "/", MaxAge: 3600, HttpOnly: true}
		if err := s.Save(c.Request(), c.Response()); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, n+1)
	})
	return e
}
