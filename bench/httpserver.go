package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// serveEnv, set in the environment, turns the bench binary (or its test
// binary) into the HTTP server of one session implementation, for the
// benchmarks driven by an external load generator: its value is the JSON
// of a serveConfig. The server prints "listening ADDR" on its standard
// output and exits when its standard input closes (or on SIGTERM).
const serveEnv = "MEMKIT_BENCH_SERVE"

// statsPath is the server's control endpoint, outside the session
// middleware: it answers a serverStats in JSON.
const statsPath = "/_bench/stats"

// serveConfig is what a server process serves.
type serveConfig struct {
	Impl    string   `json:"impl"`    // memkit, scs, gorilla or bare
	Servers []string `json:"servers"` // memcached servers
	Conns   int      `json:"conns"`   // memclient MaxConnsPerServer for memkit (0: its default)
	Clients int      `json:"clients"` // HTTP connections the load generator opens (gomemcache's idle connections)
	// CPUProfile, when set, is the file the server writes a CPU profile
	// of its whole life to.
	CPUProfile string `json:"cpuprofile,omitempty"`
}

// serverStats are a server process's counters so far.
type serverStats struct {
	RW      int64 `json:"rw"`      // /rw requests received
	Hangups int64 `json:"hangups"` // /rw requests whose client hung up before the answer (wrk does at its deadline)
	Busy    int64 `json:"busy"`    // requests being served, this one aside
	// Overlaps counts /rw requests that came while another request with
	// the same cookie was being served.
	Overlaps int64 `json:"overlaps"`
	CPU      int64 `json:"cpu_ns"`  // user+system CPU time of the process; -1 if unknown
	Mallocs  int64 `json:"mallocs"` // heap allocations
	Reads    int64 `json:"reads"`   // read system calls; -1 if unknown
	Writes   int64 `json:"writes"`  // write system calls; -1 if unknown
}

// serveIfAsked runs the server and exits when serveEnv is set; otherwise
// it returns at once. main and TestMain call it first.
func serveIfAsked() {
	v := os.Getenv(serveEnv)
	if v == "" {
		return
	}
	var sc serveConfig
	err := json.Unmarshal([]byte(v), &sc)
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err = serve(ctx, sc, os.Stdin, os.Stdout)
		stop()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench server (%s): %v\n", v, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// sessionHandler returns the handler of impl, serving /rw, /read and
// /untouched, and what releases it.
func sessionHandler(sc serveConfig) (http.Handler, func(), error) {
	switch sc.Impl {
	case "memkit":
		return memkitSessions(sc.Servers, sc.Conns)
	case "scs":
		return scsSessions(sc.Servers, sc.Clients)
	case "gorilla":
		return gorillaSessions(sc.Servers, sc.Clients)
	case bareName:
		return bareHandler(), func() {}, nil
	}
	return nil, nil, fmt.Errorf("unknown implementation %q", sc.Impl)
}

// bareName is the baseline: the same routes without sessions.
const bareName = "bare"

// bareHandler answers /rw and /read as the session handlers do (a small
// number) and /untouched with "ok", without a session: what net/http
// costs by itself.
func bareHandler() http.Handler {
	mux := http.NewServeMux()
	count := func(w http.ResponseWriter, r *http.Request) { writeCount(w, 1) }
	mux.HandleFunc("/rw", count)
	mux.HandleFunc("/read", count)
	mux.HandleFunc("/untouched", untouched)
	return mux
}

// serve serves sc's implementation on a free loopback port until stdin
// closes or ctx is done, after printing "listening ADDR" to out.
func serve(ctx context.Context, sc serveConfig, stdin io.Reader, out io.Writer) error {
	if sc.CPUProfile != "" {
		f, err := os.Create(sc.CPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	h, closeHandler, err := sessionHandler(sc)
	if err != nil {
		return err
	}
	defer closeHandler()
	var rw, hangups, busy atomic.Int64
	var serving inFlight
	top := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case statsPath:
			w.Header().Set("Content-Type", "application/json")
			st := readServerStats()
			st.RW, st.Hangups, st.Busy = rw.Load(), hangups.Load(), busy.Load()
			st.Overlaps = serving.overlapCount()
			_ = json.NewEncoder(w).Encode(st)
		case "/rw":
			busy.Add(1)
			rw.Add(1)
			cookie := r.Header.Get("Cookie")
			serving.enter(cookie)
			h.ServeHTTP(w, r)
			serving.leave(cookie)
			// The request's context is cancelled when its client hangs
			// up: a handler whose load was cancelled made no update.
			if r.Context().Err() != nil {
				hangups.Add(1)
			}
			busy.Add(-1)
		default:
			busy.Add(1)
			h.ServeHTTP(w, r)
			busy.Add(-1)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: top, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if _, err := fmt.Fprintf(out, "listening %s\n", ln.Addr()); err != nil {
		_ = srv.Close()
		return err
	}
	eof := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin) // until the parent closes it
		close(eof)
	}()
	select {
	case <-eof:
	case <-ctx.Done():
	case err := <-served:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// inFlight counts the requests being served per cookie, and those that
// came while another with the same cookie was being served.
type inFlight struct {
	mu       sync.Mutex // protects n and overlaps
	n        map[string]int
	overlaps int64
}

func (f *inFlight) enter(cookie string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = make(map[string]int)
	}
	if f.n[cookie] > 0 {
		f.overlaps++
	}
	f.n[cookie]++
}

func (f *inFlight) leave(cookie string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[cookie]--; f.n[cookie] <= 0 {
		delete(f.n, cookie)
	}
}

func (f *inFlight) overlapCount() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.overlaps
}

// readServerStats reads this process's CPU time, allocations and system
// calls.
func readServerStats() serverStats {
	st := serverStats{CPU: -1, Reads: -1, Writes: -1}
	if d, ok := selfCPU(); ok {
		st.CPU = int64(d)
	}
	if r, w, ok := syscalls(); ok {
		st.Reads, st.Writes = int64(r), int64(w)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st.Mallocs = int64(ms.Mallocs)
	return st
}
