package session_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/serializer"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// request returns a GET request carrying cookie, if any.
func request(cookie *http.Cookie) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	if cookie != nil {
		r.AddCookie(cookie)
	}
	return r
}

// begin starts a request carrying cookie (nil: none) through
// Manager.Begin and returns its session, the Commit that saves it and the
// response recorder.
func begin(mgr *session.Manager, cookie *http.Cookie) (*session.Session, *session.Commit, *httptest.ResponseRecorder) {
	rec := httptest.NewRecorder()
	r, cm := mgr.Begin(rec, request(cookie))
	return session.FromContext(r.Context()), cm, rec
}

// load returns the session of a request carrying cookie.
func load(mgr *session.Manager, cookie *http.Cookie) *session.Session {
	s, _, _ := begin(mgr, cookie)
	return s
}

// newSession saves a session holding k=v and returns its cookie.
func newSession(t *testing.T, mgr *session.Manager) *http.Cookie {
	t.Helper()
	s, cm, rec := begin(mgr, nil)
	require.NoError(t, s.Set("k", "v"))
	require.NoError(t, cm.Save(context.Background()))
	cs := rec.Result().Cookies()
	require.Len(t, cs, 1)
	return cs[0]
}

// TestRenewRaceDoesNotResurrect: a request that loaded the session before
// a concurrent login renewed its ID must not write the old ID back.
func TestRenewRaceDoesNotResurrect(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		mgr := &session.Manager{Store: st, Keys: testKeys}
		ctx := context.Background()
		ck := newSession(t, mgr)

		slow, slowCommit, _ := begin(mgr, ck)
		v, ok := session.Get[string](ctx, slow, "k")
		require.True(t, ok)
		require.Equal(t, "v", v)
		oldKey := session.HashKey(session.DefaultKeyPrefix, slow.ID())

		login, loginCommit, _ := begin(mgr, ck)
		require.NoError(t, login.RenewID(ctx))
		require.NoError(t, login.Set("user", "ann"))
		require.NoError(t, loginCommit.Save(ctx))

		require.NoError(t, slow.Set("late", "x"))
		err := slowCommit.Save(ctx)
		assert.ErrorIs(t, err, session.ErrEnded)
		assert.False(t, session.Fatal(err))
		_, found, err := st.Load(ctx, oldKey, 0)
		require.NoError(t, err)
		assert.False(t, found, "the pre-login ID stays dead")
	})
}

// TestRetriesExhausted: a save that keeps losing gives up after
// MaxRetries and is a fatal error (503 with the default hook).
func TestRetriesExhausted(t *testing.T) {
	leakcheck.Check(t)
	st := &alwaysConflicting{Store: session.NewMemoryStore()}
	mgr := &session.Manager{Store: st, Keys: testKeys, MaxRetries: 3}
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, session.FromContext(r.Context()).Set("k", 1))
		io.WriteString(w, "handler")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, request(nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, 4, st.saves, "one attempt plus MaxRetries")
	assert.Empty(t, rec.Result().Cookies(), "no cookie for a session that was not saved")
}

type alwaysConflicting struct {
	session.Store
	saves int
}

func (a *alwaysConflicting) Save(context.Context, string, session.Entry, time.Duration) error {
	a.saves++
	return session.ErrConflict
}

// TestChangesAfterResponseStarted: values set after the first byte are
// saved when the handler returns if the cookie is already out; a brand-new
// session cannot be, and the hook hears of it.
func TestChangesAfterResponseStarted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		var hookErrs []error
		mgr := &session.Manager{Store: st, Keys: testKeys, ErrorFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			hookErrs = append(hookErrs, err)
			session.DefaultErrorFunc(w, r, err)
		}}
		var setErr error
		h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "body first")
			setErr = session.FromContext(r.Context()).Set("late", "yes")
		}))
		read := func(ck *http.Cookie) string {
			s := load(mgr, ck)
			v, _ := session.Get[string](context.Background(), s, "late")
			return v
		}

		ck := newSession(t, mgr)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, request(ck))
		assert.Equal(t, "body first", rec.Body.String())
		assert.Equal(t, "yes", read(ck), "the late change was saved")
		assert.NoError(t, setErr)
		assert.Empty(t, hookErrs)

		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, request(nil))
		assert.Equal(t, 200, rec.Code)
		assert.Equal(t, "body first", rec.Body.String(), "the hook cannot touch a started response")
		assert.ErrorIs(t, setErr, session.ErrHeadersSent, "Set says the new session cannot be saved")
		require.Len(t, hookErrs, 1)
		assert.ErrorIs(t, hookErrs[0], session.ErrHeadersSent, "and the hook hears of it")
	})
}

