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
//
// For operators:
//
//	GET  /healthz           the process is up: 200 "ok"
//	GET  /readyz            200 while any memcached server answers a ping, 503 when none
//	                        does; JSON naming each server's state (in-memory mode: 200)
//	GET  /metrics           Prometheus metrics (memkit's names: see adapters/prometheus)
//	GET  /debug/traces      the last requests' spans, memcached calls as children (JSON)
//	GET  /debug/cache       live dashboard: ops/s, hit ratio, latency and key share per
//	                        server, server state, counters (?format=json: the same as JSON)
//
// With -admin-addr, /metrics and /debug/* are served only on that
// address (with /healthz and /readyz); without it they share the main
// port, and the log says so. Every request is logged through log/slog
// (method, path, status, bytes, duration; never query strings or
// cookies). Every flag can be set from the environment instead:
// $MEMKIT_ and the flag's name in capitals, dashes as underscores
// ($MEMKIT_MEMCACHED, $MEMKIT_ADMIN_ADDR, ...); the command line wins.
// SIGINT or SIGTERM stop it gracefully: requests in flight finish first.
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
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/memkit/memkit/memclient"
)

// DefaultAddr is where the shop listens unless -addr says otherwise.
const DefaultAddr = "127.0.0.1:8080"

// ShutdownTimeout is how long a stopping shop waits for the requests in
// flight.
const ShutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the shop with the command line args and the environment
// until ctx ends, logging to stderr, and returns the exit code: 0, 1 when
// it failed, 2 for a bad command line.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	opts, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "webapp:", err)
		return 2
	}
	log := newLogger(stderr, opts.LogFormat)
	obs, err := newObservability(ctx, log)
	if err != nil {
		log.Error("observability", slog.Any("error", err))
		return 1
	}
	opts.App.Log, opts.App.Observability = log, obs
	err = serve(ctx, opts)
	if obs.Shutdown != nil {
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		err = errors.Join(err, obs.Shutdown(sctx))
		cancel()
	}
	if err != nil {
		log.Error("stopped", slog.Any("error", err))
		return 1
	}
	return 0
}

// options are the command line's.
type options struct {
	Addr      string // the shop's listen address
	AdminAddr string // /metrics' and /debug/*'s; "": the main one
	LogFormat string // text or json
	App       config
}

// envPrefix and a flag's name in capitals, dashes as underscores, name
// the environment variable that sets the flag.
const envPrefix = "MEMKIT_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags reads the command line. Every flag can also be set by its
// environment variable (envName: $MEMKIT_MEMCACHED for -memcached, as in
// every example); the command line wins. Secrets come from the
// environment only: $MEMCACHED_PASSWORD (with -memcached-user) and
// $SHOP_SESSION_KEY.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("webapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", DefaultAddr, "listen address")
	adminAddr := fs.String("admin-addr", "", "listen address of /metrics and /debug/* (with /healthz and /readyz); none: they are served on -addr")
	servers := fs.String("memcached", "", "memcached servers, host:port[:weight],... (none: in-memory mode)")
	dist := fs.String("distribution", "ketama", "key distribution: ketama (libmemcached, pylibmc) or modula (python-memcached)")
	textProto := fs.Bool("text-protocol", false, "speak memcached's classic text protocol (for proxies and old servers) instead of meta")
	useTLS := fs.Bool("memcached-tls", false, "connect to memcached with TLS")
	caFile := fs.String("memcached-ca", "", "PEM file of the CA that signed the memcached certificates (implies -memcached-tls; default: the system roots)")
	user := fs.String("memcached-user", "", "memcached ASCII auth user (memcached -Y); the password comes from $MEMCACHED_PASSWORD")
	db := fs.String("db", filepath.Join(os.TempDir(), "memkit-shop.db"), "SQLite database file, created and seeded on first start")
	secure := fs.Bool("secure-cookie", false, "mark the session cookie Secure (when served over HTTPS)")
	logFormat := fs.String("log-format", "text", "log format: text or json (log/slog's handlers)")
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " ($" + envName(f.Name) + ")" })
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: webapp [flags]

