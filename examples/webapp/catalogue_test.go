package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// The product list over SQLite: a page of 50 products costs one IN query
// cold and none warm, on both protocols and in the in-memory mode; a half
// warm list asks the query for exactly the missing half.
func TestProductListOneQuery(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name     string
		protocol memclient.Protocol
		memory   bool
	}{
		{"meta", memclient.ProtocolMeta, false},
		{"text", memclient.ProtocolText, false},
		{"in-memory", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mc memclient.Config
			if !tc.memory {
				srv := memcachetest.Start(t, memcachetest.Options{})
				mc = memclient.Config{Servers: []memclient.Server{{Addr: srv.Addr}}, Protocol: tc.protocol}
			}
			s := startShop(t, mc)
			ctx := context.Background()
			db := s.app.db
			ids := func(from, to int64) []int64 {
				var out []int64
				for id := from; id <= to; id++ {
					out = append(out, id)
				}
				return out
			}
			list := func(ids []int64) {
				t.Helper()
				ps, err := s.app.listProducts(ctx, ids)
				require.NoError(t, err)
				require.Len(t, ps, len(ids))
				for i, p := range ps {
					require.Equal(t, ids[i], p.ID, "in the order asked")
					require.NotEmpty(t, p.Name)
				}
			}
			q0, in0, keys0 := db.Queries(), db.inQueries.Load(), db.inKeys.Load()
			list(ids(101, 150))
			assert.Equal(t, int64(1), db.Queries()-q0, "cold: one query")
			assert.Equal(t, int64(1), db.inQueries.Load()-in0, "an IN query")
			assert.Equal(t, int64(50), db.inKeys.Load()-keys0, "for the 50 products")

			q0 = db.Queries()
			list(ids(101, 150))
			assert.Zero(t, db.Queries()-q0, "warm: no query")

			q0, keys0 = db.Queries(), db.inKeys.Load()
			list(ids(126, 175))
			assert.Equal(t, int64(1), db.Queries()-q0, "half warm: one query")
			assert.Equal(t, int64(25), db.inKeys.Load()-keys0, "for the 25 missing products")

			// The product pages share the values.
			q0 = db.Queries()
			p, err := s.app.productByID(ctx, 175)
			require.NoError(t, err)
			assert.Equal(t, int64(175), p.ID)
			assert.Zero(t, db.Queries()-q0)

			// A product that does not exist is left out, and (on
			// memcached) cached as such.
			list(ids(299, 300))
			ps, err := s.app.listProducts(ctx, []int64{300, 301, 299})
			require.NoError(t, err)
			assert.Len(t, ps, 2)
			if !tc.memory {
				q0 = db.Queries()
				_, err = s.app.listProducts(ctx, []int64{301, 299})
				require.NoError(t, err)
				assert.Zero(t, db.Queries()-q0, "the missing product is a cached not-found")
			}
		})
	}
}

// startShopDB is startShop with a given database file, for several shops
// (processes) on one database.
func startShopDB(t *testing.T, mc memclient.Config, dbPath string) *shop {
	t.Helper()
	tw := &testWriter{t: t}
	a, err := newApp(context.Background(), config{Memcached: mc, DBPath: dbPath, Log: tw.logger()})
	require.NoError(t, err)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, a.Close())
	})
	return &shop{t: t, app: a, srv: srv, c: newBrowser(t), log: tw}
}

// Editing a product through one shop process shows on the next request
// to every process: its page, its JSON and the cached catalogue page.
func TestEditProductInvalidatesEverywhere(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	for _, proto := range []memclient.Protocol{memclient.ProtocolMeta, memclient.ProtocolText} {
		t.Run(proto.String(), func(t *testing.T) {
			mc := memclient.Config{Servers: []memclient.Server{{Addr: srvs[0].Addr}, {Addr: srvs[1].Addr}}, Protocol: proto}
			dbPath := filepath.Join(t.TempDir(), "shop.db")
			a := startShopDB(t, mc, dbPath)
			b := startShopDB(t, mc, dbPath)
			c := a.app.client
			require.NoError(t, c.FlushAll(context.Background()))

			// Both processes have product 7 and the catalogue cached.
			for _, s := range []*shop{a, b} {
				for range 2 {
					resp, body := s.do(s.c, "GET", "/products/7", nil)
					require.Equal(t, http.StatusOK, resp.StatusCode)
					assert.NotContains(t, body, "Renamed lamp")
					resp, _ = s.do(s.c, "GET", "/", nil)
					require.Equal(t, http.StatusOK, resp.StatusCode)
				}
				resp, _ := s.do(s.c, "GET", "/products/7", nil)
				assert.Equal(t, "hit", resp.Header.Get("X-Cache"))
				resp, _ = s.do(s.c, "GET", "/", nil)
				assert.Equal(t, "HIT", resp.Header.Get("X-Cache"))
			}

			resp, body := a.post("/admin/products/7", `{"name": "Renamed lamp", "price_cents": 1234}`)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
			assert.Contains(t, body, `"name": "Renamed lamp"`)

			for _, s := range []*shop{b, a} {
				resp, body := s.do(s.c, "GET", "/products/7", nil)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Contains(t, body, "Renamed lamp")
				assert.Contains(t, body, "€12.34")
				resp, body = s.do(s.c, "GET", "/api/products/7", nil)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Contains(t, body, "Renamed lamp")
				resp, body = s.do(s.c, "GET", "/", nil)
				require.Equal(t, http.StatusOK, resp.StatusCode)
				assert.Contains(t, body, ">Renamed lamp</a>", "the cached catalogue page went too")
			}
		})
	}
}

// The edit's refusals.
func TestEditProductRefused(t *testing.T) {
	leakcheck.Check(t)
	s := startShop(t, memclient.Config{})
	for _, tc := range []struct {
		name, path, ctype, body string
		want                    int
	}{
		{"form post (cross-site)", "/admin/products/7", "application/x-www-form-urlencoded", "name=x", http.StatusUnsupportedMediaType},
		{"bad id", "/admin/products/x", "application/json", `{}`, http.StatusBadRequest},
		{"no such product", "/admin/products/100000", "application/json", `{"name": "x"}`, http.StatusNotFound},
		{"unknown field", "/admin/products/7", "application/json", `{"nme": "x"}`, http.StatusBadRequest},
		{"empty name", "/admin/products/7", "application/json", `{"name": " "}`, http.StatusBadRequest},
		{"negative price", "/admin/products/7", "application/json", `{"price_cents": -1}`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", s.srv.URL+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", tc.ctype)
			resp, err := s.c.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.want, resp.StatusCode)
		})
	}
	// Not from loopback.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/admin/products/7", strings.NewReader(`{"name": "x"}`))
	req.RemoteAddr = "192.0.2.1:1234"
	req.Header.Set("Content-Type", "application/json")
	s.app.Handler().ServeHTTP(rec, req)
	assert.Equal(t, http.StatusForbidden, rec.Code)

	// In the in-memory mode an edit clears the local memo.
	_, body := s.do(s.c, "GET", "/products/7", nil)
	require.NotContains(t, body, "Edited")
	resp, body := s.post("/admin/products/7", `{"name": "Edited"}`)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	_, body = s.do(s.c, "GET", "/products/7", nil)
	assert.Contains(t, body, "Edited")
}

// post sends a JSON POST.
func (s *shop) post(path, body string) (*http.Response, string) {
	s.t.Helper()
	req, err := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(body))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.c.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp, string(b)
}
