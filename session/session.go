// Package session keeps dict-like web sessions in memcached (or memory)
// without losing concurrent writes.
//
// A Manager reads a signed random session ID from the request's cookie (or
// header token) and loads the record lazily: a request that never touches
// its session makes no store call, a read makes one round trip that also
// slides the idle timeout, and a request that changed the session saves it
// with a compare-and-swap, re-applying only its own changes (sets and
// deletes per key, flashes added and consumed) on top of whatever a
// concurrent request wrote meanwhile. The cookie carries only the ID (and,
// once the session is bound to a user, the user ID); the store key is a
// hash of the ID.
//
// Use it through middleware.Session, which puts the Session in the request
// context (FromContext) and saves it before the first byte of the
// response:
//
//	mgr := &session.Manager{Store: session.NewMemcacheStore(client), Keys: keys}
//	http.ListenAndServe(addr, middleware.Session(mgr)(mux))
//
//	func handler(w http.ResponseWriter, r *http.Request) {
//		s := session.FromContext(r.Context())
//		n, _ := session.Get[int](r.Context(), s, "visits")
//		s.Set("visits", n+1)
//	}
//
// Other frameworks use the entry point middleware.Session is built on:
// Manager.Begin returns the request carrying its Session and a Commit,
// whose Save the adapter calls just before the response starts (and again
// once the handler returned).
//
// # Users: where am I signed in, log out everywhere
//
// Session.Login binds a session to a user ID (renewing its ID against
// fixation). memkit then keeps, beside the sessions, two records per
// user: a list of the user's sessions (a public handle, user agent, IP and
// creation time each; bounded by MaxUserSessions, newest kept, maintained
// with compare-and-swap so that concurrent logins do not lose each other)
// and an epoch. A bound session's cookie carries the user ID, so each read
// fetches the session and its user's epoch in one round trip, and a
// session whose record names another epoch than the user's is revoked: it
// reads as empty, on its next request, in every process. Manager.RevokeUser
// (log out everywhere) and Manager.RevokeOtherSessions (everywhere but
// here) are one write each, to the epoch; Manager.RevokeSession deletes one
// session by its handle; Manager.UserSessions lists them.
//
// memcached may evict the epoch like any item: a bound session whose
// user's epoch is gone counts as revoked, never as valid (fail closed), so
// an eviction signs the user out everywhere rather than reviving revoked
// sessions. A new epoch starts at a random number, so that no session
// revoked before the eviction matches it. The user's list may be evicted
// too: the sessions it named stay valid (and revocable all at once), but
// are no longer listed.
//
// # Remember me and lifetimes
//
// Manager.Lifetime and Manager.Cookie.BrowserSession are the defaults;
// Session.SetLifetime and Session.SetPersistent change them for one
// session, so that a "remember me" login lasts 30 days in a persistent
// cookie while others end with the browser.
//
// # Header tokens
//
// With Manager.Token enabled, a request may carry its session in a header
// (Authorization: Bearer <token> by default) instead of a cookie: the
// token is what the cookie would hold, issued by Session.Token, and no
// cookie is set for such requests.
//
// # Value types
//
// Values read back with Session.Get as the Go types they were stored as,
// for bool, string, every int and uint size, float32, float64, []byte,
// time.Time, any, and slices and maps of these: a type name is stored
// beside each such value. Other values (structs, pointers, named types
// such as `type Role string`) and values stored before this release read
// back as msgpack decodes into an interface: integers as the smallest type
// that holds them, structs as maps. The generic Get decodes into the type
// asked for, whatever was stored: numbers convert when no information is
// lost (int64(5) into an int8, 2.0 into an int, 3 into a float32), and a
// value that does not fit (300 into an int8, 2.5 into an int, a string
// into an int) is ErrUndecodable.
//
// # Nothing dropped silently
//
// A session that needs a cookie (new, renewed, or with a new lifetime)
// cannot be saved once the response has started: Set and its siblings
// return ErrHeadersSent then, and the error hook hears of it. A Manager
// without Keys fails every session with ErrNoKeys unless DevRandomKeys
// allows per-process random keys.
//
// # Time to live
//
// Durations that say when something expires follow memkit's one rule: a
// negative value means never (Store.Save's ttl, IdleTimeout, Lifetime). Zero
// means never for a Store.Save ttl, no idle timeout for IdleTimeout, and
// DefaultLifetime for Lifetime. To end a session at once, Destroy it.
//
// # Stored format
//
// A record is encoded by the Manager's serializer, whose item flags name
// the codec, the compressor and the serializer's format version; inside, a
// map holds the record's own layout version ("ver", absent in records
// written before it existed, which share layout 1), the creation time and
// each value's msgpack encoding. Readers skip fields they do not know and
// treat a version they do not know as ErrUndecodable (a fresh session), so
// that during a rolling deploy no process misreads another's records, and
// every release keeps loading the records and cookies earlier ones wrote:
// testdata/stored holds them, and TestStoredSessions loads them all.
package session

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Session is one request's view of a session. Reads load the record on
// first use (hence the ctx); writes are recorded and saved by the Commit
// that Manager.Begin returned with it. Load failures do not surface in
// every call: reads then see an empty session and the error reaches the
// Manager's error hook (and Err).
//
// A Session is safe for concurrent use by the goroutines serving its
// request.
type Session struct {
	mgr *Manager

	mu          sync.Mutex // protects every field below
	id          string     // current ID; "" until a new session needs one
	cookieID    string     // the ID the request's cookie or token carried, if valid
	hadCookie   bool       // the request sent a session cookie, valid or not
	rawCookie   string     // its value (or the token), until resolved
	resolved    bool       // rawCookie was checked
	viaToken    bool       // the session travels in a header token: never a cookie
	tokenID     string     // the ID whose token Token issued
	loaded      bool       // the record was loaded (or there is none to load)
	failed      bool       // loading failed: the session will not be saved
	found       bool       // a record existed when loaded
	base        *record    // the record as loaded; nil if none
	version     uint64     // base's store version; 0 if none
	created     time.Time  // creation time of the record, once known
	ch          changes    // this request's changes
	oldKey      string     // record to delete after saving (RenewID, expiry)
	renewed     bool
	destroyed   bool
	stale       bool          // base was saved by this request; its version is unknown
	sentID      string        // the ID whose cookie this response carries ("-": expired)
	started     bool          // the response has started: no cookie can be added
	cookieDirty bool          // the cookie's attributes changed (SetLifetime, SetPersistent)
	user        string        // the user the session is bound to, from the cookie or Login
	epoch       epoch         // the user's epoch as loaded with the record
	seenDue     bool          // a bound session's last-seen time needs refreshing
	req         *http.Request // for Login's user agent and address
	errs        []error
	reported    int    // errs[:reported] were returned by a Commit's Save
	keyID       string // the ID whose store key key is
	key         string // the store key of keyID, computed once
}