The memkit demo shop. Every flag can also be set by the environment
variable named after it ($%sMEMCACHED for -memcached, dashes as
underscores); a flag on the command line wins.

`, envPrefix)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), `
Secrets come from the environment only:
  MEMCACHED_PASSWORD   memcached ASCII auth password (with -memcached-user)
  SHOP_SESSION_KEY     session cookie key, 32 or 64 bytes hex-encoded
                       (openssl rand -hex 32; none: random, sessions end on restart)
`)
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("$%s: %w", envName(f.Name), err)
			}
		}
	})
	if envErr != nil {
		return options{}, envErr
	}
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *logFormat != "text" && *logFormat != "json" {
		return options{}, fmt.Errorf("-log-format %q: want text or json", *logFormat)
	}
	opts := options{Addr: *addr, AdminAddr: *adminAddr, LogFormat: *logFormat}
	cfg := config{DBPath: *db, SecureCookie: *secure}
	list, err := memclient.ParseServers(*servers)
	if err != nil {
		return options{}, err
	}
	cfg.Memcached.Servers = list
	switch *dist {
	case "ketama":
		cfg.Memcached.Distribution = memclient.DistributionKetama
	case "modula":
		cfg.Memcached.Distribution = memclient.DistributionModula
	default:
		return options{}, fmt.Errorf("-distribution %q: want ketama or modula", *dist)
	}
	if *textProto {
		cfg.Memcached.Protocol = memclient.ProtocolText
	}
	if *useTLS || *caFile != "" {
		cfg.Memcached.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				return options{}, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return options{}, fmt.Errorf("-memcached-ca %s: no PEM certificate", *caFile)
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
			return options{}, errors.New("$SHOP_SESSION_KEY: want 32 or 64 bytes, hex-encoded (openssl rand -hex 32)")
		}
		cfg.SessionKeys = [][]byte{key, nil}
	}
	opts.App = cfg
	return opts, nil
}

func newLogger(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// serve runs the shop until ctx ends, then stops it gracefully: the
// listeners close and the requests in flight get ShutdownTimeout to
// finish.
func serve(ctx context.Context, opts options) error {
	cfg := opts.App
	cfg.AdminListener = opts.AdminAddr != ""
	log := cfg.Log
	a, err := newApp(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	var (
		servers   []*http.Server
		listeners []net.Listener
	)
	listen := func(addr string, h http.Handler) (net.Addr, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		servers = append(servers, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second})
		listeners = append(listeners, ln)
		return ln.Addr(), nil
	}
	closeAll := func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}
	mainAddr, err := listen(opts.Addr, a.Handler())
	if err != nil {
		return err
	}
	log.Info("shop open at http://"+mainAddr.String()+"/", slog.String("addr", mainAddr.String()), slog.String("database", cfg.DBPath))
	if cfg.AdminListener {
		admin, err := listen(opts.AdminAddr, a.AdminHandler())
		if err != nil {
			closeAll()
			return fmt.Errorf("-admin-addr: %w", err)
		}
		log.Info("admin endpoints (/metrics, /debug/cache, /healthz, /readyz) at http://"+admin.String()+"/",
			slog.String("admin_addr", admin.String()))
	} else {
		log.Warn("no -admin-addr: /metrics and /debug/* are served on the main port " + mainAddr.String() +
			"; set -admin-addr (or $" + envName("admin-addr") + ") to serve them on an address of their own")
	}

	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	var failed error
	waiting := len(servers)
	select {
	case failed = <-errc: // a listener failed: stop the other too
		waiting--
		log.Error("serving failed, shutting down", slog.Any("error", failed))
	case <-ctx.Done():
		log.Info("shutting down")
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	errs := []error{failed}
	var mu sync.Mutex // protects errs
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(func() {
			err := srv.Shutdown(sctx)
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	wg.Wait()
	for range waiting {
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
