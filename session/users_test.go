package session_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// device is one browser or API client of a test: the cookie it holds.
type device struct {
	ua     string
	cookie *http.Cookie
}

// login logs a new device in as user through Begin/Commit and returns it.
func login(t *testing.T, mgr *session.Manager, user, ua string) *device {
	t.Helper()
	req := request(nil)
	req.Header.Set("User-Agent", ua)
	req.RemoteAddr = "192.0.2.7:4242"
	rec := httptest.NewRecorder()
	r, cm := mgr.Begin(rec, req)
	s := session.FromContext(r.Context())
	require.NoError(t, s.Set("cart", []string{"pen"}))
	require.NoError(t, s.Login(r.Context(), user))
	require.NoError(t, cm.Save(context.Background()))
	cs := rec.Result().Cookies()
	require.Len(t, cs, 1)
	return &device{ua: ua, cookie: cs[0]}
}

// whoami returns the user a device's next request is signed in as ("" for
// an empty session) and whether its cart survived.
func whoami(mgr *session.Manager, d *device) (string, bool) {
	s, cm, _ := begin(mgr, d.cookie)
	ctx := context.Background()
	user := s.User(ctx)
	_, hasCart := s.Get(ctx, "cart")
	_ = cm.Save(ctx)
	return user, hasCart
}

func handleOf(mgr *session.Manager, d *device) string {
	return load(mgr, d.cookie).Handle(context.Background())
}

// TestUserSessions walks the per-user API on every backend: list, revoke
// one by handle, revoke all but the current, revoke all.
func TestUserSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newFakeClock()
		st, _, _ := b.new(t, clock)
		mgr := &session.Manager{Store: st, Keys: testKeys}
		session.SetClock(mgr, clock.Now)
		ctx := context.Background()

		phone := login(t, mgr, "ann@example.com", "phone")
		clock.Advance(time.Minute)
		laptop := login(t, mgr, "ann@example.com", "laptop")
		clock.Advance(time.Minute)
		tablet := login(t, mgr, "ann@example.com", "tablet")
		bob := login(t, mgr, "bob", "bob's")

		list, err := mgr.UserSessions(ctx, "ann@example.com")
		require.NoError(t, err)
		require.Len(t, list, 3)
		for i, ua := range []string{"tablet", "laptop", "phone"} { // newest first
			assert.Equal(t, ua, list[i].UserAgent)
			assert.Equal(t, "192.0.2.7", list[i].IP)
			assert.False(t, list[i].Created.IsZero())
			assert.Equal(t, time.UTC, list[i].Created.Location())
			assert.False(t, list[i].LastSeen.Before(list[i].Created))
		}
		assert.Equal(t, handleOf(mgr, tablet), list[0].Handle)
		assert.NotEqual(t, list[0].Handle, list[1].Handle)
		for _, d := range []*device{phone, laptop, tablet} {
			user, cart := whoami(mgr, d)
			assert.Equal(t, "ann@example.com", user, d.ua)
			assert.True(t, cart, "%s: the data from before login is kept", d.ua)
			s := load(mgr, d.cookie)
			h := s.Handle(ctx)
			assert.NotContains(t, d.cookie.Value, h)
			assert.NotEqual(t, s.ID(), h)
			assert.NotContains(t, session.HashKey(session.DefaultKeyPrefix, s.ID()), h)
		}

		// One by handle.
		assert.ErrorIs(t, mgr.RevokeSession(ctx, "ann@example.com", "no-such-handle"), session.ErrUnknownSession)
		assert.ErrorIs(t, mgr.RevokeSession(ctx, "bob", list[1].Handle), session.ErrUnknownSession, "not bob's")
		require.NoError(t, mgr.RevokeSession(ctx, "ann@example.com", list[1].Handle))
		user, cart := whoami(mgr, laptop)
		assert.Equal(t, "", user, "the revoked laptop is signed out")
		assert.False(t, cart, "and its session is empty")
		assert.ErrorIs(t, mgr.RevokeSession(ctx, "ann@example.com", list[1].Handle), session.ErrUnknownSession, "already gone")
		list, err = mgr.UserSessions(ctx, "ann@example.com")
		require.NoError(t, err)
		require.Len(t, list, 2)

		// All but the current: one write to the epoch.
		cur, cm, _ := begin(mgr, phone.cookie)
		require.NoError(t, mgr.RevokeOtherSessions(ctx, cur))
		require.NoError(t, cm.Save(ctx))
		user, _ = whoami(mgr, tablet)
		assert.Equal(t, "", user, "the tablet is signed out")
		user, _ = whoami(mgr, phone)
		assert.Equal(t, "ann@example.com", user, "the phone is kept")
		user, _ = whoami(mgr, phone)
		assert.Equal(t, "ann@example.com", user, "and stays kept once it saved under the new epoch")
		list, err = mgr.UserSessions(ctx, "ann@example.com")
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, "phone", list[0].UserAgent)

		// A new login after that is valid; then all at once.
		desk := login(t, mgr, "ann@example.com", "desk")
		user, _ = whoami(mgr, desk)
		assert.Equal(t, "ann@example.com", user)
		require.NoError(t, mgr.RevokeUser(ctx, "ann@example.com"))
		for _, d := range []*device{phone, desk, laptop, tablet} {
			user, cart := whoami(mgr, d)
			assert.Equal(t, "", user, d.ua)
			assert.False(t, cart, d.ua)
		}
		list, err = mgr.UserSessions(ctx, "ann@example.com")
		require.NoError(t, err)
		assert.Empty(t, list)
		assert.ErrorIs(t, mgr.RevokeOtherSessions(ctx, load(mgr, phone.cookie)), session.ErrNotLoggedIn)

		user, _ = whoami(mgr, bob)
		assert.Equal(t, "bob", user, "other users are untouched")
		stats := mgr.Stats()
		assert.Equal(t, int64(3), stats.Revocations)
		assert.Positive(t, stats.Revoked)
	})
}

