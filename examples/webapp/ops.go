package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"
)

// What an operator runs the shop with: health checks, /metrics, the
// admin routes on a listener of their own, and the access log.

// ReadyTimeout bounds the memcached ping of GET /readyz.
const ReadyTimeout = time.Second

// routes builds the main and admin listeners' handlers around the shop's
// routes.
func (a *app) routes(shop http.Handler) {
	admin := http.NewServeMux()
	admin.HandleFunc("GET /debug/cache", a.debugCache)
	admin.Handle("GET /metrics", a.metricsHandler())
	if a.obs.Traces != nil {
		admin.Handle("GET /debug/traces", a.obs.Traces)
	}

	main := http.NewServeMux()
	main.HandleFunc("GET /healthz", healthz)
	main.HandleFunc("GET /readyz", a.readyz)
	if !a.adminListener {
		main.Handle("/metrics", admin)
		main.Handle("/debug/", admin)
	}
	main.Handle("/", shop)

	adm := http.NewServeMux()
	adm.HandleFunc("GET /healthz", healthz)
	adm.HandleFunc("GET /readyz", a.readyz)
	adm.Handle("/", admin)

	wrap := a.obs.Wrap
	if wrap == nil {
		wrap = func(h http.Handler) http.Handler { return h }
	}
	a.handler = wrap(accessLog(a.log, "main", main))
	a.adminHandler = wrap(accessLog(a.log, "admin", adm))
}

// healthz is GET /healthz: the process is up and serving.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readiness is the body of GET /readyz.
type readiness struct {
	Ready   bool              `json:"ready"`
	Mode    string            `json:"mode"` // "memcached" or "in-memory"
	Note    string            `json:"note,omitempty"`
	Servers []serverReadiness `json:"servers"`
}

// serverReadiness is one server's answer to a ping.
type serverReadiness struct {
	Addr   string `json:"addr"`
	Gutter bool   `json:"gutter,omitempty"`
	// Answered says the server answered the ping; RTTSeconds is how long
	// that took.
	Answered   bool    `json:"answered"`
	RTTSeconds float64 `json:"rtt_seconds,omitempty"`
	Error      string  `json:"error,omitempty"`
	// MarkedDown says the client has the server marked down (it routes
	// around it until a probe finds it back).
	MarkedDown bool `json:"marked_down,omitempty"`
}

// readyz is GET /readyz: 200 while any memcached server answers a ping,
// 503 when none does, and either way a JSON body naming each server's
// state. In the in-memory mode there is nothing to wait for: 200.
func (a *app) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if a.client == nil {
		writeJSON(w, http.StatusOK, readiness{Ready: true, Mode: "in-memory", Servers: []serverReadiness{},
			Note: "no memcached: the shop runs in its in-memory mode and needs nothing else"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
	defer cancel()
	pings, err := a.client.Ping(ctx)
	if pings == nil && err != nil {
		writeJSON(w, http.StatusServiceUnavailable, readiness{Mode: "memcached", Servers: []serverReadiness{}, Note: err.Error()})
		return
	}
	status := map[string]struct{ up, gutter bool }{}
	for _, ss := range a.client.ServerStatus() {
		status[ss.Addr] = struct{ up, gutter bool }{ss.Up, ss.Gutter}
	}
	out := readiness{Mode: "memcached", Servers: make([]serverReadiness, 0, len(pings))}
	for _, p := range pings {
		st := status[p.Addr]
		sr := serverReadiness{Addr: p.Addr, Gutter: st.gutter, Answered: p.Err == nil, MarkedDown: !st.up}
		if p.Err == nil {
			out.Ready = true
			sr.RTTSeconds = p.RTT.Seconds()
		} else {
			sr.Error = p.Err.Error()
		}
		out.Servers = append(out.Servers, sr)
	}
	code := http.StatusOK
	if !out.Ready {
		code = http.StatusServiceUnavailable
		out.Note = "no memcached server answers"
	}
	writeJSON(w, code, out)
}

// metricsHandler serves GET /metrics: the exporter's handler, or a 404
// that says none is wired.
func (a *app) metricsHandler() http.Handler {
	if a.obs.Metrics != nil {
		return a.obs.Metrics
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("no metrics exporter is wired into this shop (see newObservability in examples/webapp/observability.go)\n"))
	})
}

// accessLog logs every request to h once it is answered: its method, its
// path (never the query string, which may carry secrets, nor cookies or
// headers), its status, the bytes of its body and how long it took.
func accessLog(log *slog.Logger, listener string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &loggedWriter{ResponseWriter: w}
		defer func() {
			status := lw.status
			if status == 0 {
				status = http.StatusOK // nothing written: net/http answers 200
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelWarn
			}
			path := r.URL.Path
			if len(path) > 200 {
				path = path[:200] + "..."
			}
			log.LogAttrs(r.Context(), level, "request",
				slog.String("listener", listener),
				slog.String("method", r.Method),
				slog.String("path", path),
				slog.Int("status", status),
				slog.Int64("bytes", lw.bytes),
				slog.Duration("duration", time.Since(start)))
		}()
		h.ServeHTTP(lw, r)
	})
}

// loggedWriter notes the status and body size of a response.
type loggedWriter struct {
	http.ResponseWriter
	status int   // the final status; 0 before it is written
	bytes  int64 // body bytes written
}

func (w *loggedWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 { // 1xx are informational
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggedWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Flush flushes the response, for http.Flusher users.
func (w *loggedWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *loggedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
