package session_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/session"
)

// A visit counter with a flash message, on the in-memory store. In
// production, set Store to session.NewMemcacheStore(client) and Keys to
// secret keys shared by every process.
func Example() {
	mgr := &session.Manager{
		Keys: [][]byte{[]byte("a-32-byte-hash-key-for-signing!!"), nil},
	}
	defer mgr.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		s := session.FromContext(ctx)
		n, _ := session.Get[int](ctx, s, "visits")
		_ = s.Set("visits", n+1)
		if n == 0 {
			_ = s.Flash("", "welcome!")
		}
		fmt.Fprintf(w, "visit %d %v", n+1, s.Flashes(ctx, ""))
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		_ = s.RenewID(r.Context()) // a new ID against fixation, data kept
		_ = s.Set("user", "alice")
		_ = s.Flash("", "logged in")
	})
	h := middleware.Session(mgr)(mux)

	var cookie *http.Cookie
	do := func(path string) {
		req := httptest.NewRequest("GET", path, nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if cs := rec.Result().Cookies(); len(cs) > 0 {
			cookie = cs[0]
			fmt.Println("(new cookie)")
		}
		if body := rec.Body.String(); body != "" {
			fmt.Println(body)
		}
	}
	do("/")
	do("/")
	do("/login")
	do("/")
	// Output:
	// (new cookie)
	// visit 1 [welcome!]
	// visit 2 []
	// (new cookie)
	// visit 3 [logged in]
}

// Typed reads decode each value into the type asked for.
func ExampleGet() {
	mgr := &session.Manager{DevRandomKeys: true}
	defer mgr.Close()
	type Cart struct{ Items []string }
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		_ = s.Set("cart", Cart{Items: []string{"book", "pen"}})
		_ = s.Set("n", 7)
		cart, ok := session.Get[Cart](r.Context(), s, "cart")
		fmt.Println(cart.Items, ok)
		n, _ := session.Get[int64](r.Context(), s, "n")
		fmt.Println(n + 1)
		_, ok = session.Get[string](r.Context(), s, "missing")
		fmt.Println(ok)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	// Output:
	// [book pen] true
	// 8
	// false
}

// Update re-applies its function if a concurrent request changed the
// session first, so two tabs adding to one cart both count.
func ExampleUpdate() {
	mgr := &session.Manager{DevRandomKeys: true}
	defer mgr.Close()
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, s := r.Context(), session.FromContext(r.Context())
		_ = session.Update(ctx, s, "cart", func(cart []string, _ bool) []string {
			return append(cart, r.FormValue("item"))
		})
		cart, _ := session.Get[[]string](ctx, s, "cart")
		fmt.Println(cart)
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/?item=book", nil))
	req := httptest.NewRequest("GET", "/?item=pen", nil)
	req.AddCookie(rec.Result().Cookies()[0])
	h.ServeHTTP(httptest.NewRecorder(), req)
	// Output:
	// [book]
	// [book pen]
}

// Begin and Commit are what middleware.Session is built on, and what an
// adapter for another framework uses. Here the framework's handlers return
// their response instead of writing it: the adapter saves the session after
// the handler and before writing the response, so that the session's cookie
// goes out with it.
func ExampleManager_Begin() {
	mgr := &session.Manager{Keys: [][]byte{[]byte("a-32-byte-hash-key-for-signing!!"), nil}}
	defer mgr.Close()

	type handler func(r *http.Request) (status int, body string)
	adapt := func(h handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, commit := mgr.Begin(w, r) // no I/O yet
			status, body := h(r)
			// Errors go to mgr.ErrorFunc too; a client that hangs up
			// must not cancel the save.
			if err := commit.Save(context.WithoutCancel(r.Context())); err != nil && commit.Replaced() {
				return // the error hook wrote the response
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		})
	}
	visits := adapt(func(r *http.Request) (int, string) {
		s := session.FromContext(r.Context())
		n, _ := session.Get[int](r.Context(), s, "n")
		_ = s.Set("n", n+1)
		return http.StatusOK, fmt.Sprintf("visit %d", n+1)
	})

	rec := httptest.NewRecorder()
	visits.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	cookie := rec.Result().Cookies()[0]
	fmt.Println(rec.Body.String(), "sets", cookie.Name)

	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(cookie)
	rec = httptest.NewRecorder()
	visits.ServeHTTP(rec, req)
	fmt.Println(rec.Body.String(), "sets", len(rec.Result().Cookies()), "cookies")
	// Output:
	// visit 1 sets memkit_session
	// visit 2 sets 0 cookies
}

// Login binds a session to a user; the Manager then lists the user's
// sessions and revokes them one by one, all but the current one, or all.
// A revoked session is empty on its next request, in every process that
// shares the store.
func ExampleSession_Login() {
	mgr := &session.Manager{Keys: [][]byte{[]byte("a-32-byte-hash-key-for-signing!!"), nil}}
	defer mgr.Close()
	ctx := context.Background()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if err := s.Login(r.Context(), r.FormValue("user")); err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%q", session.FromContext(r.Context()).User(r.Context()))
	})
	mux.HandleFunc("POST /logout-others", func(w http.ResponseWriter, r *http.Request) {
		_ = mgr.RevokeOtherSessions(r.Context(), session.FromContext(r.Context()))
	})
	h := middleware.Session(mgr)(mux)

	// do sends a request from a device (its cookie, its user agent).
	do := func(device *http.Cookie, ua, method, path string) (*http.Cookie, string) {
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("User-Agent", ua)
		if device != nil {
			req.AddCookie(device)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if cs := rec.Result().Cookies(); len(cs) > 0 {
			device = cs[0]
		}
		return device, rec.Body.String()
	}
	phone, _ := do(nil, "phone", "POST", "/login?user=ann")
	laptop, _ := do(nil, "laptop", "POST", "/login?user=ann")
	tablet, _ := do(nil, "tablet", "POST", "/login?user=ann")

	list, _ := mgr.UserSessions(ctx, "ann")
	fmt.Println("signed in on", len(list), "devices")

	for _, us := range list { // newest first; each with its handle, user agent, IP, times
		if us.UserAgent == "phone" {
			_ = mgr.RevokeSession(ctx, "ann", us.Handle)
		}
	}
	_, me := do(phone, "phone", "GET", "/me")
	fmt.Println("phone:", me)

	do(laptop, "laptop", "POST", "/logout-others")
	_, me = do(tablet, "tablet", "GET", "/me")
	fmt.Println("tablet:", me)
	_, me = do(laptop, "laptop", "GET", "/me")
	fmt.Println("laptop:", me)

	_ = mgr.RevokeUser(ctx, "ann") // log out everywhere
	_, me = do(laptop, "laptop", "GET", "/me")
	fmt.Println("laptop:", me)
	// Output:
	// signed in on 3 devices
	// phone: ""
	// tablet: ""
	// laptop: "ann"
	// laptop: ""
}
