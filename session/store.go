package session

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/memkit/memkit/memclient"
)

// Entry is one stored session record: the encoded bytes, the serializer
// flags that describe them, and the store's version of the record.
type Entry struct {
	Data  []byte
	Flags uint32
	// Version is an opaque token that changes whenever the record is
	// written (the memcached CAS value). 0 means "no record": a Save with
	// Version 0 creates the record only if none exists.
	Version uint64
}

// Store keeps session records. Save is conditional on the version so that
// the Manager can merge concurrent changes instead of losing them.
//
// Implementations must be safe for concurrent use.
type Store interface {
	// Load returns the record stored under key and found=true, or
	// found=false when there is none. When touch is positive the record's
	// time to live is reset to touch in the same operation (sliding idle
	// timeout) without rewriting it.
	Load(ctx context.Context, key string, touch time.Duration) (e Entry, found bool, err error)
	// Save stores e under key with the time to live ttl if the stored
	// record still has e.Version (Version 0: if there is no record). A ttl
	// of 0 or less means the record never expires (it may still be
	// evicted); to end one at once, Delete it. It returns ErrConflict when
	// the record changed or vanished meanwhile.
	Save(ctx context.Context, key string, e Entry, ttl time.Duration) error
	// Delete removes key's record. A missing record is not an error.
	Delete(ctx context.Context, key string) error
}

// LoadRequest is one record of a MultiLoader's LoadMulti: its key and,
// when positive, the time to live to reset it to (as Store.Load's touch).
type LoadRequest struct {
	Key   string
	Touch time.Duration
}

// MultiLoader is a Store that loads several records in one round trip. The
// Manager uses it to read a bound session with its user's epoch, and a
// user's list with their sessions; with a Store that is not one, it loads
// them one by one.
type MultiLoader interface {
	// LoadMulti returns the records found, by key; missing records are
	// absent. It fails as a whole if any record could not be read.
	LoadMulti(ctx context.Context, reqs []LoadRequest) (map[string]Entry, error)
}

// Sentinel errors. Match them with errors.Is.
var (
	// ErrConflict means a conditional Save lost: the record changed or
	// vanished since it was loaded. A save returns it, wrapped, to the
	// error hook when it lost MaxRetries races in a row.
	ErrConflict = errors.New("session: version conflict")
	// ErrStore wraps every error of the Store other than ErrConflict: the
	// store is unreachable, timed out, refused the value, or was closed.
	ErrStore = errors.New("session: store failed")
	// ErrUndecodable means a stored record or value no longer decodes (a
	// type changed between deploys, or the bytes are corrupt). The Manager
	// reports it to the error hook and starts a fresh session.
	ErrUndecodable = errors.New("session: record does not decode")
	// ErrClosed means the MemoryStore was closed.
	ErrClosed = errors.New("session: store closed")
	// ErrEnded means a save was dropped because a concurrent request
	// destroyed or renewed the session (or it expired) between this request's
	// load and its save. The changes are not written to a session that no
	// longer exists, so a logged-out session cannot be resurrected.
	ErrEnded = errors.New("session: ended by a concurrent request")
	// ErrHeadersSent means a session got a new ID (it was new, renewed or
	// destroyed) after the response started: its cookie can no longer be sent,
	// so it was not saved.
	ErrHeadersSent = errors.New("session: new session changed after the response started")
	// ErrNoKeys means the Manager has no Keys to sign cookies with. Every
	// process serving the same sessions needs the same secret keys: set
	// Manager.Keys (for instance 32 bytes from crypto/rand, kept in your
	// configuration), or set DevRandomKeys for per-process random keys in
	// development.
	ErrNoKeys = errors.New("session: Manager.Keys is empty: set Keys to secret keys shared by every process " +
		"(securecookie.GenerateRandomKey(32), kept in your configuration), or DevRandomKeys for development")
	// ErrTokenNotIssued means a request that carried a header token
	// changed a session that is not the token's (the token was invalid,
	// or its session ended or was renewed) without issuing its token with
	// Session.Token: no client could reach that session, so it was not
	// saved.
	ErrTokenNotIssued = errors.New("session: new header-token session changed without issuing its token")
	// ErrTokensDisabled is returned by Session.Token when the Manager's
	// Token.Enabled is false.
	ErrTokensDisabled = errors.New("session: header tokens are off (Manager.Token.Enabled)")
	// ErrNotLoggedIn means the session is not bound to a user (Login), or
	// was revoked.
	ErrNotLoggedIn = errors.New("session: not bound to a user")
	// ErrUnknownSession means no live session of the user has the handle.
	ErrUnknownSession = errors.New("session: no such session")
)

