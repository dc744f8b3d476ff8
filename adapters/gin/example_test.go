package memkitgin_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"
	memkitgin "github.com/memkit/memkit/adapters/gin"
	"github.com/memkit/memkit/session"
)

// memkit sessions in a gin engine: the cookie of a new session goes out
// with gin's response. The in-memory store keeps the example
// self-contained; in production, set Store to
// session.NewMemcacheStore(client).
func ExampleSessions() {
	gin.SetMode(gin.ReleaseMode)
	mgr := &session.Manager{Keys: [][]byte{[]byte("a-32-byte-hash-key-for-signing!!"), nil}}
	defer mgr.Close()
	r := gin.New()
	r.Use(memkitgin.Sessions(mgr))
	r.GET("/", func(c *gin.Context) {
		s := memkitgin.Default(c)
		n, _ := session.Get[int](c.Request.Context(), s, "visits")
		_ = s.Set("visits", n+1)
		c.String(http.StatusOK, "visit %d", n+1)
	})

	var cookie *http.Cookie
	for range 2 {
		req := httptest.NewRequest("GET", "/", nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if cs := rec.Result().Cookies(); len(cs) > 0 {
			cookie = cs[0]
		}
		fmt.Println(rec.Body.String(), len(rec.Result().Cookies()))
	}
	// Output:
	// visit 1 1
	// visit 2 0
}
