package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/bradfitz/gomemcache/memcache"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/session"
)

// Fixed keys so that every implementation signs its cookie the same way.
var (
	benchHashKey = []byte("memkit-bench-hash-key-0123456789")
)

// sessionCases returns the session comparisons on three servers: a
// handler that reads and writes the session (a counter) and one that never
// touches it, each driven by clients concurrent HTTP clients with their own
// cookie jars. The memcached commands served are counted.
func sessionCases(clients, conns int) []benchCase {
	var cases []benchCase
	for _, path := range []string{"/rw", "/untouched"} {
		cases = append(cases, benchCase{
			name:       fmt.Sprintf("session%s/%dc", path, clients),
			goroutines: clients,
			servers:    3,
			countCalls: true,
			impls: []impl{
				{name: "memkit", setup: sessionSetup(path, clients, func(servers []string) (http.Handler, func(), error) { return memkitSessions(servers, conns) })},
				{name: "scs", setup: sessionSetup(path, clients, func(servers []string) (http.Handler, func(), error) { return scsSessions(servers, clients) })},
				{name: "gorilla", setup: sessionSetup(path, clients, func(servers []string) (http.Handler, func(), error) { return gorillaSessions(servers, clients) })},
			},
		})
	}
	return cases
}

func writeCount(w http.ResponseWriter, n int) {
	var buf [20]byte
	_, _ = w.Write(strconv.AppendInt(buf[:0], int64(n), 10))
}

func untouched(w http.ResponseWriter, r *http.Request) {
	_, _ = w.Write([]byte("ok"))
}

// memkitSessions serves /rw, /read and /untouched under
// middleware.Session with a memcached store on memclient.
func memkitSessions(servers []string, conns int) (http.Handler, func(), error) {
	c, err := memclient.NewFromConfig(memkitOpts{conns: conns}.config(servers))
	if err != nil {
		return nil, nil, err
	}
	mgr := &session.Manager{
		Store:  session.NewMemcacheStore(c),
		Keys:   [][]byte{benchHashKey, nil},
		Cookie: session.CookieConfig{Insecure: true},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/rw", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		s := session.FromContext(ctx)
		n, _ := session.Get[int](ctx, s, "n")
		if err := s.Set("n", n+1); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeCount(w, n+1)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		n, _ := session.Get[int](ctx, session.FromContext(ctx), "n")
		writeCount(w, n)
	})
	mux.HandleFunc("/untouched", untouched)
	return middleware.Session(mgr)(mux), func() { mgr.Close(); c.Close() }, nil
}

// scsDefaults is one scs.New(), whose settings every scs benchmark copies.
// scs.New starts an in-memory store with a cleanup goroutine that cannot be
// stopped without a data race (memstore sets its stop channel inside that
// goroutine), so it is made once per process rather than per benchmark.
var scsDefaults = sync.OnceValue(scs.New)

func newGomemcache(servers []string, conns int) *memcache.Client {
	c := memcache.New(servers...)
	c.MaxIdleConns = conns
	c.Timeout = time.Second
	return c
}

// scsSessions serves /rw, /read and /untouched under scs's LoadAndSave
// with a memcached store on gomemcache.
func scsSessions(servers []string, clients int) (http.Handler, func(), error) {
	c := newGomemcache(servers, clients)
	sm := new(scs.SessionManager)
	*sm = *scsDefaults()
	sm.Store = &scsStore{client: c, prefix: "scs:"}
	mux := http.NewServeMux()
	mux.HandleFunc("/rw", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		n := sm.GetInt(ctx, "n")
		sm.Put(ctx, "n", n+1)
		writeCount(w, n+1)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		writeCount(w, sm.GetInt(r.Context(), "n"))
	})
	mux.HandleFunc("/untouched", untouched)
	return sm.LoadAndSave(mux), func() { c.Close() }, nil
}