// keyLocked returns the store key of the session's current ID, hashing
// the ID once per request rather than at its load and again at its save;
// s.mu is held.
func (s *Session) keyLocked() string {
	if s.keyID != s.id || s.key == "" {
		s.keyID, s.key = s.id, s.mgr.key(s.id)
	}
	return s.key
}

// resolveLocked checks the cookie's signature once; s.mu is held.
func (s *Session) resolveLocked() {
	if s.resolved {
		return
	}
	s.resolved = true
	if err := s.mgr.initErr; err != nil {
		s.loaded, s.failed = true, true
		s.err(err)
		return
	}
	if id, user := s.mgr.decodeCookie(s.rawCookie); id != "" {
		s.id, s.cookieID, s.user = id, id, user
	} else {
		s.loaded = true // a bad cookie: nothing to load
	}
	s.rawCookie = ""
}

// err records a non-nil error and returns it.
func (s *Session) err(err error) error {
	if err != nil {
		s.errs = append(s.errs, err)
	}
	return err
}

// Err returns the errors met so far loading or saving the session,
// joined, or nil.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// ID returns the session ID, making one for a new session (whose cookie
// is sent only if the session is saved). The ID is secret: it is what the
// cookie authenticates.
func (s *Session) ID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveLocked()
	if s.id == "" {
		s.id = newID()
	}
	return s.id
}

