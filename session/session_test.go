package session_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// app is a test web app on a Manager.
type app struct {
	mgr   *session.Manager
	srv   *httptest.Server
	store *countingStore

	mu   sync.Mutex // protects errs
	errs []error    // what the error hook saw
}

type appOptions struct {
	idle, lifetime time.Duration
	clock          *fakeClock
	hook           func(w http.ResponseWriter, r *http.Request, err error) // nil: record, then default
	keys           [][]byte
}

func newApp(t *testing.T, st session.Store, o appOptions) *app {
	t.Helper()
	a := &app{store: &countingStore{Store: st}}
	keys := o.keys
	if keys == nil {
		keys = testKeys
	}
	a.mgr = &session.Manager{
		Store:       a.store,
		Keys:        keys,
		IdleTimeout: o.idle,
		Lifetime:    o.lifetime,
		Cookie:      session.CookieConfig{Insecure: true},
		ErrorFunc: func(w http.ResponseWriter, r *http.Request, err error) {
			a.mu.Lock()
			a.errs = append(a.errs, err)
			a.mu.Unlock()
			if o.hook != nil {
				o.hook(w, r, err)
				return
			}
			session.DefaultErrorFunc(w, r, err)
		},
	}
	if o.clock != nil {
		session.SetClock(a.mgr, o.clock.Now)
	}
	mux := http.NewServeMux()
	sess := func(r *http.Request) *session.Session { return session.FromContext(r.Context()) }
	mux.HandleFunc("GET /set", func(w http.ResponseWriter, r *http.Request) {
		for k, v := range r.URL.Query() {
			if err := sess(r).Set(k, v[0]); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /setint", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, sess(r).Set(r.FormValue("k"), 42))
	})
	mux.HandleFunc("GET /get", func(w http.ResponseWriter, r *http.Request) {
		v, ok := session.Get[string](r.Context(), sess(r), r.FormValue("k"))
		if !ok {
			v = "<none>"
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("GET /getint", func(w http.ResponseWriter, r *http.Request) {
		v, ok := session.Get[int](r.Context(), sess(r), r.FormValue("k"))
		fmt.Fprint(w, v, ok)
	})
	mux.HandleFunc("GET /del", func(w http.ResponseWriter, r *http.Request) {
		sess(r).Delete(r.FormValue("k"))
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Join(sess(r).Keys(r.Context()), ","))
	})
	mux.HandleFunc("GET /id", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, sess(r).ID())
	})
	mux.HandleFunc("GET /isnew", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, sess(r).IsNew(r.Context()))
	})
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		s := sess(r)
		if err := s.RenewID(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		require.NoError(t, s.Set("user", r.FormValue("user")))
	})
	mux.HandleFunc("GET /logout", func(w http.ResponseWriter, r *http.Request) {
		_ = sess(r).Destroy(r.Context())
	})
	mux.HandleFunc("GET /flash", func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, sess(r).Flash(r.FormValue("cat"), r.FormValue("m")))
	})
	mux.HandleFunc("GET /flashes", func(w http.ResponseWriter, r *http.Request) {
		var out []string
		for _, f := range sess(r).Flashes(r.Context(), r.FormValue("cat")) {
			out = append(out, fmt.Sprint(f))
		}
		io.WriteString(w, strings.Join(out, ","))
	})
	mux.HandleFunc("GET /clear", func(w http.ResponseWriter, r *http.Request) {
		sess(r).Clear()
	})
	mux.HandleFunc("GET /cartadd", func(w http.ResponseWriter, r *http.Request) {
		ctx, s := r.Context(), sess(r)
		require.NoError(t, session.Update(ctx, s, "cart", func(cart []string, _ bool) []string {
			return append(cart, r.FormValue("item"))
		}))
		require.NoError(t, session.Update(ctx, s, "count", func(n int, _ bool) int { return n + 1 }))
	})
	mux.HandleFunc("GET /cart", func(w http.ResponseWriter, r *http.Request) {
		cart, _ := session.Get[[]string](r.Context(), sess(r), "cart")
		n, _ := session.Get[int](r.Context(), sess(r), "count")
		slices.Sort(cart)
		fmt.Fprint(w, n, " ", strings.Join(cart, ","))
	})
	mux.HandleFunc("GET /untouched", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})
	a.srv = httptest.NewServer(middleware.Session(a.mgr)(mux))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) hookErrs() []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]error(nil), a.errs...)
}