// gorillaSessions serves /rw, /read and /untouched with
// gorilla/sessions and a memcached store on gomemcache.
func gorillaSessions(servers []string, clients int) (http.Handler, func(), error) {
	c := newGomemcache(servers, clients)
	store := newGorillaStore(c, "gorilla:", benchHashKey, nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/rw", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, "gorilla_session")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		n, _ := s.Values["n"].(int)
		s.Values["n"] = n + 1
		if err := s.Save(r, w); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeCount(w, n+1)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		s, err := store.Get(r, "gorilla_session")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		n, _ := s.Values["n"].(int)
		writeCount(w, n)
	})
	mux.HandleFunc("/untouched", untouched)
	return mux, func() { c.Close() }, nil
}

// sessionSetup serves the handler over loopback HTTP and returns an op in
// which worker w, with its own cookie jar and so its own session, requests
// path. Each worker first requests /rw once to get a session. For /rw the
// op checks that the worker's counter went up by exactly one.
func sessionSetup(path string, clients int, mk func(servers []string) (http.Handler, func(), error)) setupFunc {
	return func(ctx context.Context, servers []string) (op, func(), error) {
		h, closeHandler, err := mk(servers)
		if err != nil {
			return nil, nil, err
		}
		srv := httptest.NewServer(h)
		tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, DisableCompression: true}
		closeFn := func() {
			tr.CloseIdleConnections()
			srv.Close()
			closeHandler()
		}
		hcs := make([]*http.Client, clients)
		last := make([]int, clients)
		bufs := make([]bytes.Buffer, clients)
		get := func(ctx context.Context, w int, p string) ([]byte, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+p, nil)
			if err != nil {
				return nil, err
			}
			resp, err := hcs[w].Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			b := &bufs[w]
			b.Reset()
			if _, err := b.ReadFrom(resp.Body); err != nil {
				return nil, err
			}
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("%s: %s: %s", p, resp.Status, bytes.TrimSpace(b.Bytes()))
			}
			return b.Bytes(), nil
		}
		for w := range hcs {
			jar, err := cookiejar.New(nil)
			if err != nil {
				closeFn()
				return nil, nil, err
			}
			hcs[w] = &http.Client{Jar: jar, Transport: tr, Timeout: 5 * time.Second}
			body, err := get(ctx, w, "/rw")
			if err != nil {
				closeFn()
				return nil, nil, err
			}
			if string(body) != "1" {
				closeFn()
				return nil, nil, fmt.Errorf("first request of a new session counted %q, want 1", body)
			}
			last[w] = 1
		}
		return func(ctx context.Context, w, i int) error {
			body, err := get(ctx, w, path)
			if err != nil {
				return err
			}
			if path != "/rw" {
				if string(body) != "ok" {
					return fmt.Errorf("got %q, want ok", body)
				}
				return nil
			}
			n, err := strconv.Atoi(string(body))
			if err != nil {
				return err
			}
			if n != last[w]+1 {
				err = fmt.Errorf("session counter went from %d to %d", last[w], n)
			}
			last[w] = n
			return err
		}, closeFn, nil
	}
}

// callCounter returns the total number of memcached commands served so
// far.
type callCounter func(ctx context.Context) (uint64, error)

// statsCounter counts the gets (hits and misses), sets (including cas),
// touches and deletes the servers served, from their "stats".
func statsCounter(c *memclient.Client) callCounter {
	fields := []string{"get_hits", "get_misses", "cmd_set", "cmd_touch", "delete_hits", "delete_misses"}
	return func(ctx context.Context) (uint64, error) {
		st, err := c.Stats(ctx)
		if err != nil {
			return 0, err
		}
		var total uint64
		for addr, m := range st {
			for _, f := range fields {
				v, err := strconv.ParseUint(m[f], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("stats %s of %s: %q: %w", f, addr, m[f], err)
				}
				total += v
			}
		}
		return total, nil
	}
}
