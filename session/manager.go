package session

import (
	"context"

	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	crand "crypto/rand"

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
	// session's Lifetime ends.
	BrowserSession bool
}

// Manager loads and saves sessions: it reads the signed ID from the
// request's cookie, loads the record lazily from the Store, merges this
// request's changes into it with a compare-and-swap, and writes the
// cookie. Set its fields before first use and do not change them after.
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
	// it in the same round trip (get-and-touch). 0 means no idle timeout.
	IdleTimeout time.Duration
	// Lifetime is the absolute lifetime of a session, counted from the
	// creation time stored in its record, whatever the idle sliding does.
	// 0 means DefaultLifetime.
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

// HandleError calls the error hook (ErrorFunc or DefaultErrorFunc).
func (m *Manager) HandleError(w http.ResponseWriter, r *http.Request, err error) {
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
		maxAge := int(m.lifetime()/time.Second) + 60
		m.codecs = securecookie.CodecsFromPairs(keys...)
		for _, c := range m.codecs {
			sc := c.(*securecookie.SecureCookie)
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

func (m *Manager) lifetime() time.Duration {
	if m.Lifetime > 0 {
		return m.Lifetime
	}
	return DefaultLifetime
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

// Load returns the request's session without any I/O or cryptography:
// the cookie's signature is checked on the session's first use, and a
// missing, tampered or garbage cookie then gives a new, empty session that
// never looks the store up. The record is loaded on the session's first
// read.
func (m *Manager) Load(r *http.Request) *Session {
	m.init()
	s := &Session{mgr: m}
	if c, err := r.Cookie(m.cookieName()); err == nil && c.Value != "" {
		s.hadCookie = true
		s.rawCookie = c.Value // checked on first use
		return s
	}
	s.resolved, s.loaded = true, true // nothing to load
	return s
}

// Commit saves s if this request changed it and writes the cookie into h
// when the session got a new ID, was renewed or destroyed. It makes no
// store call for a session that was never touched. Setting a cookie also
// adds "Vary: Cookie" and `Cache-Control: no-cache="Set-Cookie"`.
//
// Commit may be called again to save changes made after the previous call;
// pass a nil h once the response has started: changes to a session whose
// cookie is already out are saved, a session that would need a new cookie
// is not (ErrHeadersSent).
//
// It returns the errors met loading or saving the session since the
// previous Commit, joined (nil if none); hand them to HandleError.
func (m *Manager) Commit(ctx context.Context, h http.Header, s *Session) error {
	m.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failed && (!s.ch.empty() || s.renewed) {
		m.ensureLoaded(ctx, s)
		needCookie := s.id == "" || (s.id != s.cookieID && s.id != s.sentID)
		switch {
		case s.failed:
		case h == nil && needCookie:
			s.err(ErrHeadersSent)
			s.ch, s.renewed = changes{}, false
		case s.err(m.save(ctx, s)) == nil:
			s.ch, s.renewed, s.stale = changes{}, false, true
			if needCookie {
				if err := m.setCookie(h, s); err != nil {
					s.err(err)
				} else {
					s.sentID = s.id
				}
			}
			if s.oldKey != "" {
				s.err(m.store.Delete(ctx, s.oldKey))
				s.oldKey = ""
			}
		}
	}
	if s.destroyed && s.sentID == "" && s.hadCookie && h != nil {
		m.expireCookie(h)
		s.sentID = "-" // expired
	}
	errs := s.errs[s.reported:]
	s.reported = len(s.errs)
	return errors.Join(errs...)
}

// save writes s's changes with a compare-and-swap, re-reading and
// re-applying them after each lost race; s.mu is held.
func (m *Manager) save(ctx context.Context, s *Session) error {
	m.ensureLoaded(ctx, s)
	if s.failed {
		return nil // the load error is already recorded
	}
	if s.id == "" {
		s.id = newID()
	}
	key := m.key(s.id)
	base, version := s.base, s.version
	initial := base // nil, or the snapshot RenewID took
	mustExist := version != 0 || s.stale
	for attempt := 0; ; attempt++ {
		// After a lost race, and for a second save in one request (whose
		// version is unknown), re-read the record.
		if attempt > 0 || s.stale {
			if attempt > m.maxRetries() {
				return fmt.Errorf("%w: save lost %d compare-and-swap races", ErrConflict, attempt)
			}
			if attempt > 0 {
				if err := backoff(ctx, attempt); err != nil {
					return fmt.Errorf("%w: %w", ErrStore, err)
				}
			}
			e, found, err := m.store.Load(ctx, key, 0)
			if err != nil {
				return err
			}
			if !found {
				if mustExist {
					return ErrEnded
				}
				base, version = initial, 0
			} else {
				version = e.Version
				rec, err := decodeRecord(m.ser, e.Data, e.Flags)
				if err != nil {
					s.err(err)
					rec = nil // overwrite with a fresh record
				} else if m.expired(rec) {
					return ErrEnded
				}
				base = rec
			}
		}
		now := m.clock()
		rec := s.ch.apply(base)
		if rec.Created == 0 {
			rec.Created = now.UnixNano()
		}
		ttl := time.Unix(0, rec.Created).Add(m.lifetime()).Sub(now)
		if ttl <= 0 {
			return nil // the session's lifetime ended during the request
		}
		if m.IdleTimeout > 0 && m.IdleTimeout < ttl {
			ttl = m.IdleTimeout
		}
		data, flags, err := encodeRecord(m.ser, rec)
		if err != nil {
			return fmt.Errorf("session: encoding record: %w", err)
		}
		err = m.store.Save(ctx, key, Entry{Data: data, Flags: flags, Version: version}, ttl)
		if err == nil {
			s.base, s.created = rec, time.Unix(0, rec.Created)
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
}

// backoff waits a random time growing with attempt, at most a few
// milliseconds, so that racing writers spread out.
func backoff(ctx context.Context, attempt int) error {
	limit := time.Duration(min(attempt, 20)) * 200 * time.Microsecond
	d := rand.N(limit) + time.Microsecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Manager) expired(rec *record) bool {
	return !m.clock().Before(time.Unix(0, rec.Created).Add(m.lifetime()))
}

// ensureLoaded loads s's record once; s.mu is held. Store failures mark
// the session failed (it will not be saved) and are recorded.
func (m *Manager) ensureLoaded(ctx context.Context, s *Session) {
	s.resolveLocked()
	if s.loaded {
		return
	}
	s.loaded = true
	e, found, err := m.store.Load(ctx, m.key(s.id), m.IdleTimeout)
	if err != nil {
		s.failed = true
		s.err(err)
		return
	}
	if !found {
		s.id = "" // the record is gone: a fresh session gets a fresh ID
		return
	}
	rec, err := decodeRecord(m.ser, e.Data, e.Flags)
	if err != nil {
		s.err(err)
		s.version, s.found = e.Version, true
		s.resetLocked()
		return
	}
	if m.expired(rec) {
		s.oldKey = m.key(s.id)
		s.id = ""
		return
	}
	s.base, s.version, s.found = rec, e.Version, true
	s.created = time.Unix(0, rec.Created)
}

func (m *Manager) cookie(value string) *http.Cookie {
	c := &http.Cookie{
		Name:        m.cookieName(),
		Value:       value,
		Path:        m.Cookie.Path,
		Domain:      m.Cookie.Domain,
		Secure:      !m.Cookie.Insecure,
		HttpOnly:    !m.Cookie.NoHTTPOnly,
		SameSite:    m.Cookie.SameSite,
		Partitioned: m.Cookie.Partitioned,
	}
	if c.Path == "" {
		c.Path = DefaultCookiePath
	}
	if c.SameSite == 0 {
		c.SameSite = DefaultSameSite
	}
	return c
}

func (m *Manager) setCookie(h http.Header, s *Session) error {
	v, err := m.encodeCookie(s.id)
	if err != nil {
		return err
	}
	c := m.cookie(v)
	if !m.Cookie.BrowserSession {
		end := s.created.Add(m.lifetime())
		c.Expires = end.UTC()
		c.MaxAge = max(int((end.Sub(m.clock())+time.Second-1)/time.Second), 1)
	}
	addCookie(h, c)
	return nil
}

func (m *Manager) expireCookie(h http.Header) {
	c := m.cookie("")
	c.MaxAge = -1
	c.Expires = time.Unix(1, 0).UTC()
	addCookie(h, c)
}

func addCookie(h http.Header, c *http.Cookie) {
	h.Add("Set-Cookie", c.String())
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

// NewContext returns ctx carrying s.
func NewContext(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

// FromContext returns the session in ctx (put there by
// middleware.Session), or nil.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}