// get fetches path with c and returns the status and body.
func (a *app) get(t *testing.T, c *http.Client, path string) (int, string) {
	t.Helper()
	resp, err := c.Get(a.srv.URL + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func (a *app) body(t *testing.T, c *http.Client, path string) string {
	t.Helper()
	code, body := a.get(t, c, path)
	require.Equal(t, http.StatusOK, code, body)
	return body
}

// forEachBackend runs f over memcached and the memory store.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			leakcheck.Check(t)
			f(t, b)
		})
	}
}

func TestSetGetDeleteKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		a := newApp(t, st, appOptions{})
		c := newJarClient(t)
		assert.Equal(t, "true", a.body(t, c, "/isnew"))
		assert.Equal(t, "ok", a.body(t, c, "/set?a=1&b=2"))
		assert.Equal(t, "false", a.body(t, c, "/isnew"))
		assert.Equal(t, "1", a.body(t, c, "/get?k=a"))
		assert.Equal(t, "a,b", a.body(t, c, "/keys"))
		a.body(t, c, "/del?k=a")
		assert.Equal(t, "<none>", a.body(t, c, "/get?k=a"))
		assert.Equal(t, "b", a.body(t, c, "/keys"))
		a.body(t, c, "/setint?k=n")
		assert.Equal(t, "42 true", a.body(t, c, "/getint?k=n"))
		a.body(t, c, "/clear")
		assert.Equal(t, "", a.body(t, c, "/keys"))
		assert.Empty(t, a.hookErrs())
	})
}

func TestLazyCosts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		a := newApp(t, st, appOptions{idle: time.Hour})
		c := newJarClient(t)

		// A new visitor who never touches the session: no store call, no cookie.
		resp, err := c.Get(a.srv.URL + "/untouched")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Empty(t, resp.Header.Values("Set-Cookie"))
		assert.Equal(t, [3]int64{}, a.store.calls())

		// A read of a new session: no store call either (no cookie, no record).
		a.body(t, c, "/get?k=x")
		assert.Equal(t, [3]int64{}, a.store.calls())

		a.body(t, c, "/set?x=1") // a write: one load (merge base), one save
		assert.Equal(t, [3]int64{0, 1, 0}, a.store.calls(), "a new session's write is a single add")

		a.body(t, c, "/untouched") // has a cookie, never touches it
		assert.Equal(t, [3]int64{0, 1, 0}, a.store.calls())

		a.body(t, c, "/get?k=x") // a read: one round trip, no write
		assert.Equal(t, [3]int64{1, 1, 0}, a.store.calls())

		a.body(t, c, "/set?x=2") // a write to an existing session: load + CAS
		assert.Equal(t, [3]int64{2, 2, 0}, a.store.calls())
	})
}

func TestLoginRenewID(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		a := newApp(t, st, appOptions{})
		c := newJarClient(t)
		a.body(t, c, "/set?cart=book")
		oldCookie := sessionCookie(t, c, a.srv.URL)
		require.NotNil(t, oldCookie)
		oldID := a.body(t, c, "/id")

		a.body(t, c, "/login?user=alice")
		newCookie := sessionCookie(t, c, a.srv.URL)
		require.NotNil(t, newCookie)
		assert.NotEqual(t, oldCookie.Value, newCookie.Value, "login issues a new cookie")
		newID := a.body(t, c, "/id")
		assert.NotEqual(t, oldID, newID)
		assert.Equal(t, "book", a.body(t, c, "/get?k=cart"), "data survives RenewID")
		assert.Equal(t, "alice", a.body(t, c, "/get?k=user"))

		_, found, err := st.Load(context.Background(), session.HashKey(session.DefaultKeyPrefix, oldID), 0)
		require.NoError(t, err)
		assert.False(t, found, "the old record is deleted")
		_, found, err = st.Load(context.Background(), session.HashKey(session.DefaultKeyPrefix, newID), 0)
		require.NoError(t, err)
		assert.True(t, found)

		// An attacker holding the pre-login cookie gets nothing.
		attacker := &http.Client{Timeout: 10 * time.Second}
		req, _ := http.NewRequest("GET", a.srv.URL+"/get?k=user", nil)
		req.AddCookie(oldCookie)
		resp, err := attacker.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "<none>", string(body))
	})
}