// TestEpochEvictedFailsClosed: when memcached evicts a user's epoch, every
// bound session of the user counts as revoked, and a new login is valid.
func TestEpochEvictedFailsClosed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		mgr := &session.Manager{Store: st, Keys: testKeys}
		ctx := context.Background()
		d := login(t, mgr, "ann", "phone")
		anon := newSession(t, mgr)
		require.NoError(t, st.Delete(ctx, session.HashKey(session.DefaultKeyPrefix+"epoch:", "ann")))
		user, cart := whoami(mgr, d)
		assert.Equal(t, "", user)
		assert.False(t, cart)
		assert.True(t, load(mgr, anon).Has(ctx, "k"), "unbound sessions need no epoch")
		again := login(t, mgr, "ann", "phone")
		user, _ = whoami(mgr, again)
		assert.Equal(t, "ann", user)
		user, _ = whoami(mgr, d)
		assert.Equal(t, "", user, "the new epoch does not revive the old session")
	})
}

// multiCountingStore counts the calls of a MultiLoader store.
type multiCountingStore struct {
	countingStore
	multi atomic.Int64
}

func (c *multiCountingStore) LoadMulti(ctx context.Context, reqs []session.LoadRequest) (map[string]session.Entry, error) {
	c.multi.Add(1)
	return c.Store.(session.MultiLoader).LoadMulti(ctx, reqs)
}

// TestBoundReadIsOneRoundTrip: a bound session is read with its user's
// epoch in one store call, and a read-only request writes nothing until
// ActivityInterval has passed, then refreshes last seen with one save.
func TestBoundReadIsOneRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newFakeClock()
		st, _, _ := b.new(t, clock)
		cs := &multiCountingStore{countingStore: countingStore{Store: st}}
		mgr := &session.Manager{Store: cs, Keys: testKeys, IdleTimeout: time.Hour, ActivityInterval: 10 * time.Minute}
		session.SetClock(mgr, clock.Now)
		d := login(t, mgr, "ann", "phone")
		before, multi := cs.calls(), cs.multi.Load()
		user, _ := whoami(mgr, d)
		assert.Equal(t, "ann", user)
		assert.Equal(t, before, cs.calls(), "no Load, Save or Delete")
		assert.Equal(t, multi+1, cs.multi.Load(), "one LoadMulti: the session and the epoch")

		clock.Advance(11 * time.Minute)
		before = cs.calls()
		whoami(mgr, d)
		assert.Equal(t, before[1]+1, cs.calls()[1], "one save refreshes last seen")
		list, err := mgr.UserSessions(context.Background(), "ann")
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.True(t, list[0].LastSeen.Equal(clock.Now()), "%v", list[0].LastSeen)
		before = cs.calls()
		whoami(mgr, d)
		assert.Equal(t, before, cs.calls(), "then no write for another interval")
	})
}