// TestSessionSafeForConcurrentUse: goroutines of one request share its
// session.
func TestSessionSafeForConcurrentUse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		mgr := &session.Manager{Store: st, Keys: testKeys}
		ctx := context.Background()
		ck := newSession(t, mgr)
		s, cm, _ := begin(mgr, ck)
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				assert.NoError(t, s.Set(fmt.Sprint("g", i), i))
				_, _ = s.Get(ctx, "k")
				_ = s.Keys(ctx)
				s.Delete("nothing")
			}()
		}
		wg.Wait()
		require.NoError(t, cm.Save(ctx))
		assert.Len(t, load(mgr, ck).Keys(ctx), 11)
	})
}

// TestMergeOnConflict interleaves two requests deterministically: both
// load, one saves, the other loses its compare-and-swap and re-applies
// only its own changes.
func TestMergeOnConflict(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		cs := &countingStore{Store: st}
		mgr := &session.Manager{Store: cs, Keys: testKeys}
		ctx := context.Background()
		ck := newSession(t, mgr) // k=v

		r1, c1, _ := begin(mgr, ck)
		r2, c2, _ := begin(mgr, ck)
		require.True(t, r1.Has(ctx, "k"))
		require.True(t, r2.Has(ctx, "k"))
		require.NoError(t, r1.Set("a", 1))
		require.NoError(t, session.Update(ctx, r1, "n", func(n int, _ bool) int { return n + 1 }))
		require.NoError(t, r1.Flash("", "from r1"))
		require.NoError(t, r2.Set("b", 2))
		r2.Delete("k")
		require.NoError(t, session.Update(ctx, r2, "n", func(n int, _ bool) int { return n + 10 }))
		require.NoError(t, r2.Flash("", "from r2"))

		require.NoError(t, c1.Save(ctx))
		saves := cs.saves.Load()
		require.NoError(t, c2.Save(ctx))
		assert.Equal(t, saves+2, cs.saves.Load(), "r2 lost one compare-and-swap, then won")

		got := load(mgr, ck)
		assert.Equal(t, []string{"a", "b", "n"}, got.Keys(ctx), "r1's a, r2's b and r2's delete of k all hold")
		n, _ := session.Get[int](ctx, got, "n")
		assert.Equal(t, 11, n, "both updates count")
		assert.Equal(t, []any{"from r1", "from r2"}, got.Flashes(ctx, ""))
	})
}

// TestResetKeepsOwnChanges: when a stored value no longer decodes, the
// session starts fresh but keeps what this request already set.
func TestResetKeepsOwnChanges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		var hookErrs []error
		mgr := &session.Manager{Store: st, Keys: testKeys, ErrorFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			hookErrs = append(hookErrs, err)
		}}
		ctx := context.Background()
		ck := newSession(t, mgr) // k="v"

		s, cm, _ := begin(mgr, ck)
		require.NoError(t, s.Set("mine", 1))
		_, ok := session.Get[int](ctx, s, "k") // "v" is no int
		assert.False(t, ok)
		assert.ErrorIs(t, s.Err(), session.ErrUndecodable)
		assert.Equal(t, []string{"mine"}, s.Keys(ctx))
		err := cm.Save(ctx)
		assert.ErrorIs(t, err, session.ErrUndecodable)
		assert.False(t, session.Fatal(err))
		require.Len(t, hookErrs, 1, "the hook heard of it too")
		assert.ErrorIs(t, hookErrs[0], session.ErrUndecodable)
		assert.Equal(t, []string{"mine"}, load(mgr, ck).Keys(ctx), "the fresh session was saved")
	})
}