// Token returns the session's header token (see Manager.Token): what its
// cookie would hold. The session becomes a header-token session: this
// response sets no cookie for it. The token changes with the ID (RenewID,
// Login): issue it after those. It returns ErrTokensDisabled when the
// Manager does not read tokens.
func (s *Session) Token() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.mgr.Token.Enabled {
		return "", ErrTokensDisabled
	}
	s.resolveLocked()
	if s.id == "" {
		s.id = newID()
	}
	tok, err := s.mgr.encodeCookie(s.id, s.user)
	if err != nil {
		return "", err
	}
	s.viaToken, s.tokenID = true, s.id
	return tok, nil
}

// IsNew reports whether the session had no stored record when this
// request loaded it.
func (s *Session) IsNew(ctx context.Context) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	return !s.found
}

// CreatedAt returns when the session was created, or the zero time for a
// session not saved yet.
func (s *Session) CreatedAt(ctx context.Context) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	if s.ch.cleared && s.ch.created != 0 {
		return time.Unix(0, s.ch.created)
	}
	return s.created
}

// raw returns key's encoded value and type name as this request sees it;
// s.mu is held and the record loaded.
func (s *Session) raw(key string) (msgpack.RawMessage, string, bool) {
	var (
		v     msgpack.RawMessage
		typ   string
		found bool
	)
	if !s.ch.cleared && s.base != nil {
		v, found = s.base.Values[key]
		typ = s.base.Types[key]
	}
	if op := s.ch.keys[key]; op != nil {
		return op.value(v, typ, found)
	}
	return v, typ, found
}

// Get returns key's value as the Go type it was stored as, for the types
// the package doc lists under "Value types"; other values come back as
// msgpack decodes into an interface (structs as maps). Use the generic
// Get to decode into a type of your choosing.
func (s *Session) Get(ctx context.Context, key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	raw, typ, ok := s.raw(key)
	if !ok {
		return nil, false
	}
	v, err := decodeAny(raw, typ)
	if err != nil {
		s.err(fmt.Errorf("key %q: %w", key, err))
		s.resetLocked()
		return nil, false
	}
	return v, true
}

// Get returns key's value decoded into a T, converting numbers where no
// information is lost (see "Value types" in the package doc). It returns
// the zero T and false when the key is absent. A stored value that does
// not fit T (its type changed between deploys) is reported to the error
// hook as ErrUndecodable and the session is reset to a fresh, empty one.
func Get[T any](ctx context.Context, s *Session, key string) (T, bool) {
	var v T
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	raw, _, ok := s.raw(key)
	if !ok {
		return v, false
	}
	if err := decodeValue(raw, &v); err != nil {
		s.err(fmt.Errorf("key %q: %w", key, err))
		s.resetLocked()
		var zero T
		return zero, false
	}
	return v, true
}

// resetLocked turns the session into a fresh one that overwrites the
// stored record when saved, keeping only this request's own changes; s.mu
// is held.
func (s *Session) resetLocked() {
	s.ch.cleared, s.ch.created, s.ch.flashPop = true, s.mgr.clock().UnixNano(), nil
}

// Has reports whether key has a value.
func (s *Session) Has(ctx context.Context, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	_, _, ok := s.raw(key)
	return ok
}

