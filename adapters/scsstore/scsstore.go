// Package scsstore is an alexedwards/scs/v2 Store backed by memkit's
// memcached store, a drop-in replacement for scs's memstore or redisstore
// in existing apps: set scs.SessionManager.Store to New(ms).
//
// scs generates the tokens and encodes the data; this store keeps each
// token's data in memcached under a key derived from a hash of the token,
// with a TTL that ends at scs's expiry. Commits follow scs's semantics
// (the last write wins); use session.Manager for sessions that merge
// concurrent changes.
//
// memcached cannot list its keys, so scs's SessionManager.Iterate cannot
// work on it: where scs panics with a store that cannot iterate, this one
// returns ErrNotIterable. To list and revoke a user's sessions, use
// session.Manager's per-user sessions (Session.Login, Manager.UserSessions,
// Manager.RevokeUser).
package scsstore

import (
	"context"
	"errors"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/memkit/memkit/session"
)

// DefaultKeyPrefix prefixes memcached keys when Store.KeyPrefix is "".
const DefaultKeyPrefix = "memkit:scs:"

// ErrNotIterable is what scs's SessionManager.Iterate returns with this
// store: memcached cannot list the sessions.
var ErrNotIterable = errors.New("scsstore: memcached cannot list sessions, so scs's Iterate is not supported; " +
	"use session.Manager's per-user sessions (Login, UserSessions, RevokeUser) to list or revoke a user's sessions")

// Store implements scs.Store and scs.CtxStore, and scs.IterableCtxStore
// only to fail with ErrNotIterable. It is safe for concurrent use.
type Store struct {
	// KeyPrefix prefixes every memcached key. "" means DefaultKeyPrefix.
	KeyPrefix string

	store *session.MemcacheStore
}

var (
	_ scs.Store            = (*Store)(nil)
	_ scs.CtxStore         = (*Store)(nil)
	_ scs.IterableCtxStore = (*Store)(nil)
	_ scs.IterableStore    = (*Store)(nil)
)

// New returns a Store on ms.
func New(ms *session.MemcacheStore) *Store { return &Store{store: ms} }

func (s *Store) key(token string) string {
	p := s.KeyPrefix
	if p == "" {
		p = DefaultKeyPrefix
	}
	return session.HashKey(p, token)
}

// FindCtx returns the data of token, found=false when there is none (or
// it expired). Errors wrap session.ErrStore.
func (s *Store) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	e, found, err := s.store.Load(ctx, s.key(token), 0)
	if err != nil || !found {
		return nil, false, err
	}
	return e.Data, true, nil
}

// CommitCtx stores b for token until expiry, overwriting any data; an
// expiry in the past deletes it. Errors wrap session.ErrStore.
func (s *Store) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	ttl := time.Until(expiry)
	if ttl <= 0 {
		return s.store.Delete(ctx, s.key(token))
	}
	return s.store.Set(ctx, s.key(token), session.Entry{Data: b}, ttl)
}

// DeleteCtx deletes token's data; a missing token is not an error.
func (s *Store) DeleteCtx(ctx context.Context, token string) error {
	return s.store.Delete(ctx, s.key(token))
}

// Find is FindCtx with a background context.
func (s *Store) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

// Commit is CommitCtx with a background context.
func (s *Store) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

// Delete is DeleteCtx with a background context.
func (s *Store) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}

// AllCtx returns ErrNotIterable: memcached cannot list its keys. scs's
// Iterate calls it, and returns the error instead of panicking.
func (s *Store) AllCtx(context.Context) (map[string][]byte, error) {
	return nil, ErrNotIterable
}

// All returns ErrNotIterable, as AllCtx does.
func (s *Store) All() (map[string][]byte, error) {
	return nil, ErrNotIterable
}