func TestCreatedAt(t *testing.T) {
	leakcheck.Check(t)
	clock := newFakeClock()
	mgr := &session.Manager{Keys: testKeys}
	session.SetClock(mgr, clock.Now)
	defer mgr.Close()
	ctx := context.Background()
	start := clock.Now()

	s := load(mgr, nil)
	assert.True(t, s.CreatedAt(ctx).IsZero(), "not saved yet")
	ck := newSession(t, mgr)
	clock.Advance(time.Hour)
	s = load(mgr, ck)
	assert.True(t, start.Equal(s.CreatedAt(ctx)), "%v", s.CreatedAt(ctx))
	s.Clear()
	assert.True(t, start.Equal(s.CreatedAt(ctx)), "Clear keeps the lifetime running")
}

// TestNoLifetime: a negative Lifetime means sessions have no absolute
// lifetime: they outlive DefaultLifetime, the record never expires without
// an IdleTimeout, and the cookie is a browser-session cookie.
func TestNoLifetime(t *testing.T) {
	leakcheck.Check(t)
	clock := newFakeClock()
	st := &recordingTTLStore{Store: session.NewMemoryStore()}
	session.SetStoreClock(st.Store.(*session.MemoryStore), clock.Now)
	mgr := &session.Manager{Store: st, Keys: testKeys, Lifetime: -1}
	session.SetClock(mgr, clock.Now)
	ctx := context.Background()

	s, cm, rec := begin(mgr, nil)
	require.NoError(t, s.Set("k", "v"))
	require.NoError(t, cm.Save(ctx))
	cs := rec.Result().Cookies()
	require.Len(t, cs, 1)
	assert.Zero(t, cs[0].MaxAge, "a browser-session cookie")
	assert.True(t, cs[0].Expires.IsZero())
	assert.Equal(t, []time.Duration{0}, st.ttls, "the record never expires")

	clock.Advance(10 * session.DefaultLifetime)
	v, ok := session.Get[string](ctx, load(mgr, cs[0]), "k")
	assert.True(t, ok, "the session is still there")
	assert.Equal(t, "v", v)

	// With an IdleTimeout the record expires after it.
	mgr2 := &session.Manager{Store: st, Keys: testKeys, Lifetime: -1, IdleTimeout: time.Hour}
	s, cm, _ = begin(mgr2, nil)
	require.NoError(t, s.Set("k", "v"))
	require.NoError(t, cm.Save(ctx))
	assert.Equal(t, time.Hour, st.ttls[len(st.ttls)-1])
}

type recordingTTLStore struct {
	session.Store
	ttls []time.Duration
}

func (r *recordingTTLStore) Save(ctx context.Context, key string, e session.Entry, ttl time.Duration) error {
	r.ttls = append(r.ttls, ttl)
	return r.Store.Save(ctx, key, e, ttl)
}

// TestRecordVersion: records carry their layout version; a version this
// reader does not know is undecodable (a fresh session), never misread.
func TestRecordVersion(t *testing.T) {
	leakcheck.Check(t)
	mem := session.NewMemoryStore()
	defer mem.Close()
	st := &recordingStore{Store: mem, saved: map[string]session.Entry{}}
	var hookErrs []error
	mgr := &session.Manager{Store: st, Keys: testKeys, ErrorFunc: func(w http.ResponseWriter, r *http.Request, err error) {
		hookErrs = append(hookErrs, err)
	}}
	ctx := context.Background()
	ck := newSession(t, mgr)
	require.Len(t, st.saved, 1)
	var key string
	var rec map[string]any
	for k, e := range st.saved {
		key = k
		require.NoError(t, (&serializer.Serializer{}).Unmarshal(e.Data, e.Flags, &rec))
	}
	assert.EqualValues(t, 1, rec["ver"], "written with its version")

	rec["ver"] = 2 // a layout from a later release
	data, flags, err := (&serializer.Serializer{}).Marshal(rec)
	require.NoError(t, err)
	e, _, err := mem.Load(ctx, key, 0)
	require.NoError(t, err)
	require.NoError(t, mem.Save(ctx, key, session.Entry{Data: data, Flags: flags, Version: e.Version}, time.Hour))
	s, cm, _ := begin(mgr, ck)
	assert.Empty(t, s.Keys(ctx), "a record of an unknown version reads as a fresh session")
	assert.ErrorIs(t, cm.Save(ctx), session.ErrUndecodable)
	require.NotEmpty(t, hookErrs)
	assert.ErrorIs(t, hookErrs[0], session.ErrUndecodable)
}