// Keys returns the keys that have a value, sorted.
func (s *Session) Keys(ctx context.Context) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	keys := make([]string, 0)
	if !s.ch.cleared && s.base != nil {
		for k := range s.base.Values {
			if _, edited := s.ch.keys[k]; !edited {
				keys = append(keys, k)
			}
		}
	}
	for k := range s.ch.keys {
		if _, _, ok := s.raw(k); ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// lateLocked returns ErrHeadersSent, and reports it to the error hook,
// when the response has started and the session is known to need a cookie
// that can no longer be sent: the request had no valid cookie, or the
// session was destroyed or renewed since, or its record turned out to be
// gone. (A session whose cookie is valid but whose record was not loaded
// yet is only found to be gone when the handler returns; the hook hears of
// it then.) s.mu is held.
func (s *Session) lateLocked() error {
	s.resolveLocked()
	if s.mgr.initErr != nil {
		return s.mgr.initErr
	}
	if !s.started || s.viaToken {
		return nil
	}
	if s.id == "" || (s.id != s.cookieID && s.id != s.sentID) {
		return s.err(ErrHeadersSent)
	}
	return nil
}

// Set stores v under key. v is encoded at once (msgpack), so an error
// means v cannot be stored, or the session cannot be saved any more
// (ErrHeadersSent: a new session once the response has started); the
// session is unchanged then. Set makes no store call.
func (s *Session) Set(key string, v any) error {
	raw, typ, err := encodeValue(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lateLocked(); err != nil {
		return err
	}
	*s.ch.op(key) = keyOp{set: raw, setType: typ}
	return nil
}

// Delete removes key. It makes no store call.
func (s *Session) Delete(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.ch.op(key) = keyOp{del: true}
}

// Update sets key to fn(old, found), where old is key's current value
// decoded into a T (the zero T and found=false if it has none or it does
// not decode). If a concurrent request changed the session before this
// one saves, fn is applied again to the newer value, so concurrent updates
// of one key all count: increments of a counter, items appended to a
// list. fn may therefore run several times and must have no side effects.
// Update loads the session; it returns an error if fn's result cannot be
// encoded or the session can no longer be saved (ErrHeadersSent), leaving
// the session unchanged.
func Update[T any](ctx context.Context, s *Session, key string, fn func(old T, found bool) T) error {
	apply := func(old msgpack.RawMessage, found bool) (msgpack.RawMessage, string, error) {
		var v T
		if found && decodeValue(old, &v) != nil {
			var zero T
			v, found = zero, false
		}
		return encodeValue(fn(v, found))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	if err := s.lateLocked(); err != nil {
		return err
	}
	cur, _, found := s.raw(key)
	if _, _, err := apply(cur, found); err != nil {
		return err
	}
	op := s.ch.op(key)
	op.fns = append(op.fns, apply)
	return nil
}

// Clear removes every value and flash. The save replaces the record
// rather than merging, so values a concurrent request added are gone too.
// The session's user (Login), lifetime and persistence stay.
func (s *Session) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ch = changes{cleared: true, created: s.ch.created, lifetime: s.ch.lifetime, persist: s.ch.persist, bind: s.ch.bind}
}

// Flash adds a flash message v under category ("" is the default): a
// value kept until a later request reads it with Flashes. It fails as Set
// does.
func (s *Session) Flash(category string, v any) error {
	raw, typ, err := encodeValue(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lateLocked(); err != nil {
		return err
	}
	if s.ch.flashAdd == nil {
		s.ch.flashAdd = make(map[string][]flash)
	}
	s.ch.flashAdd[category] = append(s.ch.flashAdd[category], flash{raw: raw, typ: typ})
	return nil
}

// Flashes returns and removes the flash messages of category, oldest
// first, decoded as Session.Get decodes. Flashes that do not decode are
// dropped and reported to the error hook.
func (s *Session) Flashes(ctx context.Context, category string) []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	base := s.base
	if s.ch.cleared {
		base = nil
	}
	viewRec := (&changes{flashPop: s.ch.flashPop}).apply(base)
	view := viewRec.Flashes[category]
	all := make([]flash, 0, len(view))
	for i, t := range viewRec.flashTypes(category) {
		all = append(all, flash{raw: view[i], typ: t})
	}
	if len(view) > 0 {
		if s.ch.flashPop == nil {
			s.ch.flashPop = make(map[string][]msgpack.RawMessage)
		}
		s.ch.flashPop[category] = append(s.ch.flashPop[category], view...)
	}
	all = append(all, s.ch.flashAdd[category]...)
	delete(s.ch.flashAdd, category)
	out := make([]any, 0, len(all))
	for _, f := range all {
		v, err := decodeAny(f.raw, f.typ)
		if err != nil {
			s.err(fmt.Errorf("flash %q: %w", category, err))
			continue
		}
		out = append(out, v)
	}
	return out
}

// SetLifetime sets this session's absolute lifetime, counted from its
// creation (for a "remember me" login: 30 days, say). 0 restores the
// Manager's Lifetime; negative means none. The record's time to live
// and a persistent cookie's expiry follow. It returns ErrHeadersSent when
// the response has started and the cookie would need to change.
func (s *Session) SetLifetime(d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lateCookieLocked(); err != nil {
		return err
	}
	lt := int64(d)
	if d < 0 {
		lt = -1
	}
	s.ch.lifetime = &lt
	s.cookieDirty = true
	return nil
}

// SetPersistent chooses whether this session's cookie persists until the
// session's lifetime ends (Max-Age and Expires) or lasts until the
// browser closes, overriding the Manager's default
// (Cookie.BrowserSession): "remember me". It returns ErrHeadersSent when
// the response has started.
func (s *Session) SetPersistent(persistent bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.lateCookieLocked(); err != nil {
		return err
	}
	p := int8(-1)
	if persistent {
		p = 1
	}
	s.ch.persist = &p
	s.cookieDirty = true
	return nil
}

// lateCookieLocked is lateLocked for a change of the cookie itself.
func (s *Session) lateCookieLocked() error {
	if s.started && !s.viaToken {
		return s.err(ErrHeadersSent)
	}
	return nil
}

// RenewID gives the session a new ID, keeping its data, and deletes the
// record under the old ID when the session is saved. Call it when the
// user logs in (or their privileges change) to defeat session fixation;
// Login does. It returns the load error, if loading the record failed.
//
// A session bound to a user (Login) keeps its place in the user's list:
// RenewID points the list at the new ID, a store call.
func (s *Session) RenewID(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	oldKey := ""
	if s.found && s.id != "" {
		oldKey = s.mgr.key(s.id)
	}
	if err := s.renewLocked(ctx); err != nil {
		return err
	}
	if user, _, _ := s.bindingLocked(); user != "" && oldKey != "" {
		return s.err(s.mgr.rekey(ctx, user, oldKey, s.mgr.key(s.id)))
	}
	return nil
}

func (s *Session) renewLocked(ctx context.Context) error {
	s.loadLocked(ctx)
	if s.failed {
		return errors.Join(s.errs...)
	}
	if err := s.lateCookieLocked(); err != nil {
		return err
	}
	snap := s.ch.apply(s.base)
	if snap.Created == 0 {
		snap.Created = s.mgr.clock().UnixNano()
	}
	if s.found && s.id != "" {
		s.oldKey = s.mgr.key(s.id)
	}
	s.base, s.version, s.found = snap, 0, false
	s.created = time.Unix(0, snap.Created)
	s.ch, s.stale = changes{}, false
	s.id = newID()
	s.renewed = true
	return nil
}

// Destroy deletes the session's record now and expires its cookie when
// the response is committed (logout); a session bound to a user also
// leaves the user's list. The session is empty and new afterwards: values
// set later start a new session with a new ID. Errors are wrapped in
// ErrStore.
func (s *Session) Destroy(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveLocked()
	var err error
	if s.cookieID != "" {
		err = s.mgr.store.Delete(ctx, s.mgr.key(s.cookieID))
	}
	if s.user != "" && s.cookieID != "" && err == nil {
		err = s.mgr.forget(ctx, s.user, s.mgr.key(s.cookieID))
	}
	s.err(err)
	s.id, s.loaded, s.failed, s.found = "", true, false, false
	s.base, s.version, s.created = nil, 0, time.Time{}
	s.ch, s.oldKey, s.renewed, s.stale = changes{}, "", false, false
	s.user, s.epoch, s.seenDue, s.cookieDirty = "", epoch{}, false, false
	s.destroyed = true
	return err
}
