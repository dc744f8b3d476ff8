package session

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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
	// DefaultTokenHeader and DefaultTokenScheme are where header tokens
	// travel when TokenConfig leaves them empty: Authorization: Bearer.
	DefaultTokenHeader = "Authorization"
	DefaultTokenScheme = "Bearer"
	// DefaultMaxUserSessions bounds the sessions listed per user.
	DefaultMaxUserSessions = 20
	// DefaultActivityInterval is how stale a bound session's last-seen
	// time may get before a read refreshes it.
	DefaultActivityInterval = 5 * time.Minute
	// maxUserID bounds the length of a user ID, which travels in the
	// cookie.
	maxUserID = 256
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
	// Expires or Max-Age): the Manager's default, which a session
	// overrides with Session.SetPersistent ("remember me"). By default
	// the cookie persists until the session's lifetime ends (with no
	// lifetime, it is a browser-session cookie either way).
	BrowserSession bool
}

// TokenConfig lets API clients carry their session in a request header
// instead of a cookie. The token is what the cookie would hold (the
// signed, and with a block key encrypted, session ID, and the user ID of a
// bound session), issued by Session.Token; a request that carries one
// gets no cookie set, and everything else (lazy loading, merged saves,
// per-user revocation) works as with a cookie.
type TokenConfig struct {
	// Enabled makes the Manager read tokens from requests. It is off by
	// default, so that a bearer token meant for something else never
	// turns into a session.
	Enabled bool
	// Header is the request header that carries the token. "" means
	// DefaultTokenHeader (Authorization).
	Header string
	// Scheme is the word before the token in the header, as in
	// "Authorization: Bearer <token>", matched case-insensitively. ""
	// means DefaultTokenScheme (Bearer) for the Authorization header and
	// none for any other header.
	Scheme string
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
	// when decoding (key rotation); see securecookie.CodecsFromPairs.
	// Every process serving the same sessions needs the same Keys. With
	// none (and no DevRandomKeys), every session fails with ErrNoKeys,
	// which says what to do. An empty hash key or a block key of another
	// length is a programmer error: the Manager panics on first use.
	Keys [][]byte
	// DevRandomKeys, for development only, lets a Manager without Keys
	// make random keys on first use: cookies then do not survive a
	// restart or reach another process.
	DevRandomKeys bool
	// Token lets API clients send their session in a header (off by
	// default).
	Token TokenConfig
	// MaxUserSessions bounds how many sessions each user's record lists
	// (Session.Login): when a login would list more, the oldest are
	// signed out. 0 means DefaultMaxUserSessions.
	MaxUserSessions int
	// ActivityInterval is how stale the last-seen time of a session bound
	// to a user may get: a request that finds it older saves the session
	// to refresh it, so a session costs at most one write per interval
	// beyond its own changes. 0 means DefaultActivityInterval.
	ActivityInterval time.Duration
	// ClientIP returns the address recorded for a session at Login. nil
	// means the host of the request's RemoteAddr; behind a proxy, set it
	// to read the header your proxy sets.
	ClientIP func(r *http.Request) string
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
	// Observer, when set, is told of every load, save, conflict and
	// revocation (see Observer); nil costs nothing.
	Observer Observer

	now func() time.Time // clock seam; nil means time.Now

	initOnce sync.Once
	initErr  error // ErrNoKeys, when there are no keys to use
	codecs   []securecookie.Codec
	verified cookieCache // cookie values the codecs accepted
	ser      *serializer.Serializer
	store    Store
	ownStore *MemoryStore

	stats counters
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
// could not be loaded or saved (ErrStore, a save that lost MaxRetries
// races, ErrNoKeys), rather than only a record replaced by a fresh session
// (ErrUndecodable), changes dropped on a session that ended meanwhile
// (ErrEnded), or changes to a header-token session nobody could reach
// (ErrTokenNotIssued).
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
		if !errors.Is(e, ErrUndecodable) && !errors.Is(e, ErrEnded) && !errors.Is(e, ErrTokenNotIssued) {
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
			if !m.DevRandomKeys {
				m.initErr = ErrNoKeys
			}
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
		m.codecs = securecookie.CodecsFromPairs(keys...)
		for _, codec := range m.codecs {
			sc := codec.(*securecookie.SecureCookie)
			sc.SetSerializer(securecookie.NopEncoder{})
			// No age limit in the cookie: each session's lifetime, which
			// Session.SetLifetime may lengthen, counts from the creation
			// time in its record.
			sc.MaxAge(0)
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

// recLifetime returns the absolute lifetime of the session rec, 0 for
// none: its own (Session.SetLifetime), else the Manager's.
func (m *Manager) recLifetime(rec *record) time.Duration {
	switch {
	case rec == nil || rec.Lifetime == 0:
		return m.lifetime()
	case rec.Lifetime < 0:
		return 0
	}
	return time.Duration(rec.Lifetime)
}

// persistent reports whether the cookie of session rec persists.
func (m *Manager) persistent(rec *record) bool {
	switch {
	case rec != nil && rec.Persist > 0:
		return true
	case rec != nil && rec.Persist < 0:
		return false
	}
	return !m.Cookie.BrowserSession
}

// expired reports whether rec's absolute lifetime has ended.
func (m *Manager) expired(rec *record) bool {
	lt := m.recLifetime(rec)
	return lt > 0 && !m.clock().Before(time.Unix(0, rec.Created).Add(lt))
}

// recordTTL returns the store TTL of rec saved at now (0: never expires),
// and false when its lifetime has already ended.
func (m *Manager) recordTTL(rec *record, now time.Time) (time.Duration, bool) {
	var ttl time.Duration // never
	if lt := m.recLifetime(rec); lt > 0 {
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

// decodeCookie returns the session ID in a cookie value or token, and
// the user ID of a bound session, or "" when the value is not one this
// Manager signed. The payload is the 32 random bytes of the ID, followed
// by the user ID for a bound session (cookies written before binding
// existed are the ID alone).
//
// A value verified once is remembered (m.verified), so that the requests
// of a session do not each check its signature (and decrypt it) again: the
// answer depends on nothing but the value, since the keys are fixed after
// first use and the cookie carries no age limit.
func (m *Manager) decodeCookie(value string) (id, user string) {
	if c, ok := m.verified.get(value); ok {
		return c.id, c.user
	}
	var b []byte
	if err := securecookie.DecodeMulti(m.cookieName(), value, &b, m.codecs...); err != nil || len(b) < idLen || len(b) > idLen+maxUserID {
		return "", ""
	}
	id, user = base64.RawURLEncoding.EncodeToString(b[:idLen]), string(b[idLen:])
	m.verified.add(value, verifiedCookie{id: id, user: user})
	return id, user
}

// encodeCookie returns the cookie value (or token) of session id, bound
// to user unless user is "".
func (m *Manager) encodeCookie(id, user string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(b) != idLen {
		return "", fmt.Errorf("session: bad session ID")
	}
	b = append(b, user...)
	v, err := securecookie.EncodeMulti(m.cookieName(), b, m.codecs...)
	if err != nil {
		return "", fmt.Errorf("session: encoding cookie: %w", err)
	}
	m.verified.add(v, verifiedCookie{id: id, user: user})
	return v, nil
}

// cookieCacheShards and cookieCacheShardSize bound the cookie values a
// Manager remembers as verified: 4096, about 1 MB.
const (
	cookieCacheShards    = 16
	cookieCacheShardSize = 256
)

// verifiedCookie is what a verified cookie value holds.
type verifiedCookie struct{ id, user string }

// cookieCache remembers cookie values (and header tokens) that the
// Manager's codecs accepted, by their exact text, with what they hold.
// Only accepted values enter it; when a shard is full, an arbitrary entry
// makes room. The zero value is ready to use, and it is safe for
// concurrent use.
type cookieCache struct {
	shards [cookieCacheShards]struct {
		mu sync.Mutex // protects m
		m  map[string]verifiedCookie
	}
}

// cookieSeed seeds the hash that picks a cookie value's shard.
var cookieSeed = maphash.MakeSeed()

// shard picks a value's shard by a hash of it. (Its last characters will
// not do: securecookie's base64 keeps its padding, so values of one length
// end alike, and the character before the padding holds 2 or 4 bits.)
func (c *cookieCache) shard(value string) int {
	return int(maphash.String(cookieSeed, value) % cookieCacheShards)
}

func (c *cookieCache) get(value string) (verifiedCookie, bool) {
	if value == "" {
		return verifiedCookie{}, false
	}
	sh := &c.shards[c.shard(value)]
	sh.mu.Lock()
	v, ok := sh.m[value]
	sh.mu.Unlock()
	return v, ok
}

func (c *cookieCache) add(value string, v verifiedCookie) {
	if value == "" {
		return
	}
	sh := &c.shards[c.shard(value)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = make(map[string]verifiedCookie)
	}
	if _, ok := sh.m[value]; !ok && len(sh.m) >= cookieCacheShardSize {
		for k := range sh.m { // Go's map order: an arbitrary victim
			delete(sh.m, k)
			break
		}
	}
	sh.m[value] = v
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

// setCookie adds the cookie of session id, bound to user (or ""), to h;
// rec is the session's record, for its lifetime and persistence.
func (m *Manager) setCookie(h http.Header, id, user string, rec *record) error {
	v, err := m.encodeCookie(id, user)
	if err != nil {
		return err
	}
	ck := m.cookie(v)
	if lt := m.recLifetime(rec); m.persistent(rec) && lt > 0 {
		end := time.Unix(0, rec.Created).Add(lt)
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

// token returns the session token r carries in the header of
// Manager.Token, or "" when it carries none (or tokens are off).
func (m *Manager) token(r *http.Request) string {
	if !m.Token.Enabled {
		return ""
	}
	name, scheme := m.Token.Header, m.Token.Scheme
	if name == "" {
		name = DefaultTokenHeader
	}
	if scheme == "" && http.CanonicalHeaderKey(name) == DefaultTokenHeader {
		scheme = DefaultTokenScheme
	}
	v := strings.TrimSpace(r.Header.Get(name))
	if scheme == "" {
		return v
	}
	word, tok, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(word, scheme) {
		return ""
	}
	return strings.TrimSpace(tok)
}

// clientIP returns the address Login records for r.
func (m *Manager) clientIP(r *http.Request) string {
	if m.ClientIP != nil {
		return m.ClientIP(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (m *Manager) maxUserSessions() int {
	if m.MaxUserSessions > 0 {
		return m.MaxUserSessions
	}
	return DefaultMaxUserSessions
}

func (m *Manager) activityInterval() time.Duration {
	if m.ActivityInterval > 0 {
		return m.ActivityInterval
	}
	return DefaultActivityInterval
}

type ctxKey struct{}

// FromContext returns the session in ctx (put there by Manager.Begin, which
// middleware.Session and the framework adapters call), or nil.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

// Stats are a Manager's counters since it was made, for metrics: an
// exporter reads them with Manager.Stats.
type Stats struct {
	// Loads counts session records read (a request's first read of its
	// session, found or not).
	Loads int64
	// Saves counts session records written.
	Saves int64
	// Conflicts counts saves that lost a compare-and-swap to a concurrent
	// request and merged this request's changes into its record to try
	// again.
	Conflicts int64
	// Revoked counts requests whose session was found revoked (its user's
	// epoch moved on, or was evicted) and read as empty.
	Revoked int64
	// Revocations counts revocations made: RevokeSession, RevokeUser and
	// RevokeOtherSessions calls that revoked something.
	Revocations int64
}

// counters are the atomics behind Stats.
type counters struct {
	loads, saves, conflicts, revoked, revocations atomic.Int64
}

// Stats returns the Manager's counters. It is safe to call at any time.
func (m *Manager) Stats() Stats {
	return Stats{
		Loads:       m.stats.loads.Load(),
		Saves:       m.stats.saves.Load(),
		Conflicts:   m.stats.conflicts.Load(),
		Revoked:     m.stats.revoked.Load(),
		Revocations: m.stats.revocations.Load(),
	}
}
