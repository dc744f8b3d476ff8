package session

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Begin starts the session of one request, for middleware.Session and
// framework adapters. It returns r with the request's Session in its
// context (FromContext) and the Commit that saves it. Begin does no I/O
// and no cryptography: the cookie's signature is checked on the session's
// first use, its record is loaded on its first read, and a missing,
// tampered or garbage cookie gives a new, empty session that never looks
// the store up.
//
// The caller must call the Commit's Save just before the response starts
// (its status line, first byte or first flush), so that a new session's
// cookie goes out with it, and again once the handler has returned, to
// save what changed after the response started.
func (m *Manager) Begin(w http.ResponseWriter, r *http.Request) (*http.Request, *Commit) {
	m.init()
	// One allocation for both.
	sc := new(struct {
		s  Session
		cm Commit
	})
	s := &sc.s
	s.mgr, s.req = m, r
	if tok := m.token(r); tok != "" {
		s.viaToken = true
		s.rawCookie = tok // checked on first use
	} else if ck, err := r.Cookie(m.cookieName()); err == nil && ck.Value != "" {
		s.hadCookie = true
		s.rawCookie = ck.Value // checked on first use
	} else {
		// Nothing to load. Without keys, the first use still fails.
		s.resolved, s.loaded = m.initErr == nil, true
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, s))
	sc.cm.s, sc.cm.w, sc.cm.r = s, w, r
	return r, &sc.cm
}

// Commit saves one request's session: what Manager.Begin returns besides
// the request. It is safe for concurrent use.
type Commit struct {
	s *Session
	w http.ResponseWriter
	r *http.Request

	mu       sync.Mutex // protects started and replaced
	started  bool       // Save ran once: the response has started since
	replaced bool       // the error hook wrote the response
}

// Session returns the request's session, as FromContext does.
func (cm *Commit) Session() *Session { return cm.s }

// Save saves the session if this request changed it (a session never
// touched costs no store call) and, the first time, adds the session's
// cookie to the response's header when it got a new ID, was renewed or
// was destroyed (with "Vary: Cookie" and `Cache-Control:
// no-cache="Set-Cookie"`). Call it the first time just before the response
// starts; a later call, once the handler has returned, saves the changes
// made since: a session whose cookie already went out is saved, one that
// would need a new cookie is not (ErrHeadersSent).
//
// Errors met loading or saving go to the Manager's error hook (ErrorFunc)
// once each: at the first Save with the request's ResponseWriter, so that
// the hook may answer instead of the handler (see Replaced), later with a
// writer that discards what the hook writes. Save also returns them,
// joined (nil if none). A client that hangs up must not undo what the
// handler did: pass a ctx that outlives the request's
// (context.WithoutCancel), bounded by the store's own timeouts.
func (cm *Commit) Save(ctx context.Context) error {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	var h http.Header
	if !cm.started {
		h = cm.w.Header()
	}
	err := cm.s.commit(ctx, h)
	if err != nil {
		if cm.started {
			cm.s.mgr.handleError(discardWriter{}, cm.r, err)
		} else {
			tw := &trackingWriter{ResponseWriter: cm.w}
			cm.s.mgr.handleError(tw, cm.r, err)
			cm.replaced = tw.wrote
		}
	}
	cm.started = true
	return err
}

// Replaced reports whether the error hook wrote a response at the first
// Save. That response replaces the handler's: the caller must discard the
// status, headers and body the handler writes afterwards.
func (cm *Commit) Replaced() bool {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	return cm.replaced
}

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

// commit saves s if this request changed it and writes the cookie into h
// (nil once the response has started). It returns the errors met loading
// or saving since the previous commit, joined.
func (s *Session) commit(ctx context.Context, h http.Header) error {
	m := s.mgr
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.failed && (!s.ch.empty() || s.renewed || s.seenDue || s.cookieDirty) {
		s.loadLocked(ctx)
		needCookie := !s.viaToken && (s.id == "" || (s.id != s.cookieID && s.id != s.sentID) || s.cookieDirty)
		unreachable := s.viaToken && (s.id == "" || (s.id != s.cookieID && s.id != s.tokenID))
		switch {
		case s.failed:
		case unreachable:
			s.err(ErrTokenNotIssued)
			s.dropChangesLocked()
		case h == nil && needCookie:
			s.err(ErrHeadersSent)
			s.dropChangesLocked()
		case s.err(s.saveLocked(ctx)) == nil:
			s.ch, s.renewed, s.stale, s.seenDue = changes{}, false, true, false
			if needCookie {
				if err := m.setCookie(h, s.id, s.user, s.base); err != nil {
					s.err(err)
				} else {
					s.sentID, s.cookieDirty = s.id, false
				}
			}
			if s.oldKey != "" {
				s.err(m.store.Delete(ctx, s.oldKey))
				s.oldKey = ""
			}
		}
	}
	if s.destroyed && s.sentID == "" && s.hadCookie && !s.viaToken && h != nil {
		m.expireCookie(h)
		s.sentID = "-" // expired
	}
	s.started = true
	errs := s.errs[s.reported:]
	s.reported = len(s.errs)
	return errors.Join(errs...)
}

