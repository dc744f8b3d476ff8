// Command gin serves memkit sessions on memcached through the gin
// framework, with memkitgin (github.com/memkit/memkit/adapters/gin): native
// memkit sessions as gin middleware, and a gin-contrib/sessions store.
//
//	go run . -memcached 127.0.0.1:11211
//
// This example is a module of its own, so that the examples module does
// not bring gin's dependencies.
//
// Routes:
//
//	POST /login?user=NAME      memkit session: sign in; ?remember=1 for 30 days
//	GET  /me                   memkit session: {"user": ..., "visits": N}
//	POST /logout-everywhere    memkit session: sign the user out everywhere
//	POST /contrib/incr         gin-contrib/sessions: count, returns the count
package main

import (
	"crypto/rand"
	"flag"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	ginsessions "github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	memkitgin "github.com/memkit/memkit/adapters/gin"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/session"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "listen address")
	servers := flag.String("memcached", os.Getenv("MEMKIT_MEMCACHED"), "memcached servers host:port,... (default $MEMKIT_MEMCACHED)")
	flag.Parse()
	if *servers == "" {
		log.Fatal("gin example: give -memcached host:port (or $MEMKIT_MEMCACHED)")
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
	mgr := &session.Manager{Store: session.NewMemcacheStore(mc), Keys: [][]byte{key, nil},
		Cookie: session.CookieConfig{Insecure: true}}
	log.Printf("gin example on http://%s/", *addr)
	srv := &http.Server{Addr: *addr, Handler: newEngine(mgr, memkitgin.NewStore(session.NewMemcacheStore(mc), key)),
		ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// newEngine returns the example's gin engine.
func newEngine(mgr *session.Manager, store *memkitgin.Store) *gin.Engine {
	r := gin.New()
	r.Use(memkitgin.Sessions(mgr))
	r.POST("/login", func(c *gin.Context) {
		ctx, s := c.Request.Context(), memkitgin.Default(c)
		if err := s.Login(ctx, c.Query("user")); err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		if c.Query("remember") == "1" {
			_ = s.SetLifetime(30 * 24 * time.Hour)
			_ = s.SetPersistent(true)
		}
		c.Status(http.StatusNoContent)
	})
	r.GET("/me", func(c *gin.Context) {
		ctx, s := c.Request.Context(), memkitgin.Default(c)
		_ = session.Update(ctx, s, "visits", func(n int, _ bool) int { return n + 1 })
		visits, _ := s.Get(ctx, "visits")
		c.JSON(http.StatusOK, gin.H{"user": s.User(ctx), "visits": visits})
	})
	r.POST("/logout-everywhere", func(c *gin.Context) {
		ctx := c.Request.Context()
		user := memkitgin.Default(c).User(ctx)
		if user == "" {
			c.JSON(http.StatusUnauthorized, gin.H{"error": "not signed in"})
			return
		}
		if err := mgr.RevokeUser(ctx, user); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
			return
		}
		c.Status(http.StatusNoContent)
	})
	store.Options(ginsessions.Options{Path: "/", MaxAge: 3600, HttpOnly: true})
	contrib := r.Group("/contrib", ginsessions.Sessions("contrib", store))
	contrib.POST("/incr", func(c *gin.Context) {
		s := ginsessions.Default(c)
		n, _ := s.Get("n").(int)
		s.Set("n", n+1)
		if err := s.Save(); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"error": err.Error()})
			return
		}
		c.JSON(http.StatusOK, n+1)
	})
	return r
}
