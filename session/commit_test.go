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

// newSession commits a session holding k=v and returns its cookie.
func newSession(t *testing.T, mgr *session.Manager) *http.Cookie {
	t.Helper()
	s := mgr.Load(request(nil))
	require.NoError(t, s.Set("k", "v"))
	h := http.Header{}
	require.NoError(t, mgr.Commit(context.Background(), h, s))
	cs := (&http.Response{Header: h}).Cookies()
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

		slow := mgr.Load(request(ck))
		v, ok := session.Get[string](ctx, slow, "k")
		require.True(t, ok)
		require.Equal(t, "v", v)
		oldKey := session.HashKey(session.DefaultKeyPrefix, slow.ID())

		login := mgr.Load(request(ck))
		require.NoError(t, login.RenewID(ctx))
		require.NoError(t, login.Set("user", "ann"))
		require.NoError(t, mgr.Commit(ctx, http.Header{}, login))

		require.NoError(t, slow.Set("late", "x"))
		err := mgr.Commit(ctx, http.Header{}, slow)
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
		h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "body first")
			require.NoError(t, session.FromContext(r.Context()).Set("late", "yes"))
		}))
		read := func(ck *http.Cookie) string {
			s := mgr.Load(request(ck))
			v, _ := session.Get[string](context.Background(), s, "late")
			return v
		}

		ck := newSession(t, mgr)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, request(ck))
		assert.Equal(t, "body first", rec.Body.String())
		assert.Equal(t, "yes", read(ck), "the late change was saved")
		assert.Empty(t, hookErrs)

		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, request(nil))
		assert.Equal(t, 200, rec.Code)
		assert.Equal(t, "body first", rec.Body.String(), "the hook cannot touch a started response")
		require.Len(t, hookErrs, 1)
		assert.ErrorIs(t, hookErrs[0], session.ErrHeadersSent)
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
		s := mgr.Load(request(ck))
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
		require.NoError(t, mgr.Commit(ctx, http.Header{}, s))
		assert.Len(t, mgr.Load(request(ck)).Keys(ctx), 11)
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

		r1, r2 := mgr.Load(request(ck)), mgr.Load(request(ck))
		require.True(t, r1.Has(ctx, "k"))
		require.True(t, r2.Has(ctx, "k"))
		require.NoError(t, r1.Set("a", 1))
		require.NoError(t, session.Update(ctx, r1, "n", func(n int, _ bool) int { return n + 1 }))
		require.NoError(t, r1.Flash("", "from r1"))
		require.NoError(t, r2.Set("b", 2))
		r2.Delete("k")
		require.NoError(t, session.Update(ctx, r2, "n", func(n int, _ bool) int { return n + 10 }))
		require.NoError(t, r2.Flash("", "from r2"))

		require.NoError(t, mgr.Commit(ctx, http.Header{}, r1))
		saves := cs.saves.Load()
		require.NoError(t, mgr.Commit(ctx, http.Header{}, r2))
		assert.Equal(t, saves+2, cs.saves.Load(), "r2 lost one compare-and-swap, then won")

		got := mgr.Load(request(ck))
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

		s := mgr.Load(request(ck))
		require.NoError(t, s.Set("mine", 1))
		_, ok := session.Get[int](ctx, s, "k") // "v" is no int
		assert.False(t, ok)
		assert.ErrorIs(t, s.Err(), session.ErrUndecodable)
		assert.Equal(t, []string{"mine"}, s.Keys(ctx))
		err := mgr.Commit(ctx, http.Header{}, s)
		assert.ErrorIs(t, err, session.ErrUndecodable)
		assert.False(t, session.Fatal(err))
		assert.Equal(t, []string{"mine"}, mgr.Load(request(ck)).Keys(ctx), "the fresh session was saved")
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

	s := mgr.Load(request(nil))
	assert.True(t, s.CreatedAt(ctx).IsZero(), "not saved yet")
	ck := newSession(t, mgr)
	clock.Advance(time.Hour)
	s = mgr.Load(request(ck))
	assert.True(t, start.Equal(s.CreatedAt(ctx)), "%v", s.CreatedAt(ctx))
	s.Clear()
	assert.True(t, start.Equal(s.CreatedAt(ctx)), "Clear keeps the lifetime running")
}