func TestLogoutDestroy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		a := newApp(t, st, appOptions{})
		c := newJarClient(t)
		a.body(t, c, "/login?user=bob")
		ck := sessionCookie(t, c, a.srv.URL)
		id := a.body(t, c, "/id")

		resp, err := c.Get(a.srv.URL + "/logout")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		setCookie := resp.Header.Get("Set-Cookie")
		assert.Contains(t, setCookie, session.DefaultCookieName+"=;")
		assert.Contains(t, setCookie, "Max-Age=0")
		assert.Equal(t, "Cookie", resp.Header.Get("Vary"))
		assert.Nil(t, sessionCookie(t, c, a.srv.URL), "the browser dropped the cookie")

		_, found, err := st.Load(context.Background(), session.HashKey(session.DefaultKeyPrefix, id), 0)
		require.NoError(t, err)
		assert.False(t, found, "the record is deleted")

		// Replaying the old cookie finds nothing, and a write under it starts
		// a session with a new ID rather than resurrecting the old one.
		replay := &http.Client{Timeout: 10 * time.Second}
		req, _ := http.NewRequest("GET", a.srv.URL+"/set?user=mallory", nil)
		req.AddCookie(ck)
		resp, err = replay.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		_, found, err = st.Load(context.Background(), session.HashKey(session.DefaultKeyPrefix, id), 0)
		require.NoError(t, err)
		assert.False(t, found, "the old ID is not resurrected")
		assert.Contains(t, resp.Header.Get("Set-Cookie"), session.DefaultCookieName+"=")
		assert.NotContains(t, resp.Header.Get("Set-Cookie"), ck.Value)
	})
}

func TestFlashes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		a := newApp(t, st, appOptions{})
		c := newJarClient(t)
		a.body(t, c, "/flash?m=saved")
		a.body(t, c, "/flash?m=again")
		a.body(t, c, "/flash?cat=err&m=oops")
		assert.Equal(t, "saved,again", a.body(t, c, "/flashes"))
		assert.Equal(t, "", a.body(t, c, "/flashes"), "flashes are consumed")
		assert.Equal(t, "oops", a.body(t, c, "/flashes?cat=err"))
		assert.Equal(t, "", a.body(t, c, "/flashes?cat=err"))
	})
}

func TestIdleTimeout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newFakeClock()
		st, _, client := b.new(t, clock)
		a := newApp(t, st, appOptions{idle: 10 * time.Minute, lifetime: 24 * time.Hour, clock: clock})
		c := newJarClient(t)
		a.body(t, c, "/set?k=v")
		id := a.body(t, c, "/id")
		key := session.HashKey(session.DefaultKeyPrefix, id)

		if client != nil {
			// memcached keeps its own clock: check the TTL the reads set.
			lease, err := client.GetLease(context.Background(), key, memclient.LeaseOptions{})
			require.NoError(t, err)
			assert.InDelta(t, (10 * time.Minute).Seconds(), lease.TTL.Seconds(), 2, "saved with the idle timeout")
			require.NoError(t, client.Touch(context.Background(), key, time.Minute))
			a.body(t, c, "/get?k=k")
			lease, err = client.GetLease(context.Background(), key, memclient.LeaseOptions{})
			require.NoError(t, err)
			assert.InDelta(t, (10 * time.Minute).Seconds(), lease.TTL.Seconds(), 2, "a read slides the TTL")
			return
		}
		for range 5 { // reads 9 minutes apart keep it alive for 45 minutes
			clock.Advance(9 * time.Minute)
			assert.Equal(t, "v", a.body(t, c, "/get?k=k"))
		}
		clock.Advance(11 * time.Minute)
		assert.Equal(t, "<none>", a.body(t, c, "/get?k=k"), "idle for 11 minutes")
		assert.Equal(t, "true", a.body(t, c, "/isnew"))
	})
}

func TestAbsoluteLifetime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		clock := newFakeClock()
		st, _, _ := b.new(t, clock)
		a := newApp(t, st, appOptions{idle: 30 * time.Minute, lifetime: time.Hour, clock: clock})
		c := newJarClient(t)
		a.body(t, c, "/set?k=v")
		oldID := a.body(t, c, "/id")
		for range 2 {
			clock.Advance(20 * time.Minute)
			assert.Equal(t, "v", a.body(t, c, "/get?k=k"))
		}
		clock.Advance(20 * time.Minute) // idle sliding kept it, but the hour is up
		assert.Equal(t, "<none>", a.body(t, c, "/get?k=k"))
		a.body(t, c, "/set?k=w")
		assert.NotEqual(t, oldID, a.body(t, c, "/id"), "a session past its lifetime gets a new ID")
		assert.Equal(t, "w", a.body(t, c, "/get?k=k"))
	})
}

