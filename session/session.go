// Package session keeps dict-like web sessions in memcached (or memory)
// without losing concurrent writes.
//
// A Manager reads a signed random session ID from the request's cookie and
// loads the record lazily: a request that never touches its session makes
// no store call, a read makes one round trip that also slides the idle
// timeout, and a request that changed the session saves it with a
// compare-and-swap, re-applying only its own changes (sets and deletes per
// key, flashes added and consumed) on top of whatever a concurrent request
// wrote meanwhile. The cookie carries only the ID; the store key is a hash
// of it.
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
	"slices"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Session is one request's view of a session. Reads load the record on
// first use (hence the ctx); writes are recorded and saved by the Commit
// that Manager.Begin returned with it. Load failures do not surface in every call: reads then
// see an empty session and the error reaches the Manager's error hook (and
// Err).
//
// A Session is safe for concurrent use by the goroutines serving its
// request.
type Session struct {
	mgr *Manager

	mu        sync.Mutex // protects every field below
	id        string     // current ID; "" until a new session needs one
	cookieID  string     // the ID the request's cookie carried, if valid
	hadCookie bool       // the request sent a session cookie, valid or not
	rawCookie string     // its value, until resolved
	resolved  bool       // rawCookie was checked
	loaded    bool       // the record was loaded (or there is none to load)
	failed    bool       // loading failed: the session will not be saved
	found     bool       // a record existed when loaded
	base      *record    // the record as loaded; nil if none
	version   uint64     // base's store version; 0 if none
	created   time.Time  // creation time of the record, once known
	ch        changes    // this request's changes
	oldKey    string     // record to delete after saving (RenewID, expiry)
	renewed   bool
	destroyed bool
	stale     bool   // base was saved by this request; its version is unknown
	sentID    string // the ID whose cookie this response carries ("-": expired)
	errs      []error
	reported  int // errs[:reported] were returned by a Commit's Save
}

// resolveLocked checks the cookie's signature once; s.mu is held.
func (s *Session) resolveLocked() {
	if s.resolved {
		return
	}
	s.resolved = true
	if id := s.mgr.decodeCookie(s.rawCookie); id != "" {
		s.id, s.cookieID = id, id
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

// raw returns key's encoded value as this request sees it; s.mu is held
// and the record loaded.
func (s *Session) raw(key string) (msgpack.RawMessage, bool) {
	var (
		v     msgpack.RawMessage
		found bool
	)
	if !s.ch.cleared && s.base != nil {
		v, found = s.base.Values[key]
	}
	if op := s.ch.keys[key]; op != nil {
		return op.value(v, found)
	}
	return v, found
}

// Get returns key's value decoded as msgpack decodes into an interface:
// integers come back as the smallest fitting type, structs as maps. Use
// the generic Get to decode into a concrete type.
func (s *Session) Get(ctx context.Context, key string) (any, bool) {
	var v any
	ok := get(ctx, s, key, &v)
	return v, ok
}

// Get returns key's value decoded into a T. It returns the zero T and
// false when the key is absent. A stored value that does not decode into
// T (its type changed between deploys) is reported to the error hook as
// ErrUndecodable and the session is reset to a fresh, empty one.
func Get[T any](ctx context.Context, s *Session, key string) (T, bool) {
	var v T
	if !get(ctx, s, key, &v) {
		var zero T
		return zero, false
	}
	return v, true
}

func get(ctx context.Context, s *Session, key string, dst any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	raw, ok := s.raw(key)
	if !ok {
		return false
	}
	if err := decodeValue(raw, dst); err != nil {
		s.err(fmt.Errorf("key %q: %w", key, err))
		s.resetLocked()
		return false
	}
	return true
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
	_, ok := s.raw(key)
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
		if _, ok := s.raw(k); ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Set stores v under key. v is encoded at once (msgpack), so an error
// means v cannot be stored; the session is unchanged then. Set makes no
// store call.
func (s *Session) Set(key string, v any) error {
	raw, err := encodeValue(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.ch.op(key) = keyOp{set: raw}
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
// encoded, leaving the session unchanged.
func Update[T any](ctx context.Context, s *Session, key string, fn func(old T, found bool) T) error {
	apply := func(old msgpack.RawMessage, found bool) (msgpack.RawMessage, error) {
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
	cur, found := s.raw(key)
	if _, err := apply(cur, found); err != nil {
		return err
	}
	op := s.ch.op(key)
	op.fns = append(op.fns, apply)
	return nil
}

// Clear removes every value and flash. The save replaces the record
// rather than merging, so values a concurrent request added are gone too.
func (s *Session) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ch = changes{cleared: true, created: s.ch.created}
}

// Flash adds a flash message v under category ("" is the default): a
// value kept until a later request reads it with Flashes.
func (s *Session) Flash(category string, v any) error {
	raw, err := encodeValue(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch.flashAdd == nil {
		s.ch.flashAdd = make(map[string][]msgpack.RawMessage)
	}
	s.ch.flashAdd[category] = append(s.ch.flashAdd[category], raw)
	return nil
}

// Flashes returns and removes the flash messages of category, oldest
// first, decoded as Get decodes. Flashes that do not decode are dropped
// and reported to the error hook.
func (s *Session) Flashes(ctx context.Context, category string) []any {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	base := s.base
	if s.ch.cleared {
		base = nil
	}
	view := (&changes{flashPop: s.ch.flashPop}).apply(base).Flashes[category]
	own := s.ch.flashAdd[category]
	if len(view) > 0 {
		if s.ch.flashPop == nil {
			s.ch.flashPop = make(map[string][]msgpack.RawMessage)
		}
		s.ch.flashPop[category] = append(s.ch.flashPop[category], view...)
	}
	delete(s.ch.flashAdd, category)
	all := append(view, own...)
	out := make([]any, 0, len(all))
	for _, raw := range all {
		var v any
		if err := decodeValue(raw, &v); err != nil {
			s.err(fmt.Errorf("flash %q: %w", category, err))
			continue
		}
		out = append(out, v)
	}
	return out
}

// RenewID gives the session a new ID, keeping its data, and deletes the
// record under the old ID when the session is saved. Call it when the
// user logs in (or their privileges change) to defeat session fixation.
// It returns the load error, if loading the record failed.
func (s *Session) RenewID(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	if s.failed {
		return errors.Join(s.errs...)
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
// the response is committed (logout). The session is empty and new
// afterwards: values set later start a new session with a new ID.
// Errors are wrapped in ErrStore.
func (s *Session) Destroy(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolveLocked()
	var err error
	if s.cookieID != "" {
		err = s.mgr.store.Delete(ctx, s.mgr.key(s.cookieID))
	}
	s.err(err)
	s.id, s.loaded, s.failed, s.found = "", true, false, false
	s.base, s.version, s.created = nil, 0, time.Time{}
	s.ch, s.oldKey, s.renewed, s.stale = changes{}, "", false, false
	s.destroyed = true
	return err
}
