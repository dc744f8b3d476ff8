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