func TestLongLifetimeOverThirtyDays(t *testing.T) {
	leakcheck.Check(t)
	st, _, client := backends[0].new(t, nil)
	a := newApp(t, st, appOptions{lifetime: 60 * 24 * time.Hour})
	c := newJarClient(t)
	a.body(t, c, "/set?k=v")
	assert.Equal(t, "v", a.body(t, c, "/get?k=k"))
	lease, err := client.GetLease(context.Background(), session.HashKey(session.DefaultKeyPrefix, a.body(t, c, "/id")), memclient.LeaseOptions{})
	require.NoError(t, err)
	assert.InDelta(t, (60 * 24 * time.Hour).Seconds(), lease.TTL.Seconds(), 5)
	ck := sessionCookie(t, c, a.srv.URL)
	require.NotNil(t, ck)
}

// TestFifteenYearLifetime: a Lifetime past what memcached's 32-bit
// exptime holds (January 2038) keeps sessions until then instead of
// losing every one at once, as it did when the absolute time overflowed.
func TestFifteenYearLifetime(t *testing.T) {
	leakcheck.Check(t)
	st, _, client := backends[0].new(t, nil)
	a := newApp(t, st, appOptions{lifetime: 15 * 365 * 24 * time.Hour})
	c := newJarClient(t)
	a.body(t, c, "/set?k=v")
	assert.Equal(t, "v", a.body(t, c, "/get?k=k"), "the session survived its first save")
	lease, err := client.GetLease(context.Background(), session.HashKey(session.DefaultKeyPrefix, a.body(t, c, "/id")), memclient.LeaseOptions{})
	require.NoError(t, err)
	assert.InDelta(t, time.Until(time.Unix(math.MaxInt32, 0)).Seconds(), lease.TTL.Seconds(), 5, "kept until 2038")
}

func TestTamperedCookie(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		a := newApp(t, st, appOptions{})
		c := newJarClient(t)
		a.body(t, c, "/set?k=secret")
		good := sessionCookie(t, c, a.srv.URL)
		require.NotNil(t, good)

		other := securecookie.New([]byte("another-hash-key-of-32-bytes!!!!"), nil)
		other.SetSerializer(securecookie.NopEncoder{})
		forged, err := other.Encode(session.DefaultCookieName, make([]byte, 32))
		require.NoError(t, err)
		flipped := []byte(good.Value)
		flipped[len(flipped)/2] ^= 1

		for _, tc := range []struct{ name, value string }{
			{"garbage", "not-a-cookie"},
			{"flipped byte", string(flipped)},
			{"truncated", good.Value[:len(good.Value)-3]},
			{"signed with another key", forged},
			{"huge", strings.Repeat("A", 5000)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := a.store.calls()
				req, _ := http.NewRequest("GET", a.srv.URL+"/get?k=k", nil)
				req.AddCookie(&http.Cookie{Name: session.DefaultCookieName, Value: tc.value})
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				assert.Equal(t, "<none>", string(body))
				assert.Equal(t, before, a.store.calls(), "no store lookup for a bad cookie")
			})
		}
		assert.Equal(t, "secret", a.body(t, c, "/get?k=k"), "the good cookie still works")
	})
}

func TestKeyRotation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		old := [][]byte{[]byte("old-hash-key-0123456789abcdefghi"), nil}
		a1 := newApp(t, st, appOptions{keys: old})
		c := newJarClient(t)
		a1.body(t, c, "/set?k=v")
		ck := sessionCookie(t, c, a1.srv.URL)

		rotated := append([][]byte{[]byte("new-hash-key-0123456789abcdefghi"), []byte("new-block-key-16")}, old...)
		a2 := newApp(t, st, appOptions{keys: rotated})
		req, _ := http.NewRequest("GET", a2.srv.URL+"/get?k=k", nil)
		req.AddCookie(ck)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "v", string(body), "a cookie signed with the old key still decodes")

		c2 := newJarClient(t)
		a2.body(t, c2, "/set?k=w")
		ck2 := sessionCookie(t, c2, a2.srv.URL)
		req, _ = http.NewRequest("GET", a1.srv.URL+"/get?k=k", nil)
		req.AddCookie(ck2)
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "<none>", string(body), "new cookies use the new key")
	})
}