// TestConcurrentLogins: logins of one user racing each other are all
// listed (the list is kept by compare-and-swap).
func TestConcurrentLogins(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		mgr := &session.Manager{Store: st, Keys: testKeys}
		const n = 16
		var wg sync.WaitGroup
		start := make(chan struct{})
		devices := make([]*device, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				devices[i] = login(t, mgr, "ann", fmt.Sprint("device-", i))
			}()
		}
		close(start)
		wg.Wait()
		list, err := mgr.UserSessions(context.Background(), "ann")
		require.NoError(t, err)
		assert.Len(t, list, n)
		for _, d := range devices {
			user, _ := whoami(mgr, d)
			assert.Equal(t, "ann", user)
		}
	})
}

// TestMaxUserSessions: a login that would list more than MaxUserSessions
// signs out the oldest; sessions that ended meanwhile make room first.
func TestMaxUserSessions(t *testing.T) {
	leakcheck.Check(t)
	clock := newFakeClock()
	st := session.NewMemoryStore()
	session.SetStoreClock(st, clock.Now)
	defer st.Close()
	mgr := &session.Manager{Store: st, Keys: testKeys, MaxUserSessions: 3}
	session.SetClock(mgr, clock.Now)
	ctx := context.Background()
	var ds []*device
	for i := range 5 {
		clock.Advance(2 * time.Minute)
		ds = append(ds, login(t, mgr, "ann", fmt.Sprint("d", i)))
	}
	list, err := mgr.UserSessions(ctx, "ann")
	require.NoError(t, err)
	require.Len(t, list, 3)
	assert.Equal(t, "d4", list[0].UserAgent)
	assert.Equal(t, "d2", list[2].UserAgent)
	for i, d := range ds {
		user, _ := whoami(mgr, d)
		assert.Equal(t, i >= 2, user == "ann", "d%d", i)
	}

	// d3 logs out: the next login takes its place and signs nobody out.
	s, cm, _ := begin(mgr, ds[3].cookie)
	require.NoError(t, s.Destroy(ctx))
	require.NoError(t, cm.Save(ctx))
	clock.Advance(2 * time.Minute)
	login(t, mgr, "ann", "d5")
	list, err = mgr.UserSessions(ctx, "ann")
	require.NoError(t, err)
	var uas []string
	for _, us := range list {
		uas = append(uas, us.UserAgent)
	}
	assert.Equal(t, []string{"d5", "d4", "d2"}, uas)
}

// TestLoginFixation: Login renews the ID; the pre-login cookie is
// worthless and the new one carries the user, signed.
func TestLoginFixation(t *testing.T) {
	leakcheck.Check(t)
	mgr := &session.Manager{Keys: testKeys}
	defer mgr.Close()
	ctx := context.Background()
	pre := newSession(t, mgr)
	s, cm, rec := begin(mgr, pre)
	require.NoError(t, s.Login(ctx, "ann"))
	require.NoError(t, cm.Save(ctx))
	post := rec.Result().Cookies()[0]
	assert.NotEqual(t, pre.Value, post.Value)
	assert.False(t, load(mgr, pre).Has(ctx, "k"), "the pre-login ID is dead")
	assert.True(t, load(mgr, post).Has(ctx, "k"), "the data moved")
	assert.Equal(t, "ann", load(mgr, post).User(ctx))
	assert.Error(t, load(mgr, nil).Login(ctx, ""))
	assert.Error(t, load(mgr, nil).Login(ctx, strings.Repeat("x", 300)))
}

// TestRenewIDKeepsListing: a bound session that renews its ID stays
// signed in and listed under the same handle, and stays revocable.
func TestRenewIDKeepsListing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		mgr := &session.Manager{Store: st, Keys: testKeys}
		ctx := context.Background()
		d := login(t, mgr, "ann", "phone")
		handle := handleOf(mgr, d)
		s, cm, rec := begin(mgr, d.cookie)
		require.NoError(t, s.RenewID(ctx))
		require.NoError(t, cm.Save(ctx))
		require.Len(t, rec.Result().Cookies(), 1)
		renewed := &device{ua: "phone", cookie: rec.Result().Cookies()[0]}
		user, cart := whoami(mgr, renewed)
		assert.Equal(t, "ann", user)
		assert.True(t, cart)
		user, _ = whoami(mgr, d)
		assert.Equal(t, "", user, "the old ID is dead")
		list, err := mgr.UserSessions(ctx, "ann")
		require.NoError(t, err)
		require.Len(t, list, 1)
		assert.Equal(t, handle, list[0].Handle)
		require.NoError(t, mgr.RevokeSession(ctx, "ann", handle))
		user, _ = whoami(mgr, renewed)
		assert.Equal(t, "", user)
	})
}
