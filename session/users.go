package session

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Per-user records, kept in the Manager's Store beside the sessions (see
// "Users" in the package doc):
//
//   - the epoch, under KeyPrefix+"epoch:"+hash(user ID): the text
//     "v1 N", or "v1 N HANDLE K" after RevokeOtherSessions. A bound
//     session is valid while its record's epoch is N, or while it is the
//     session HANDLE and its epoch is K. Read with every bound session, in
//     the same round trip; missing or unreadable means revoked.
//   - the list, under KeyPrefix+"user:"+hash(user ID): a userRecord
//     through the Manager's serializer, changed only by compare-and-swap.
//
// Neither ever expires by TTL (memcached may still evict them).

// UserSession describes one live session of a user, as listed by
// Manager.UserSessions.
type UserSession struct {
	// Handle names the session publicly: for RevokeSession, and to tell
	// the current session (Session.Handle). It is neither the session ID
	// nor anything that leads to it.
	Handle string
	// UserAgent and IP are the request's at Login (see Manager.ClientIP).
	UserAgent string
	IP        string
	// Created is when the session logged in; LastSeen when it last saved
	// or, at the latest, ActivityInterval after its last request.
	Created  time.Time
	LastSeen time.Time
}

// maxUserAgent bounds the user agent kept per session.
const maxUserAgent = 256

// loginGrace is how young a listed session may be and still count as live
// when its record is not saved yet (its login is in flight): pruning a full
// list never drops a concurrent login.
const loginGrace = time.Minute

// userRecord is the list of a user's sessions, newest first.
type userRecord struct {
	Version  int         `msgpack:"ver"`
	Sessions []userEntry `msgpack:"s"`
}

// userEntry is one session in a userRecord.
type userEntry struct {
	Handle  string `msgpack:"h"`
	Key     string `msgpack:"k"` // the session's store key (a hash of its ID)
	Created int64  `msgpack:"c"` // Unix nanoseconds
	UA      string `msgpack:"ua,omitempty"`
	IP      string `msgpack:"ip,omitempty"`
}

const userRecordVersion = 1

// epoch is a user's epoch record, parsed.
type epoch struct {
	found bool   // the record exists and parses
	n     uint64 // the epoch
	keep  string // the handle of the session RevokeOtherSessions kept
	keepN uint64 // the epoch that session is valid under
}

// parseEpoch parses an epoch record; a missing or unreadable one is the
// zero epoch, which admits no session.
func parseEpoch(e Entry, found bool) epoch {
	if !found {
		return epoch{}
	}
	f := strings.Fields(string(e.Data))
	if (len(f) != 2 && len(f) != 4) || f[0] != "v1" {
		return epoch{}
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || n == 0 {
		return epoch{}
	}
	ep := epoch{found: true, n: n}
	if len(f) == 4 {
		k, err := strconv.ParseUint(f[3], 10, 64)
		if err != nil || k == 0 || f[2] == "" {
			return epoch{}
		}
		ep.keep, ep.keepN = f[2], k
	}
	return ep
}

// String is the stored form of ep.
func (ep epoch) String() string {
	if ep.keep != "" {
		return fmt.Sprintf("v1 %d %s %d", ep.n, ep.keep, ep.keepN)
	}
	return fmt.Sprintf("v1 %d", ep.n)
}

// admits reports whether the bound session rec is valid under ep.
func (ep epoch) admits(rec *record) bool {
	return ep.found && rec.Epoch != 0 &&
		(rec.Epoch == ep.n || (ep.keep != "" && rec.Handle == ep.keep && rec.Epoch == ep.keepN))
}

// randomEpoch starts a new epoch at a random number, so that sessions
// revoked before an epoch record was evicted never match its successor.
func randomEpoch() uint64 {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic("session: crypto/rand failed: " + err.Error())
	}
	return binary.BigEndian.Uint64(b[:])>>2 + 1
}