func TestUndecodableRecord(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		a := newApp(t, st, appOptions{})
		c := newJarClient(t)
		ctx := context.Background()
		a.body(t, c, "/set?k=v&other=x")
		key := session.HashKey(session.DefaultKeyPrefix, a.body(t, c, "/id"))

		// Overwrite the record with bytes no codec reads.
		e, found, err := st.Load(ctx, key, 0)
		require.NoError(t, err)
		require.True(t, found)
		require.NoError(t, st.Save(ctx, key, session.Entry{Data: []byte("\xc1garbage"), Flags: e.Flags, Version: e.Version}, time.Hour))

		for i := range 3 { // never a 500, on any request
			code, body := a.get(t, c, "/get?k=k")
			assert.Equal(t, 200, code)
			assert.Equal(t, "<none>", body, "request %d", i)
		}
		errs := a.hookErrs()
		require.NotEmpty(t, errs)
		assert.ErrorIs(t, errs[0], session.ErrUndecodable)
		assert.Len(t, errs, 1, "the first request replaced the record with a fresh one")
		a.body(t, c, "/set?k=new")
		assert.Equal(t, "new", a.body(t, c, "/get?k=k"))
		assert.Equal(t, "k", a.body(t, c, "/keys"))
	})
}

func TestValueTypeChanged(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		a := newApp(t, st, appOptions{})
		c := newJarClient(t)
		a.body(t, c, "/set?n=not-a-number&other=x")
		code, body := a.get(t, c, "/getint?k=n") // the new deploy wants an int
		assert.Equal(t, 200, code)
		assert.Equal(t, "0 false", body)
		errs := a.hookErrs()
		require.Len(t, errs, 1)
		assert.ErrorIs(t, errs[0], session.ErrUndecodable)
		assert.False(t, session.Fatal(errs[0]))
		assert.Equal(t, "", a.body(t, c, "/keys"), "the user got a fresh session")
	})
}

// TestConcurrentWritersAllSurvive fires 50 concurrent requests on one
// session, each adding a distinct cart item: none is lost, whether each
// item is its own key (per-key merge) or all go into one list and one
// counter through Update (re-applied on conflict).
func TestConcurrentWritersAllSurvive(t *testing.T) {
	const n = 50
	var items []string
	for i := range n {
		items = append(items, fmt.Sprintf("item%02d", i))
	}
	cases := []struct {
		name string
		path func(i int) string
		read string
		want string
	}{
		{"a key per item", func(i int) string { return fmt.Sprintf("/set?item%02d=1", i) }, "/keys", strings.Join(items, ",") + ",user"},
		{"one list via Update", func(i int) string { return fmt.Sprintf("/cartadd?item=item%02d", i) }, "/cart", fmt.Sprint(n, " ", strings.Join(items, ","))},
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				st, _, _ := b.new(t, nil)
				a := newApp(t, st, appOptions{idle: time.Hour})
				c := newJarClient(t)
				a.body(t, c, "/set?user=carol")
				ck := sessionCookie(t, c, a.srv.URL)
				require.NotNil(t, ck)

				tr := &http.Transport{MaxConnsPerHost: n, MaxIdleConnsPerHost: n}
				defer tr.CloseIdleConnections()
				hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
				start := make(chan struct{})
				var wg sync.WaitGroup
				codes := make([]int, n)
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						req, _ := http.NewRequest("GET", a.srv.URL+tc.path(i), nil)
						req.AddCookie(ck)
						resp, err := hc.Do(req)
						if err != nil {
							codes[i] = -1
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						codes[i] = resp.StatusCode
					}()
				}
				close(start)
				wg.Wait()
				for i, code := range codes {
					assert.Equal(t, 200, code, "request %d", i)
				}
				assert.Equal(t, tc.want, a.body(t, c, tc.read))
				assert.Empty(t, a.hookErrs())
			})
		}
	})
}

