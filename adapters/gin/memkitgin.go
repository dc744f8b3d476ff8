// Package memkitgin brings memkit's sessions to the gin web framework, in
// two ways:
//
//   - Sessions is gin middleware for memkit's own sessions
//     (session.Manager): lazy loads, merged concurrent writes, per-user
//     revocation, header tokens. It saves the session before gin writes
//     the response, so that a new session's cookie goes out with it.
//     Handlers find the session with Default (or session.FromContext on
//     c.Request.Context()).
//   - Store is a gin-contrib/sessions store on memcached, for apps written
//     against gin-contrib/sessions: sessions.Sessions("name", store).
//
// This package is a module of its own, so that memkit's core brings no
// framework into a program that does not use one.
package memkitgin

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"

	ginsessions "github.com/gin-contrib/sessions"
	"github.com/gin-gonic/gin"
	"github.com/memkit/memkit/adapters/gorillastore"
	"github.com/memkit/memkit/session"
)

// Sessions returns gin middleware that gives each request a lazily loaded
// memkit session (Default) and saves it just before gin writes the
// response's header, or once the handlers have returned when none wrote
// anything. A handler that never touches its session costs no store call.
//
// When loading or saving fails, mgr's error hook (Manager.ErrorFunc) runs
// before the response starts; if it writes a response (the default hook
// answers 503 when the store is down), what the handlers write afterwards
// is discarded. Changes made after the response started are saved once the
// handlers return if the session's cookie is already out; on a new session
// Set returns session.ErrHeadersSent then.
func Sessions(mgr *session.Manager) gin.HandlerFunc {
	return func(c *gin.Context) {
		r, cm := mgr.Begin(c.Writer, c.Request)
		c.Request = r
		// A client that hangs up must not undo what the handlers did.
		w := &writer{ResponseWriter: c.Writer, cm: cm, ctx: context.WithoutCancel(r.Context())}
		c.Writer = w
		c.Next()
		if !w.save() {
			_ = cm.Save(w.ctx) // what changed after the response started
		}
	}
}

// Default returns the request's memkit session (Sessions must be in the
// chain), or nil.
func Default(c *gin.Context) *session.Session {
	return session.FromContext(c.Request.Context())
}

// writer saves the session before gin sends the header. gin's own
// WriteHeader only records the status; the header goes out with
// WriteHeaderNow, the first Write, a Flush or a Hijack.
type writer struct {
	gin.ResponseWriter
	cm  *session.Commit
	ctx context.Context

	once    sync.Once
	replace bool // the error hook wrote the response: drop the handlers'
}

// save saves the session the first time and reports whether this call did.
func (w *writer) save() (first bool) {
	w.once.Do(func() {
		first = true
		_ = w.cm.Save(w.ctx)
		w.replace = w.cm.Replaced()
	})
	return first
}

func (w *writer) WriteHeader(code int) {
	if !w.replace {
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *writer) WriteHeaderNow() {
	w.save()
	if !w.replace {
		w.ResponseWriter.WriteHeaderNow()
	}
}

func (w *writer) Write(b []byte) (int, error) {
	w.save()
	if w.replace {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *writer) WriteString(s string) (int, error) {
	w.save()
	if w.replace {
		return len(s), nil
	}
	return w.ResponseWriter.WriteString(s)
}

func (w *writer) Flush() {
	w.save()
	if !w.replace {
		w.ResponseWriter.Flush()
	}
}

func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.save()
	return w.ResponseWriter.Hijack()
}

// Unwrap returns gin's writer, for http.ResponseController.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Store is a gin-contrib/sessions store on memcached: gorillastore.Store
// (the cookie carries a signed, optionally encrypted, random ID; the values
// live in memcached under a hash of it; the last write wins) with the
// Options method gin-contrib/sessions asks for. Create it with NewStore.
// It is safe for concurrent use.
type Store struct {
	*gorillastore.Store
}

var _ ginsessions.Store = (*Store)(nil)

// NewStore returns a Store on ms whose cookies are signed and optionally
// encrypted with keyPairs (see gorillastore.New).
func NewStore(ms *session.MemcacheStore, keyPairs ...[]byte) *Store {
	return &Store{Store: gorillastore.New(ms, keyPairs...)}
}

// Options sets the cookie options of new sessions, as gin-contrib/sessions'
// stores do; MaxAge also bounds the age of the signed ID.
func (s *Store) Options(o ginsessions.Options) {
	s.Store.Options = o.ToGorillaOptions()
	s.Store.MaxAge(o.MaxAge)
}
