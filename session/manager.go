package session

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/memkit/memkit/serializer"
)

// Defaults for the Manager fields whose zero value means "use the default".
const (
	DefaultCookieName = "memkit_session"
	DefaultCookiePath = "/"
	DefaultSameSite   = http.SameSiteLaxMode
	DefaultLifetime   = 24 * time.Hour
	DefaultKeyPrefix  = "memkit:sess:"
	DefaultMaxRetries = 100
)

// idLen is the length in bytes of a session ID: 256 random bits.
const idLen = 32

// CookieConfig are the attributes of the session cookie. The zero value
// is a secure, HttpOnly, SameSite=Lax, persistent cookie named
// DefaultCookieName on path "/".
type CookieConfig struct {
	Name   string // 0 means DefaultCookieName
	Path   string // "" means DefaultCookiePath
	Domain string // "" means host-only
	// Insecure drops the Secure attribute so that the cookie also travels
	// over plain HTTP (local development). Secure is on by default.
	Insecure bool
	// NoHTTPOnly drops the HttpOnly attribute, letting scripts read the
	// cookie. HttpOnly is on by default.
	NoHTTPOnly bool
	// SameSite is the SameSite attribute; 0 means DefaultSameSite (Lax).
	SameSite http.SameSite
	// Partitioned sets the Partitioned attribute (CHIPS).
	Partitioned bool
	// BrowserSession makes the cookie last until the browser closes (no
	// Expires or Max-Age). By default the cookie persists until the
	// session's Lifetime ends (with no Lifetime, it is a browser-session
	// cookie either way).
	BrowserSession bool
}

// Manager holds what the sessions of an application share: the store, the
// cookie's keys and attributes, the timeouts and the error hook. Begin
// starts the session of one request; the Session loads its record lazily
// and saves this request's changes with a compare-and-swap. Set its fields
// before first use and do not change them after.
//
// A Manager is safe for concurrent use. Close it to release the default
// in-memory store.
type Manager struct {
	// Store keeps the records. nil means an in-memory store owned by the
	// Manager (MemoryStore), closed by Close.
	Store Store
	// Serializer encodes records. nil means the zero serializer.Serializer.
	Serializer *serializer.Serializer
	// Cookie configures the session cookie.
	Cookie CookieConfig
	// IdleTimeout ends a session not read for this long. Every read slides
	// it in the same round trip (get-and-touch). 0 or negative means no
	// idle timeout.
	IdleTimeout time.Duration
	// Lifetime is the absolute lifetime of a session, counted from the
	// creation time stored in its record, whatever the idle sliding does.
	// 0 means DefaultLifetime; negative means none: a session then ends
	// only by IdleTimeout (or never, without one), and its cookie lasts
	// until the browser closes. To end a session at once, Destroy it.
	Lifetime time.Duration
	// Keys are gorilla/securecookie key pairs, newest first: a hash key (32
	// or 64 bytes) and a block key (16, 24 or 32 bytes to encrypt the
	// cookie, or nil to only sign it), then older pairs still accepted
	// when decoding (key rotation); see securecookie.CodecsFromPairs. Empty
	// means random keys made on first use, so cookies do not survive a
	// restart or reach another process: set Keys in production. An empty
	// hash key or a block key of another length is a programmer error: the
	// Manager panics on first use.
	Keys [][]byte
	// KeyPrefix prefixes every store key. "" means DefaultKeyPrefix.
	KeyPrefix string
	// MaxRetries bounds how many times a save re-reads the record and
	// re-applies this request's changes after losing a compare-and-swap.
	// 0 means DefaultMaxRetries.
	MaxRetries int
	// ErrorFunc is the error hook: it gets every error met while loading
	// or saving a request's session, joined, once per request, before the
	// first byte of the response. If it writes a response, that response
	// replaces the handler's. nil means DefaultErrorFunc.
	ErrorFunc func(w http.ResponseWriter, r *http.Request, err error)

	now func() time.Time // clock seam; nil means time.Now

	initOnce sync.Once
	codecs   []securecookie.Codec
	ser      *serializer.Serializer
	store    Store
	ownStore *MemoryStore
}

// DefaultErrorFunc answers 503 Service Unavailable when Fatal(err), and
// otherwise does nothing: an undecodable record has already been replaced
// by a fresh session, and the request goes on.
func DefaultErrorFunc(w http.ResponseWriter, r *http.Request, err error) {
	if Fatal(err) {
		http.Error(w, "503 session store unavailable", http.StatusServiceUnavailable)
	}
}

// Fatal reports whether err, as given to an error hook, means the session
// could not be loaded or saved (ErrStore, or a save that lost MaxRetries
// races), rather than only a record replaced by a fresh session
// (ErrUndecodable) or changes dropped on a session that ended meanwhile
// (ErrEnded).
func Fatal(err error) bool {
	if err == nil {
		return false
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		if !errors.Is(e, ErrUndecodable) && !errors.Is(e, ErrEnded) {
			return true
		}
	}
	return false
}

// handleError calls the error hook (ErrorFunc or DefaultErrorFunc).
func (m *Manager) handleError(w http.ResponseWriter, r *http.Request, err error) {
	if m.ErrorFunc != nil {
		m.ErrorFunc(w, r, err)
		return
	}
	DefaultErrorFunc(w, r, err)
}