// newHandle returns a fresh public handle.
func newHandle() string {
	var b [12]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic("session: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (m *Manager) prefix() string {
	if m.KeyPrefix != "" {
		return m.KeyPrefix
	}
	return DefaultKeyPrefix
}

func (m *Manager) epochKey(user string) string { return HashKey(m.prefix()+"epoch:", user) }
func (m *Manager) userKey(user string) string  { return HashKey(m.prefix()+"user:", user) }

// loadMulti loads several records, in one round trip when the Store is a
// MultiLoader. Missing records are absent from the result.
func (m *Manager) loadMulti(ctx context.Context, reqs []LoadRequest) (map[string]Entry, error) {
	if ml, ok := m.store.(MultiLoader); ok {
		return ml.LoadMulti(ctx, reqs)
	}
	out := make(map[string]Entry, len(reqs))
	for _, rq := range reqs {
		e, found, err := m.store.Load(ctx, rq.Key, rq.Touch)
		if err != nil {
			return nil, err
		}
		if found {
			out[rq.Key] = e
		}
	}
	return out, nil
}

// Login binds the session to userID, for the per-user features of the
// package doc: it renews the session ID (against fixation, keeping the
// data), restarts the session's lifetime, and adds the session to the
// user's list with a new public handle, the request's user agent and
// address. The cookie (or token: issue it after Login) then carries the
// user ID beside the session ID, signed, and encrypted when the Manager
// has a block key. Login makes a few store calls (the user's epoch and
// list); the session itself is saved with the response. It returns the
// load error if the session could not be loaded, ErrStore errors, and
// ErrHeadersSent once the response has started.
func (s *Session) Login(ctx context.Context, userID string) error {
	if userID == "" || len(userID) > maxUserID {
		return fmt.Errorf("session: Login: user ID of %d bytes (want 1 to %d)", len(userID), maxUserID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.renewLocked(ctx); err != nil {
		return err
	}
	m := s.mgr
	ep, err := m.ensureEpoch(ctx, userID)
	if err != nil {
		return s.err(err)
	}
	now := m.clock()
	s.base.Created, s.created = now.UnixNano(), now
	entry := userEntry{Handle: newHandle(), Key: m.key(s.id), Created: now.UnixNano()}
	if s.req != nil {
		entry.UA = s.req.UserAgent()
		if len(entry.UA) > maxUserAgent {
			entry.UA = entry.UA[:maxUserAgent]
		}
		entry.IP = m.clientIP(s.req)
	}
	if err := m.addUserSession(ctx, userID, entry, ep); err != nil {
		return s.err(err)
	}
	s.ch.bind = &binding{user: userID, handle: entry.Handle, epoch: ep.n}
	s.user, s.epoch = userID, ep
	return nil
}

// User returns the user the session is bound to (Login), or "" when it is
// not, or was revoked. It loads the session.
func (s *Session) User(ctx context.Context) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	return s.user
}

// Handle returns the session's public handle when it is bound to a user,
// else "": what Manager.UserSessions lists it under. It loads the session.
func (s *Session) Handle(ctx context.Context) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	_, handle, _ := s.bindingLocked()
	return handle
}

// bindingLocked returns the session's user, handle and record epoch, or
// "" when it is not bound; s.mu is held and the record loaded.
func (s *Session) bindingLocked() (user, handle string, ep uint64) {
	switch {
	case s.ch.bind != nil:
		return s.ch.bind.user, s.ch.bind.handle, s.ch.bind.epoch
	case s.user != "" && s.base != nil && s.base.User == s.user:
		return s.user, s.base.Handle, s.base.Epoch
	}
	return "", "", 0
}

// ensureEpoch returns userID's epoch, creating the record (at a random
// number) when it is missing or unreadable.
func (m *Manager) ensureEpoch(ctx context.Context, userID string) (epoch, error) {
	key := m.epochKey(userID)
	for attempt := 0; attempt <= m.maxRetries(); attempt++ {
		e, found, err := m.store.Load(ctx, key, 0)
		if err != nil {
			return epoch{}, err
		}
		if ep := parseEpoch(e, found); ep.found {
			return ep, nil
		}
		ep := epoch{found: true, n: randomEpoch()}
		version := uint64(0)
		if found {
			version = e.Version // unreadable: overwrite
		}
		err = m.store.Save(ctx, key, Entry{Data: []byte(ep.String()), Version: version}, 0)
		if err == nil {
			return ep, nil
		}
		if !errors.Is(err, ErrConflict) {
			return epoch{}, err
		}
	}
	return epoch{}, fmt.Errorf("%w: epoch of a user", ErrConflict)
}

// updateUser changes userID's list with fn by compare-and-swap, calling fn
// again after each lost race. fn reports whether it changed the list.
func (m *Manager) updateUser(ctx context.Context, userID string, fn func(ur *userRecord) (bool, error)) error {
	key := m.userKey(userID)
	for attempt := 0; attempt <= m.maxRetries(); attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return fmt.Errorf("%w: %w", ErrStore, err)
			}
		}
		e, found, err := m.store.Load(ctx, key, 0)
		if err != nil {
			return err
		}
		ur := &userRecord{}
		if found && (m.ser.Unmarshal(e.Data, e.Flags, ur) != nil || ur.Version > userRecordVersion) {
			ur = &userRecord{} // unreadable: start over
		}
		changed, err := fn(ur)
		if err != nil || !changed {
			return err
		}
		ur.Version = userRecordVersion
		data, flags, err := m.ser.Marshal(ur)
		if err != nil {
			return fmt.Errorf("session: encoding user record: %w", err)
		}
		version := uint64(0)
		if found {
			version = e.Version
		}
		err = m.store.Save(ctx, key, Entry{Data: data, Flags: flags, Version: version}, 0)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		m.observe(ctx, EventConflict, time.Time{}, false)
	}
	return fmt.Errorf("%w: list of a user's sessions", ErrConflict)
}

