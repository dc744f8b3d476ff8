package middleware_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/session"
)

// Session wraps a ServeMux; handlers find their session in the request
// context. The in-memory store keeps the example self-contained.
func ExampleSession() {
	mgr := &session.Manager{Keys: [][]byte{[]byte("a-32-byte-hash-key-for-signing!!"), nil}}
	defer mgr.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /cart/{item}", func(w http.ResponseWriter, r *http.Request) {
		_ = session.FromContext(r.Context()).Set("cart:"+r.PathValue("item"), 1)
	})
	mux.HandleFunc("GET /cart", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, session.FromContext(r.Context()).Keys(r.Context()))
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok") // never touches the session: no store call
	})
	srv := httptest.NewServer(middleware.Session(mgr)(mux))
	defer srv.Close()

	resp, _ := http.Post(srv.URL+"/cart/book", "", nil)
	resp.Body.Close()
	cookie := resp.Cookies()[0]
	fmt.Println(resp.Header.Get("Vary"), resp.Header.Get("Cache-Control"))

	req, _ := http.NewRequest("POST", srv.URL+"/cart/pen", nil)
	req.AddCookie(cookie)
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()

	req, _ = http.NewRequest("GET", srv.URL+"/cart", nil)
	req.AddCookie(cookie)
	resp, _ = http.DefaultClient.Do(req)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))
	// Output:
	// Cookie no-cache="Set-Cookie"
	// [cart:book cart:pen]
}
