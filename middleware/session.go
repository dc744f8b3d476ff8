package middleware

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"

	"github.com/memkit/memkit/session"
)

// Session returns middleware that puts a lazily loaded session in each
// request's context (session.FromContext) and saves it before the first
// byte of the response is written, or when the handler returns. It is built
// on session.Manager.Begin, the entry point framework adapters use too.
//
// A request that never touches its session makes no store call. Changes
// made after the response started are saved when the handler returns, if
// the session's cookie is already out (see session.Commit.Save). When
// loading or saving failed, mgr's error hook (Manager.ErrorFunc) runs
// before the response starts; if it writes a response, the handler's
// status, headers and body are discarded. With the default hook a
// handler that touched the session while the store was down gets 503,
// and a handler that did not runs normally.
//
// The ResponseWriter passed to the handler has Unwrap, so
// http.ResponseController's Flush, Hijack, SetReadDeadline and the like
// keep working; Flush and Hijack save the session first.
func Session(mgr *session.Manager) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, cm := mgr.Begin(w, r)
			// A client that hangs up must not undo what the handler did:
			// the save runs to completion, bounded by the store's own
			// timeouts.
			sw := &sessionWriter{ResponseWriter: w, cm: cm, ctx: context.WithoutCancel(r.Context())}
			next.ServeHTTP(sw, r)
			if !sw.save() {
				// The response had started: save what changed since.
				_ = cm.Save(sw.ctx)
			}
		})
	}
}

// sessionWriter saves the session before anything reaches the client.
type sessionWriter struct {
	http.ResponseWriter
	cm  *session.Commit
	ctx context.Context // for the saves: the request's, without its cancellation

	once    sync.Once
	replace bool // the error hook wrote the response: drop the handler's
}

// save saves the session the first time and reports whether this call
// did.
func (w *sessionWriter) save() (first bool) {
	w.once.Do(func() {
		first = true
		_ = w.cm.Save(w.ctx)
		w.replace = w.cm.Replaced()
	})
	return first
}

func (w *sessionWriter) WriteHeader(code int) {
	w.save()
	if w.replace {
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *sessionWriter) Write(b []byte) (int, error) {
	w.save()
	if w.replace {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush saves the session and flushes, for http.Flusher users.
func (w *sessionWriter) Flush() {
	_ = w.FlushError()
}

// FlushError saves the session and flushes; http.ResponseController
// calls it.
func (w *sessionWriter) FlushError() error {
	w.save()
	if w.replace {
		return nil
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack saves the session (its data is saved; a cookie can no longer
// be sent) and hijacks the connection.
func (w *sessionWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.save()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