// addUserSession adds entry to userID's list, newest first. When the list
// would exceed MaxUserSessions it first drops sessions that are no longer
// live, then the oldest, whose records it deletes: they are signed out.
func (m *Manager) addUserSession(ctx context.Context, userID string, entry userEntry, ep epoch) error {
	var evicted []string
	err := m.updateUser(ctx, userID, func(ur *userRecord) (bool, error) {
		evicted = nil
		list := slices.DeleteFunc(ur.Sessions, func(e userEntry) bool { return e.Key == entry.Key })
		if len(list)+1 > m.maxUserSessions() {
			live, _, err := m.liveSessions(ctx, userID, list, ep)
			if err != nil {
				return false, err
			}
			list = live
		}
		list = append(list, entry)
		slices.SortStableFunc(list, func(a, b userEntry) int { return compareInt64(b.Created, a.Created) })
		for len(list) > m.maxUserSessions() {
			evicted = append(evicted, list[len(list)-1].Key)
			list = list[:len(list)-1]
		}
		ur.Sessions = list
		return true, nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range evicted {
		errs = append(errs, m.store.Delete(ctx, k))
	}
	return errors.Join(errs...)
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// forget removes the session stored under key from userID's list.
func (m *Manager) forget(ctx context.Context, userID, key string) error {
	return m.updateUser(ctx, userID, func(ur *userRecord) (bool, error) {
		n := len(ur.Sessions)
		ur.Sessions = slices.DeleteFunc(ur.Sessions, func(e userEntry) bool { return e.Key == key })
		return len(ur.Sessions) != n, nil
	})
}

// rekey points the entry of userID's list for the session stored under
// oldKey at newKey (RenewID of a bound session).
func (m *Manager) rekey(ctx context.Context, userID, oldKey, newKey string) error {
	return m.updateUser(ctx, userID, func(ur *userRecord) (bool, error) {
		for i := range ur.Sessions {
			if ur.Sessions[i].Key == oldKey {
				ur.Sessions[i].Key = newKey
				return true, nil
			}
		}
		return false, nil
	})
}

// liveSessions returns the entries of list whose sessions are live (their
// record exists, is bound to userID under that handle, is admitted by ep
// and has not expired) with their records, in one round trip. Entries
// younger than loginGrace whose record is not saved yet count as live, with
// a nil record.
func (m *Manager) liveSessions(ctx context.Context, userID string, list []userEntry, ep epoch) ([]userEntry, []*record, error) {
	reqs := make([]LoadRequest, len(list))
	for i, e := range list {
		reqs[i] = LoadRequest{Key: e.Key}
	}
	got, err := m.loadMulti(ctx, reqs)
	if err != nil {
		return nil, nil, err
	}
	now := m.clock()
	var (
		live []userEntry
		recs []*record
	)
	for _, e := range list {
		se, found := got[e.Key]
		if !found {
			if now.Sub(time.Unix(0, e.Created)) < loginGrace {
				live, recs = append(live, e), append(recs, nil)
			}
			continue
		}
		rec, err := decodeRecord(m.ser, se.Data, se.Flags)
		if err != nil || rec.User != userID || rec.Handle != e.Handle || !ep.admits(rec) || m.expired(rec) {
			continue
		}
		live, recs = append(live, e), append(recs, rec)
	}
	return live, recs, nil
}

// loadUser reads userID's list and epoch in one round trip.
func (m *Manager) loadUser(ctx context.Context, userID string) (*userRecord, epoch, error) {
	lkey, ekey := m.userKey(userID), m.epochKey(userID)
	got, err := m.loadMulti(ctx, []LoadRequest{{Key: lkey}, {Key: ekey}})
	if err != nil {
		return nil, epoch{}, err
	}
	ee, efound := got[ekey]
	ep := parseEpoch(ee, efound)
	ur := &userRecord{}
	if le, found := got[lkey]; found {
		if m.ser.Unmarshal(le.Data, le.Flags, ur) != nil {
			ur = &userRecord{}
		}
	}
	return ur, ep, nil
}

// UserSessions returns userID's live sessions, newest first: those its
// list names whose records exist and are neither revoked nor expired. It
// costs two round trips (the list and epoch, then the sessions). Store
// failures are wrapped in ErrStore.
func (m *Manager) UserSessions(ctx context.Context, userID string) ([]UserSession, error) {
	m.init()
	ur, ep, err := m.loadUser(ctx, userID)
	if err != nil || !ep.found || len(ur.Sessions) == 0 {
		return []UserSession{}, err
	}
	live, recs, err := m.liveSessions(ctx, userID, ur.Sessions, ep)
	if err != nil {
		return nil, err
	}
	out := make([]UserSession, 0, len(live))
	for i, e := range live {
		if recs[i] == nil {
			continue // its login is still in flight
		}
		us := UserSession{Handle: e.Handle, UserAgent: e.UA, IP: e.IP, Created: time.Unix(0, e.Created).UTC()}
		us.LastSeen = us.Created
		if recs[i].Seen > e.Created {
			us.LastSeen = time.Unix(0, recs[i].Seen).UTC()
		}
		out = append(out, us)
	}
	slices.SortStableFunc(out, func(a, b UserSession) int { return b.Created.Compare(a.Created) })
	return out, nil
}

// RevokeSession signs out the session of userID named by handle (see
// UserSession.Handle): its record is deleted, so its next request, in any
// process, gets an empty session, and it leaves the list. It returns
// ErrUnknownSession when no live session of the user has that handle, and
// ErrStore errors.
func (m *Manager) RevokeSession(ctx context.Context, userID, handle string) error {
	m.init()
	ur, ep, err := m.loadUser(ctx, userID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ur.Sessions, func(e userEntry) bool { return e.Handle == handle })
	if handle == "" || i < 0 || !ep.found {
		return ErrUnknownSession
	}
	entry := ur.Sessions[i]
	live, recs, err := m.liveSessions(ctx, userID, []userEntry{entry}, ep)
	if err != nil {
		return err
	}
	if len(live) == 0 || recs[0] == nil {
		return ErrUnknownSession
	}
	if err := m.store.Delete(ctx, entry.Key); err != nil {
		return err
	}
	m.observe(ctx, EventRevocation, time.Time{}, false)
	return m.forget(ctx, userID, entry.Key)
}

// RevokeUser signs out every session of userID ("log out everywhere")
// with one write: the user's epoch moves on, so each session's next
// request, in any process, gets an empty session. Sessions logged in
// afterwards are valid. It returns ErrStore errors.
func (m *Manager) RevokeUser(ctx context.Context, userID string) error {
	m.init()
	return m.bumpEpoch(ctx, userID, func(ep epoch) (epoch, error) {
		return epoch{found: true, n: ep.n + 1}, nil
	})
}

// RevokeOtherSessions signs out every session of s's user but s
// ("everywhere but here") with one write to the user's epoch. It returns
// ErrNotLoggedIn when s is not bound to a user (or was revoked), the load
// error if s could not be loaded, and ErrStore errors.
func (m *Manager) RevokeOtherSessions(ctx context.Context, s *Session) error {
	m.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadLocked(ctx)
	if s.failed {
		return errors.Join(s.errs...)
	}
	user, handle, recEpoch := s.bindingLocked()
	if user == "" {
		return ErrNotLoggedIn
	}
	err := m.bumpEpoch(ctx, user, func(ep epoch) (epoch, error) {
		if !ep.admits(&record{Handle: handle, Epoch: recEpoch}) {
			return epoch{}, ErrNotLoggedIn // s itself was revoked meanwhile
		}
		return epoch{found: true, n: ep.n + 1, keep: handle, keepN: recEpoch}, nil
	})
	if errors.Is(err, errNoEpoch) {
		return ErrNotLoggedIn
	}
	return err
}

// errNoEpoch: the user has no epoch, so no session of theirs is valid.
var errNoEpoch = errors.New("session: no epoch")

// bumpEpoch replaces userID's epoch with next(current) by compare-and-swap.
// A missing epoch means every session of the user is revoked already:
// RevokeUser has nothing to do, RevokeOtherSessions gets errNoEpoch. An
// unreadable one is replaced by a fresh random epoch.
func (m *Manager) bumpEpoch(ctx context.Context, userID string, next func(epoch) (epoch, error)) error {
	key := m.epochKey(userID)
	for attempt := 0; attempt <= m.maxRetries(); attempt++ {
		e, found, err := m.store.Load(ctx, key, 0)
		if err != nil {
			return err
		}
		if !found {
			if _, err := next(epoch{}); err != nil {
				return errNoEpoch
			}
			return nil
		}
		cur := parseEpoch(e, found)
		var nep epoch
		if cur.found {
			if nep, err = next(cur); err != nil {
				return err
			}
		} else {
			nep = epoch{found: true, n: randomEpoch()}
		}
		err = m.store.Save(ctx, key, Entry{Data: []byte(nep.String()), Version: e.Version}, 0)
		if err == nil {
			m.observe(ctx, EventRevocation, time.Time{}, false)
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			return err
		}
		m.observe(ctx, EventConflict, time.Time{}, false)
	}
	return fmt.Errorf("%w: epoch of a user", ErrConflict)
}
