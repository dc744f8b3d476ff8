// Command webapp is a small shop on memkit: sessions kept in memcached by
// middleware.Session (login, visits, a cart that keeps concurrent adds),
// SQL queries on an embedded SQLite database memoized by objcache, and the
// public catalogue page cached whole by middleware.Cache.
//
//	go run ./webapp -memcached 127.0.0.1:11311:1,127.0.0.1:11312:2,127.0.0.1:11313:3
//
// `make demo` starts three memcached servers and runs it against them.
// Without -memcached (or $MEMKIT_MEMCACHED) it runs in its in-memory mode
// and says so in its log.
//
// Routes:
//
//	GET  /                  catalogue (HTML, cached whole)
//	GET  /products/{id}     product page (HTML)
//	GET  /api/products/{id} product (JSON), X-Cache: hit|miss
//	POST /admin/products/{id} JSON edit of a product (loopback only): invalidates it everywhere
//	POST /login             form user, remember=1: sign in, renewing the session ID
//	                        (a persistent 30-day cookie only with remember=1)
//	POST /logout            end the session
//	POST /api/login         form user: sign in for a token: {"token": "..."}
//	GET  /api/me            {"user": ..., "visits": N} (cookie or Authorization: Bearer)
//	POST /api/cart          form item: add one item to the cart
//	GET  /api/cart          {"items": [...]} (cookie or Authorization: Bearer)
//	GET  /api/sessions      the user's sessions, newest first (401 when not signed in)
//	POST /api/sessions/revoke         form id: sign one session out (404 if unknown)
//	POST /api/sessions/revoke-others  sign out every session but this one
//	POST /api/logout-everywhere       sign out every session
//	GET  /account           the same as a page
//	GET  /debug/cache       cache counters and memcached stats (?format=json)
//
// Unsafe requests from other origins are refused (net/http's
// CrossOriginProtection).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/memkit/memkit/memclient"
)

// DefaultAddr is where the shop listens unless -addr says otherwise.
const DefaultAddr = "127.0.0.1:8080"

func main() {
	logger := log.New(os.Stderr, "webapp: ", log.LstdFlags)
	addr, cfg, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		logger.Printf("%v", err)
		os.Exit(2)
	}
	cfg.Log = logger
	if err := serve(addr, cfg); err != nil {
		logger.Printf("%v", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line. $MEMKIT_MEMCACHED is the default of
// -memcached, as in every example; secrets come from the environment:
// $MEMCACHED_PASSWORD (with -memcached-user) and $SHOP_SESSION_KEY.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (string, config, error) {
	fs := flag.NewFlagSet("webapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", DefaultAddr, "listen address")
	servers := fs.String("memcached", getenv("MEMKIT_MEMCACHED"), "memcached servers, host:port[:weight],... (default $MEMKIT_MEMCACHED; none: in-memory mode)")
	dist := fs.String("distribution", "ketama", "key distribution: ketama (libmemcached, pylibmc) or modula (python-memcached)")
	textProto := fs.Bool("text-protocol", false, "speak memcached's classic text protocol (for proxies and old servers) instead of meta")
	useTLS := fs.Bool("memcached-tls", false, "connect to memcached with TLS")
	caFile := fs.String("memcached-ca", "", "PEM file of the CA that signed the memcached certificates (implies -memcached-tls; default: the system roots)")
	user := fs.String("memcached-user", "", "memcached ASCII auth user (memcached -Y); the password comes from $MEMCACHED_PASSWORD")
	db := fs.String("db", filepath.Join(os.TempDir(), "memkit-shop.db"), "SQLite database file, created and seeded on first start")
	secure := fs.Bool("secure-cookie", false, "mark the session cookie Secure (when served over HTTPS)")
	if err := fs.Parse(args); err != nil {
		return "", config{}, err
	}
	if fs.NArg() > 0 {
		return "", config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg := config{DBPath: *db, SecureCookie: *secure}
	list, err := memclient.ParseServers(*servers)
	if err != nil {
		return "", config{}, err
	}
	cfg.Memcached.Servers = list
	switch *dist {
	case "ketama":
		cfg.Memcached.Distribution = memclient.DistributionKetama
	case "modula":
		cfg.Memcached.Distribution = memclient.DistributionModula
	default:
		return "", config{}, fmt.Errorf("-distribution %q: want ketama or modula", *dist)
	}
	if *textProto {
		cfg.Memcached.Protocol = memclient.ProtocolText
	}
	if *useTLS || *caFile != "" {
		cfg.Memcached.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				return "", config{}, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return "", config{}, fmt.Errorf("-memcached-ca %s: no PEM certificate", *caFile)
			}
			cfg.Memcached.TLS.RootCAs = pool
		}
	}
	if *user != "" {
		cfg.Memcached.Username, cfg.Memcached.Password = *user, getenv("MEMCACHED_PASSWORD")
	}
	if k := getenv("SHOP_SESSION_KEY"); k != "" {
		key, err := hex.DecodeString(k)
		if err != nil || (len(key) != 32 && len(key) != 64) {
			return "", config{}, errors.New("$SHOP_SESSION_KEY: want 32 or 64 bytes, hex-encoded (openssl rand -hex 32)")
		}
		cfg.SessionKeys = [][]byte{key, nil}
	}
	return *addr, cfg, nil
}

// serve runs the shop on addr until SIGINT or SIGTERM.
func serve(addr string, cfg config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := newApp(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	cfg.Log.Printf("shop open at http://%s/ (database %s)", ln.Addr(), cfg.DBPath)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	cfg.Log.Printf("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