func TestMemcachedKilled(t *testing.T) {
	leakcheck.Check(t)
	st, srv, _ := backends[0].new(t, nil)
	a := newApp(t, st, appOptions{})
	c := newJarClient(t)
	a.body(t, c, "/set?k=v")
	srv.Kill()

	code, body := a.get(t, c, "/get?k=k")
	assert.Equal(t, http.StatusServiceUnavailable, code, body)
	code, _ = a.get(t, c, "/set?k=w")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	code, body = a.get(t, c, "/untouched")
	assert.Equal(t, 200, code, "a handler that never touches the session runs normally")
	assert.Equal(t, "hello", body)
	errs := a.hookErrs()
	require.Len(t, errs, 2)
	for _, err := range errs {
		assert.ErrorIs(t, err, session.ErrStore)
		assert.True(t, session.Fatal(err))
	}

	// A hook that only records lets the handler answer with an empty session.
	lenient := newApp(t, st, appOptions{hook: func(http.ResponseWriter, *http.Request, error) {}})
	code, body = lenient.get(t, c, "/get?k=k")
	assert.Equal(t, 200, code)
	assert.Equal(t, "<none>", body)
	require.Len(t, lenient.hookErrs(), 1)
	assert.ErrorIs(t, lenient.hookErrs()[0], session.ErrStore)
}

func TestCookieAttributes(t *testing.T) {
	leakcheck.Check(t)
	cases := []struct {
		name   string
		cookie session.CookieConfig
		want   []string
		absent []string
	}{
		{"defaults", session.CookieConfig{}, []string{"memkit_session=", "Path=/", "Max-Age=86400", "HttpOnly", "Secure", "SameSite=Lax", "Expires="}, []string{"Partitioned", "Domain"}},
		{"custom", session.CookieConfig{Name: "sid", Path: "/app", Domain: "example.com", Insecure: true, NoHTTPOnly: true, SameSite: http.SameSiteStrictMode, Partitioned: true},
			[]string{"sid=", "Path=/app", "Domain=example.com", "SameSite=Strict", "Partitioned"}, []string{"HttpOnly", "Secure"}},
		{"browser session", session.CookieConfig{BrowserSession: true}, []string{"memkit_session="}, []string{"Max-Age", "Expires"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mgr := &session.Manager{Cookie: tc.cookie, Keys: testKeys}
			defer mgr.Close()
			h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				require.NoError(t, session.FromContext(r.Context()).Set("k", 1))
			}))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			sc := rec.Header().Get("Set-Cookie")
			for _, w := range tc.want {
				assert.Contains(t, sc, w)
			}
			for _, w := range tc.absent {
				assert.NotContains(t, sc, w)
			}
			assert.Equal(t, "Cookie", rec.Header().Get("Vary"))
			assert.Equal(t, `no-cache="Set-Cookie"`, rec.Header().Get("Cache-Control"))
		})
	}
}

func TestMemcacheKeyRevealsNoCookie(t *testing.T) {
	leakcheck.Check(t)
	st, _, client := backends[0].new(t, nil)
	a := newApp(t, st, appOptions{})
	c := newJarClient(t)
	a.body(t, c, "/set?k=v")
	id := a.body(t, c, "/id")
	ck := sessionCookie(t, c, a.srv.URL)
	_, err := client.Get(context.Background(), session.DefaultKeyPrefix+id)
	assert.ErrorIs(t, err, memclient.ErrCacheMiss, "the raw ID is not a key")
	key := session.HashKey(session.DefaultKeyPrefix, id)
	it, err := client.Get(context.Background(), key)
	require.NoError(t, err)
	assert.NotContains(t, key, id)
	assert.NotContains(t, key, ck.Value)
	assert.NotContains(t, string(it.Value), id)
}

func TestDefaultManagerMemoryStore(t *testing.T) {
	leakcheck.Check(t)
	mgr := &session.Manager{Cookie: session.CookieConfig{Insecure: true}, DevRandomKeys: true}
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, _ := session.Get[int](r.Context(), s, "n")
		require.NoError(t, s.Set("n", n+1))
		fmt.Fprint(w, n+1)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := newJarClient(t)
	for i := 1; i <= 3; i++ {
		resp, err := c.Get(srv.URL)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, fmt.Sprint(i), string(b))
	}
	require.NoError(t, mgr.Close())
	resp, err := c.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 503, resp.StatusCode, "the closed store fails like a dead memcached")
}

func TestFatal(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{session.ErrUndecodable, false},
		{fmt.Errorf("x: %w", session.ErrEnded), false},
		{errors.Join(session.ErrUndecodable, session.ErrEnded), false},
		{errors.Join(session.ErrUndecodable, fmt.Errorf("%w: boom", session.ErrStore)), true},
		{session.ErrConflict, true},
		{context.DeadlineExceeded, true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			assert.Equal(t, tc.want, session.Fatal(tc.err))
		})
	}
}
