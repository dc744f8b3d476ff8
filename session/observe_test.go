package session_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/session"
)

// sessionRecorder is an Observer that counts what it is told.
type sessionRecorder struct {
	mu     sync.Mutex
	counts map[session.EventKind]int64
	failed int
}

func (r *sessionRecorder) ObserveSession(_ context.Context, ev session.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = make(map[session.EventKind]int64)
	}
	r.counts[ev.Kind]++
	if ev.Failed {
		r.failed++
	}
}

// TestObserver: the Observer hears of every load, save, revocation and
// revoked read, the same events Manager.Stats counts.
func TestObserver(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		rec := &sessionRecorder{}
		mgr := &session.Manager{Store: st, Keys: testKeys, Observer: rec}
		ctx := context.Background()
		phone := login(t, mgr, "ann@example.com", "phone")
		laptop := login(t, mgr, "ann@example.com", "laptop")
		whoami(mgr, phone)
		require.NoError(t, mgr.RevokeUser(ctx, "ann@example.com"))
		user, _ := whoami(mgr, laptop)
		require.Empty(t, user)

		stats := mgr.Stats()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		assert.Equal(t, stats.Loads, rec.counts[session.EventLoad])
		assert.Equal(t, stats.Saves, rec.counts[session.EventSave])
		assert.Equal(t, stats.Conflicts, rec.counts[session.EventConflict])
		assert.Equal(t, stats.Revoked, rec.counts[session.EventRevoked])
		assert.Equal(t, stats.Revocations, rec.counts[session.EventRevocation])
		assert.NotZero(t, rec.counts[session.EventLoad])
		assert.NotZero(t, rec.counts[session.EventSave])
		assert.Equal(t, int64(1), rec.counts[session.EventRevoked], "the laptop's read after the revocation")
		assert.Equal(t, int64(1), rec.counts[session.EventRevocation])
		assert.Zero(t, rec.failed)
	})
}

// TestObservers: Observers tells every observer given, skips nil ones,
// and is nil (no cost) without any.
func TestObservers(t *testing.T) {
	require.Nil(t, session.Observers())
	a, b := &sessionRecorder{}, &sessionRecorder{}
	o := session.Observers(a, nil, b)
	o.ObserveSession(context.Background(), session.Event{Kind: session.EventSave})
	assert.Equal(t, int64(1), a.counts[session.EventSave])
	assert.Equal(t, int64(1), b.counts[session.EventSave])
}