// dropChangesLocked forgets this request's unsaved changes; s.mu is held.
func (s *Session) dropChangesLocked() {
	s.ch, s.renewed, s.seenDue, s.cookieDirty = changes{}, false, false, false
}

// freshLocked makes s a new session, unbound, after its record turned out
// to be missing, expired or revoked; s.mu is held.
func (s *Session) freshLocked() {
	s.id, s.user, s.epoch = "", "", epoch{}
}

// loadLocked loads s's record once; s.mu is held. Store failures mark the
// session failed (it will not be saved) and are recorded. A session bound
// to a user is read together with the user's epoch, in one round trip, and
// reads as a new session when the epoch revokes it.
func (s *Session) loadLocked(ctx context.Context) {
	m := s.mgr
	s.resolveLocked()
	if s.loaded {
		return
	}
	s.loaded = true
	key := s.keyLocked()
	var (
		e     Entry
		found bool
		ep    epoch
		err   error
	)
	start := time.Now()
	if s.user != "" {
		ekey := m.epochKey(s.user)
		var got map[string]Entry
		got, err = m.loadMulti(ctx, []LoadRequest{{Key: key, Touch: m.IdleTimeout}, {Key: ekey}})
		e, found = got[key]
		ee, efound := got[ekey]
		ep = parseEpoch(ee, efound)
	} else {
		e, found, err = m.store.Load(ctx, key, m.IdleTimeout)
	}
	m.observe(ctx, EventLoad, start, err != nil)
	if err != nil {
		s.failed = true
		s.err(err)
		return
	}
	if !found {
		s.freshLocked() // the record is gone: a fresh session gets a fresh ID
		return
	}
	rec, err := decodeRecord(m.ser, e.Data, e.Flags)
	if err != nil {
		s.err(err)
		s.version, s.found = e.Version, true
		s.user = ""
		s.resetLocked()
		return
	}
	if m.expired(rec) {
		s.oldKey = key
		s.freshLocked()
		return
	}
	if rec.User != s.user || (rec.User != "" && !ep.admits(rec)) {
		// Revoked (or a record that no longer matches its cookie): the
		// request gets a new, empty session.
		m.observe(ctx, EventRevoked, time.Time{}, false)
		s.freshLocked()
		return
	}
	s.base, s.version, s.found = rec, e.Version, true
	s.created = time.Unix(0, rec.Created)
	if rec.User != "" {
		s.epoch = ep
		s.seenDue = m.clock().Sub(time.Unix(0, rec.Seen)) >= m.activityInterval()
	}
}

// saveLocked writes s's changes with a compare-and-swap, re-reading and
// re-applying them after each lost race; s.mu is held.
func (s *Session) saveLocked(ctx context.Context) error {
	m := s.mgr
	s.loadLocked(ctx)
	if s.failed {
		return nil // the load error is already recorded
	}
	if s.id == "" {
		s.id = newID()
	}
	key := s.keyLocked()
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
		if rec.User != "" {
			rec.Seen = now.UnixNano()
			if s.epoch.found && rec.User == s.user && s.epoch.admits(rec) {
				rec.Epoch = s.epoch.n // a session kept by RevokeOtherSessions joins the new epoch
			}
		}
		ttl, alive := m.recordTTL(rec, now)
		if !alive {
			return nil // the session's lifetime ended during the request
		}
		data, flags, err := encodeRecord(m.ser, rec)
		if err != nil {
			return fmt.Errorf("session: encoding record: %w", err)
		}
		start := time.Now()
		err = m.store.Save(ctx, key, Entry{Data: data, Flags: flags, Version: version}, ttl)
		if err == nil || !errors.Is(err, ErrConflict) {
			m.observe(ctx, EventSave, start, err != nil)
		}
		if err == nil {
			s.base, s.created = rec, time.Unix(0, rec.Created)
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		m.observe(ctx, EventConflict, start, false)
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