// HashKey derives the store key of a session ID: prefix followed by the
// unpadded base64url SHA-256 of id. A dump of the store's keys therefore
// reveals no usable session ID.
func HashKey(prefix, id string) string {
	// Stack buffers for the usual lengths: one allocation, the key.
	var in, out [128]byte
	sum := sha256.Sum256(append(in[:0], id...))
	return string(base64.RawURLEncoding.AppendEncode(append(out[:0], prefix...), sum[:]))
}

// MemcacheStore is a Store on memcached through memclient. Load is one
// round trip (get, or get-and-touch when sliding the idle timeout); Save is
// an add (Version 0) or a compare-and-swap. It is safe for concurrent use.
type MemcacheStore struct {
	// Client is the memcached client. The store does not close it.
	Client *memclient.Client
}

var (
	_ Store       = (*MemcacheStore)(nil)
	_ MultiLoader = (*MemcacheStore)(nil)
)

// NewMemcacheStore returns a store on mc.
func NewMemcacheStore(mc *memclient.Client) *MemcacheStore {
	return &MemcacheStore{Client: mc}
}

// itemTTL is ttl for memclient: 0 or less never expires.
func itemTTL(ttl time.Duration) time.Duration { return max(ttl, 0) }

// Load implements Store with Get, or GetAndTouch when touch > 0. Errors
// other than a miss are wrapped in ErrStore.
func (s *MemcacheStore) Load(ctx context.Context, key string, touch time.Duration) (Entry, bool, error) {
	var (
		it  *memclient.Item
		err error
	)
	if touch > 0 {
		it, err = s.Client.GetAndTouch(ctx, key, touch)
	} else {
		it, err = s.Client.Get(ctx, key)
	}
	if errors.Is(err, memclient.ErrCacheMiss) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, storeErr(err)
	}
	return Entry{Data: it.Value, Flags: it.Flags, Version: it.CAS}, true, nil
}

// LoadMulti implements MultiLoader with one GetLeaseMulti: one pipelined
// round trip per server, servers in parallel, each key read (or read and
// touched) with its own options. Failures are wrapped in ErrStore.
func (s *MemcacheStore) LoadMulti(ctx context.Context, reqs []LoadRequest) (map[string]Entry, error) {
	lreqs := make([]memclient.LeaseRequest, len(reqs))
	for i, rq := range reqs {
		lreqs[i] = memclient.LeaseRequest{Key: rq.Key}
		if rq.Touch > 0 {
			lreqs[i].Touch, lreqs[i].TouchTTL = true, rq.Touch
		}
	}
	got, err := s.Client.GetLeaseMulti(ctx, lreqs)
	if err != nil {
		return nil, storeErr(err)
	}
	out := make(map[string]Entry, len(got))
	for k, l := range got {
		if l.Item != nil {
			out[k] = Entry{Data: l.Item.Value, Flags: l.Item.Flags, Version: l.Item.CAS}
		}
	}
	return out, nil
}

// Save implements Store with Add (e.Version 0) or CompareAndSwap. It
// returns ErrConflict when the record exists (Add) or changed or vanished
// (CompareAndSwap), other failures wrapped in ErrStore.
func (s *MemcacheStore) Save(ctx context.Context, key string, e Entry, ttl time.Duration) error {
	it := &memclient.Item{Key: key, Value: e.Data, Flags: e.Flags, TTL: itemTTL(ttl), CAS: e.Version}
	var err error
	if e.Version == 0 {
		err = s.Client.Add(ctx, it)
	} else {
		err = s.Client.CompareAndSwap(ctx, it)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, memclient.ErrNotStored), errors.Is(err, memclient.ErrCASConflict), errors.Is(err, memclient.ErrCacheMiss):
		return ErrConflict
	}
	return storeErr(err)
}

// Set stores e under key unconditionally (e.Version is ignored) for ttl (0
// or less: never expires). It exists
// for the adapters of last-write-wins libraries (gorilla/sessions, scs);
// the Manager never uses it. Failures are wrapped in ErrStore.
func (s *MemcacheStore) Set(ctx context.Context, key string, e Entry, ttl time.Duration) error {
	err := s.Client.Set(ctx, &memclient.Item{Key: key, Value: e.Data, Flags: e.Flags, TTL: itemTTL(ttl)})
	if err != nil {
		return storeErr(err)
	}
	return nil
}

// Delete implements Store. Failures other than a miss are wrapped in
// ErrStore.
func (s *MemcacheStore) Delete(ctx context.Context, key string) error {
	err := s.Client.Delete(ctx, key)
	if err == nil || errors.Is(err, memclient.ErrCacheMiss) {
		return nil
	}
	return storeErr(err)
}

func storeErr(err error) error {
	return fmt.Errorf("%w: %w", ErrStore, err)
}
