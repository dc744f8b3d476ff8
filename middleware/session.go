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
// request's context (session.FromContext) and commits it before the first
// byte of the response is written, or when the handler returns.
//
// A request that never touches its session makes no store call. Changes
// made after the response started are saved when the handler returns, if
// the session's cookie is already out (see session.Manager.Commit). When
// loading or saving failed, mgr's error hook (Manager.ErrorFunc) runs
// before the response starts; if it writes a response, the handler's
// status, headers and body are discarded. With the default hook a
// handler that touched the session while the store was down gets 503,
// and a handler that did not runs normally.
//
// The ResponseWriter passed to the handler has Unwrap, so
// http.ResponseController's Flush, Hijack, SetReadDeadline and the like
// keep working; Flush and Hijack commit the session first.
func Session(mgr *session.Manager) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := mgr.Load(r)
			r = r.WithContext(session.NewContext(r.Context(), s))
			sw := &sessionWriter{ResponseWriter: w, mgr: mgr, s: s, r: r}
			next.ServeHTTP(sw, r)
			if !sw.commit() {
				// Changes made after the response started.
				if err := mgr.Commit(context.WithoutCancel(r.Context()), nil, s); err != nil {
					mgr.HandleError(discardWriter{}, r, err)
				}
			}
		})
	}
}

// sessionWriter commits the session before anything reaches the client.
type sessionWriter struct {
	http.ResponseWriter
	mgr *session.Manager
	s   *session.Session
	r   *http.Request

	once    sync.Once
	replace bool // the error hook wrote the response: drop the handler's
}

// commit commits the session the first time and reports whether this
// call did.
func (w *sessionWriter) commit() (first bool) {
	w.once.Do(func() {
		first = true
		// A client that hangs up must not undo what the handler did: the
		// save runs to completion, bounded by the store's own timeouts.
		err := w.mgr.Commit(context.WithoutCancel(w.r.Context()), w.ResponseWriter.Header(), w.s)
		if err == nil {
			return
		}
		tw := &trackingWriter{ResponseWriter: w.ResponseWriter}
		w.mgr.HandleError(tw, w.r, err)
		w.replace = tw.wrote
	})
	return first
}

func (w *sessionWriter) WriteHeader(code int) {
	w.commit()
	if w.replace {
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *sessionWriter) Write(b []byte) (int, error) {
	w.commit()
	if w.replace {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Flush commits the session and flushes, for http.Flusher users.
func (w *sessionWriter) Flush() {
	_ = w.FlushError()
}

// FlushError commits the session and flushes; http.ResponseController
// calls it.
func (w *sessionWriter) FlushError() error {
	w.commit()
	if w.replace {
		return nil
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack commits the session (its data is saved; a cookie can no longer
// be sent) and hijacks the connection.
func (w *sessionWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.commit()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the wrapped ResponseWriter, for http.ResponseController.
func (w *sessionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// trackingWriter notes whether the error hook wrote a response.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// discardWriter receives what the error hook writes once the response has
// started.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}