func (m *Manager) init() {
	m.initOnce.Do(func() {
		keys := m.Keys
		if len(keys) == 0 {
			keys = [][]byte{securecookie.GenerateRandomKey(32), securecookie.GenerateRandomKey(32)}
		}
		for i := 0; i < len(keys); i += 2 {
			if len(keys[i]) == 0 {
				panic("session: Manager.Keys: empty hash key")
			}
			if i+1 < len(keys) {
				switch len(keys[i+1]) {
				case 0, 16, 24, 32:
				default:
					panic(fmt.Sprintf("session: Manager.Keys: block key of %d bytes (want 16, 24 or 32, or nil)", len(keys[i+1])))
				}
			}
		}
		maxAge := 0 // no limit
		if lt := m.lifetime(); lt > 0 {
			maxAge = int(lt/time.Second) + 60
		}
		m.codecs = securecookie.CodecsFromPairs(keys...)
		for _, codec := range m.codecs {
			sc := codec.(*securecookie.SecureCookie)
			sc.SetSerializer(securecookie.NopEncoder{})
			sc.MaxAge(maxAge)
		}
		m.ser = m.Serializer
		if m.ser == nil {
			m.ser = &serializer.Serializer{}
		}
		m.store = m.Store
		if m.store == nil {
			m.ownStore = &MemoryStore{now: m.now}
			m.store = m.ownStore
		}
	})
}

// Close closes the in-memory store the Manager made when Store was nil.
// It does not close a Store it was given.
func (m *Manager) Close() error {
	m.init()
	if m.ownStore != nil {
		return m.ownStore.Close()
	}
	return nil
}

func (m *Manager) clock() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

// lifetime returns the absolute lifetime of sessions, 0 for none.
func (m *Manager) lifetime() time.Duration {
	switch {
	case m.Lifetime > 0:
		return m.Lifetime
	case m.Lifetime < 0:
		return 0
	}
	return DefaultLifetime
}

// expired reports whether rec's absolute lifetime has ended.
func (m *Manager) expired(rec *record) bool {
	lt := m.lifetime()
	return lt > 0 && !m.clock().Before(time.Unix(0, rec.Created).Add(lt))
}

// recordTTL returns the store TTL of rec saved at now (0: never expires),
// and false when its lifetime has already ended.
func (m *Manager) recordTTL(rec *record, now time.Time) (time.Duration, bool) {
	var ttl time.Duration // never
	if lt := m.lifetime(); lt > 0 {
		ttl = time.Unix(0, rec.Created).Add(lt).Sub(now)
		if ttl <= 0 {
			return 0, false
		}
	}
	if m.IdleTimeout > 0 && (ttl == 0 || m.IdleTimeout < ttl) {
		ttl = m.IdleTimeout
	}
	return ttl, true
}

func (m *Manager) cookieName() string {
	if m.Cookie.Name != "" {
		return m.Cookie.Name
	}
	return DefaultCookieName
}

func (m *Manager) key(id string) string {
	p := m.KeyPrefix
	if p == "" {
		p = DefaultKeyPrefix
	}
	return HashKey(p, id)
}

func (m *Manager) maxRetries() int {
	if m.MaxRetries > 0 {
		return m.MaxRetries
	}
	return DefaultMaxRetries
}

// newID returns a fresh random session ID.
func newID() string {
	var b [idLen]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic("session: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// decodeCookie returns the session ID in a cookie value, or "" when the
// value is not a cookie this Manager signed.
func (m *Manager) decodeCookie(value string) string {
	var b []byte
	if err := securecookie.DecodeMulti(m.cookieName(), value, &b, m.codecs...); err != nil || len(b) != idLen {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (m *Manager) encodeCookie(id string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		return "", fmt.Errorf("session: bad session ID: %w", err)
	}
	v, err := securecookie.EncodeMulti(m.cookieName(), b, m.codecs...)
	if err != nil {
		return "", fmt.Errorf("session: encoding cookie: %w", err)
	}
	return v, nil
}

func (m *Manager) cookie(value string) *http.Cookie {
	ck := &http.Cookie{
		Name:        m.cookieName(),
		Value:       value,
		Path:        m.Cookie.Path,
		Domain:      m.Cookie.Domain,
		Secure:      !m.Cookie.Insecure,
		HttpOnly:    !m.Cookie.NoHTTPOnly,
		SameSite:    m.Cookie.SameSite,
		Partitioned: m.Cookie.Partitioned,
	}
	if ck.Path == "" {
		ck.Path = DefaultCookiePath
	}
	if ck.SameSite == 0 {
		ck.SameSite = DefaultSameSite
	}
	return ck
}

// setCookie adds the cookie of session id, created at created, to h.
func (m *Manager) setCookie(h http.Header, id string, created time.Time) error {
	v, err := m.encodeCookie(id)
	if err != nil {
		return err
	}
	ck := m.cookie(v)
	if lt := m.lifetime(); !m.Cookie.BrowserSession && lt > 0 {
		end := created.Add(lt)
		ck.Expires = end.UTC()
		ck.MaxAge = max(int((end.Sub(m.clock())+time.Second-1)/time.Second), 1)
	}
	addCookie(h, ck)
	return nil
}

func (m *Manager) expireCookie(h http.Header) {
	ck := m.cookie("")
	ck.MaxAge = -1
	ck.Expires = time.Unix(1, 0).UTC()
	addCookie(h, ck)
}

func addCookie(h http.Header, ck *http.Cookie) {
	h.Add("Set-Cookie", ck.String())
	if !headerHasToken(h, "Vary", "Cookie") {
		h.Add("Vary", "Cookie")
	}
	const nc = `no-cache="Set-Cookie"`
	if cc := h.Get("Cache-Control"); cc == "" {
		h.Set("Cache-Control", nc)
	} else if !strings.Contains(cc, nc) {
		h.Set("Cache-Control", cc+", "+nc)
	}
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

type ctxKey struct{}

// FromContext returns the session in ctx (put there by Manager.Begin, which
// middleware.Session and the framework adapters call), or nil.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}
