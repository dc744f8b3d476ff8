// Package gorillastore is a gorilla/sessions Store backed by memkit's
// memcached store, a drop-in replacement for sessions.CookieStore or
// FilesystemStore in existing apps.
//
// The cookie carries only a random 256-bit ID signed (optionally
// encrypted) with securecookie; the values live in memcached, gob-encoded
// as gorilla/sessions encodes them (register custom types with
// gob.Register), under a key derived from a hash of the ID.
//
// Saves follow gorilla/sessions' semantics: the whole session is written
// and the last write wins. Use session.Manager for sessions that merge
// concurrent changes.
//
// With echo, echo-contrib/session takes this Store as it is. gin-contrib/
// sessions wants a store whose Options is a method rather than a field:
// use memkitgin.Store (github.com/memkit/memkit/adapters/gin), which wraps
// this one.
package gorillastore

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/memkit/memkit/session"
)

// Defaults for the Store fields whose zero value means "use the default".
const (
	DefaultKeyPrefix = "memkit:gorilla:"
	DefaultMaxAge    = 86400 * 30 // seconds, as sessions.CookieStore
)

// ErrNotFound is returned by New when the cookie is valid but its session
// is gone from memcached (expired or deleted); the session returned is new.
var ErrNotFound = errors.New("gorillastore: session not found")

// Store implements sessions.Store on a session.MemcacheStore. Set its
// fields before first use. It is safe for concurrent use.
type Store struct {
	// Codecs sign (and optionally encrypt) the ID in the cookie.
	Codecs []securecookie.Codec
	// Options are the default cookie options of new sessions.
	Options *sessions.Options
	// KeyPrefix prefixes every memcached key. "" means DefaultKeyPrefix.
	KeyPrefix string

	store *session.MemcacheStore
}

var _ sessions.Store = (*Store)(nil)

// New returns a Store on ms whose cookies are signed and optionally
// encrypted with keyPairs (hash key, block key, then older pairs for
// rotation; see securecookie.CodecsFromPairs). Cookies default to path
// "/", DefaultMaxAge, HttpOnly, Secure and SameSite=Lax.
func New(ms *session.MemcacheStore, keyPairs ...[]byte) *Store {
	s := &Store{
		Codecs: securecookie.CodecsFromPairs(keyPairs...),
		Options: &sessions.Options{
			Path:     "/",
			MaxAge:   DefaultMaxAge,
			HttpOnly: true,
			Secure:   true,
			SameSite: http.SameSiteLaxMode,
		},
		store: ms,
	}
	s.MaxAge(DefaultMaxAge)
	return s
}

// MaxAge sets the maximum age of new sessions, their cookies and the
// signed IDs they carry, in seconds.
func (s *Store) MaxAge(age int) {
	s.Options.MaxAge = age
	for _, c := range s.Codecs {
		if sc, ok := c.(*securecookie.SecureCookie); ok {
			sc.MaxAge(age)
		}
	}
}

func (s *Store) key(id string) string {
	p := s.KeyPrefix
	if p == "" {
		p = DefaultKeyPrefix
	}
	return session.HashKey(p, id)
}

// Get returns the named session, cached in the request's registry.
func (s *Store) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(s, name)
}

// New returns the named session loaded from memcached, or a new one. Like
// gorilla's stores it returns a usable new session together with an error
// when the cookie does not decode (a securecookie error), the session is
// gone (ErrNotFound), or memcached fails (session.ErrStore).
func (s *Store) New(r *http.Request, name string) (*sessions.Session, error) {
	sess := sessions.NewSession(s, name)
	opts := *s.Options
	sess.Options = &opts
	sess.IsNew = true
	c, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	var id string
	if err := securecookie.DecodeMulti(name, c.Value, &id, s.Codecs...); err != nil {
		return sess, err
	}
	e, found, err := s.store.Load(r.Context(), s.key(id), 0)
	if err != nil {
		return sess, err
	}
	if !found {
		return sess, ErrNotFound
	}
	values := make(map[any]any)
	if err := (securecookie.GobEncoder{}).Deserialize(e.Data, &values); err != nil {
		return sess, fmt.Errorf("%w: %w", session.ErrUndecodable, err)
	}
	sess.ID, sess.Values, sess.IsNew = id, values, false
	return sess, nil
}

// Save writes the session to memcached and its cookie to w. A session
// whose Options.MaxAge is negative or zero is deleted and its cookie
// expired.
func (s *Store) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	ctx := r.Context()
	if sess.Options.MaxAge <= 0 {
		if sess.ID != "" {
			if err := s.store.Delete(ctx, s.key(sess.ID)); err != nil {
				return err
			}
		}
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", sess.Options))
		return nil
	}
	if sess.ID == "" {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		sess.ID = base64.RawURLEncoding.EncodeToString(b[:])
	}
	data, err := (securecookie.GobEncoder{}).Serialize(sess.Values)
	if err != nil {
		return fmt.Errorf("gorillastore: encoding values: %w", err)
	}
	ttl := time.Duration(sess.Options.MaxAge) * time.Second
	if err := s.store.Set(ctx, s.key(sess.ID), session.Entry{Data: data}, ttl); err != nil {
		return err
	}
	encoded, err := securecookie.EncodeMulti(sess.Name(), sess.ID, s.Codecs...)
	if err != nil {
		return err
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, sess.Options))
	return nil
}
