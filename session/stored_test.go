package session_test

// Sessions stored by earlier releases must keep loading, so that a rolling
// deploy signs nobody out. testdata/stored/ holds what a release wrote for
// the sessions in storedSessions: the cookie the browser kept, the store
// key and the record's bytes and flags. TestStoredSessions loads every
// file there through today's Manager, forever.
//
// The files are history: never regenerate one. When a release changes
// what it writes, run
//
//	go test ./session -run TestStoredSessions -write-stored=NAME
//
// to add testdata/stored/NAME.json (it refuses to overwrite a file).

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/middleware"
	"github.com/memkit/memkit/serializer"
	"github.com/memkit/memkit/session"
)

var writeStored = flag.String("write-stored", "", "write the sessions of storedSessions, as this code stores them, to testdata/stored/NAME.json")

// The settings every stored session was written with. The lifetime is
// long so that the signed cookies, whose timestamps securecookie checks
// against the real clock, stay valid.
var (
	storedCreated  = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	storedLifetime = 100 * 365 * 24 * time.Hour
	storedHashKey  = []byte("stored-sessions-hash-key-32bytes")
	storedBlockKey = []byte("stored-block-key")
)

type storedSessionFile struct {
	WrittenBy string          `json:"written_by"`
	Sessions  []storedSession `json:"sessions"`
}

type storedSession struct {
	Name   string `json:"name"`
	Cookie string `json:"cookie"`
	Key    string `json:"key"`
	Flags  uint32 `json:"flags"`
	Data   []byte `json:"data"`
}

type storedSessionCase struct {
	name    string
	encrypt bool // the cookie is encrypted (a block key), not only signed
	ser     *serializer.Serializer
	values  map[string]any      // by key; checked with session.Get of the value's type
	flashes map[string][]string // by category
}

func storedSessions() []storedSessionCase {
	long := make([]string, 80)
	for i := range long {
		long[i] = "item-" + strings.Repeat("abc", i%5) + "-" + string(rune('a'+i%26))
	}
	return []storedSessionCase{
		{name: "login", values: map[string]any{"user": "ada", "visits": 3}},
		{name: "cart", encrypt: true, values: map[string]any{
			"user": "grace", "cart": []string{"cup", "saucer", "cup"}, "count": 3,
		}},
		{name: "types", values: map[string]any{
			"flag": true, "ratio": 0.25, "big": int64(1) << 40, "neg": -70000,
			"blob": []byte{0, 1, 0xff}, "prefs": map[string]string{"theme": "dark", "lang": "fr"},
			"when": time.Date(2026, 4, 30, 8, 15, 0, 0, time.UTC),
		}},
		{name: "flashes", values: map[string]any{"user": "alan"},
			flashes: map[string][]string{"": {"welcome back"}, "error": {"card declined", "try again"}}},
		{name: "large-compressed", values: map[string]any{"history": long, "user": "edsger"}},
		{name: "json-codec", ser: &serializer.Serializer{Codec: serializer.JSON}, values: map[string]any{"user": "barbara", "n": 9}},
	}
}

// recordingStore remembers the last entry saved under each key.
type recordingStore struct {
	session.Store
	mu    sync.Mutex // protects saved
	saved map[string]session.Entry
}

func (s *recordingStore) Save(ctx context.Context, key string, e session.Entry, ttl time.Duration) error {
	s.mu.Lock()
	s.saved[key] = e
	s.mu.Unlock()
	return s.Store.Save(ctx, key, e, ttl)
}

func storedManager(c storedSessionCase, st session.Store) *session.Manager {
	keys := [][]byte{storedHashKey, nil}
	if c.encrypt {
		keys[1] = storedBlockKey
	}
	m := &session.Manager{Store: st, Serializer: c.ser, Keys: keys, Lifetime: storedLifetime,
		Cookie: session.CookieConfig{Insecure: true}}
	session.SetClock(m, func() time.Time { return storedCreated.Add(time.Hour) })
	return m
}

func TestStoredSessions(t *testing.T) {
	cases := storedSessions()
	if *writeStored != "" {
		writeStoredSessions(t, *writeStored, cases)
		return
	}
	files, err := filepath.Glob(filepath.Join("testdata", "stored", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no stored sessions to check")
	byName := make(map[string]storedSessionCase)
	for _, c := range cases {
		byName[c.name] = c
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			var sf storedSessionFile
			require.NoError(t, json.Unmarshal(b, &sf))
			require.NotEmpty(t, sf.Sessions)
			// Releases before type names (e0feaa0) read back untyped.
			typed := sf.WrittenBy != "memkit e0feaa0"
			for _, ss := range sf.Sessions {
				c, ok := byName[ss.Name]
				require.True(t, ok, "%s: no case named %q: cases may be added, never renamed or removed", file, ss.Name)
				checkStoredSession(t, c, ss, typed)
			}
		})
	}
}

func checkStoredSession(t *testing.T, c storedSessionCase, ss storedSession, typed bool) {
	ctx := context.Background()
	st := session.NewMemoryStore()
	defer st.Close()
	require.NoError(t, st.Save(ctx, ss.Key, session.Entry{Data: ss.Data, Flags: ss.Flags}, time.Hour))
	// Today's Manager with default settings otherwise reads it: the
	// serializer flags say how the record was encoded.
	mgr := storedManager(storedSessionCase{encrypt: c.encrypt}, st)
	var hookErrs []error
	mgr.ErrorFunc = func(w http.ResponseWriter, r *http.Request, err error) { hookErrs = append(hookErrs, err) }
	checked := 0
	h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, s := r.Context(), session.FromContext(r.Context())
		assert.False(t, s.IsNew(ctx), "%s: the stored session was not found", c.name)
		assert.Equal(t, storedCreated.Add(-time.Minute).UnixNano(), s.CreatedAt(ctx).UnixNano(), c.name)
		var keys []string
		for k, want := range c.values {
			keys = append(keys, k)
			checkStoredValue(t, ctx, s, c.name+": "+k, k, want)
			if typed {
				v, _ := s.Get(ctx, k)
				assert.IsType(t, want, v, "%s: %s keeps its type", c.name, k)
			}
			checked++
		}
		assert.ElementsMatch(t, keys, s.Keys(ctx), c.name)
		for cat, want := range c.flashes {
			var got []string
			for _, f := range s.Flashes(ctx, cat) {
				got = append(got, f.(string))
			}
			assert.Equal(t, want, got, "%s: flashes %q", c.name, cat)
		}
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: session.DefaultCookieName, Value: ss.Cookie})
	h.ServeHTTP(httptest.NewRecorder(), req)
	assert.Empty(t, hookErrs, c.name)
	assert.Equal(t, len(c.values), checked, c.name)
}

func checkStoredValue(t *testing.T, ctx context.Context, s *session.Session, msg, k string, want any) {
	var (
		got any
		ok  bool
	)
	switch want.(type) {
	case string:
		got, ok = session.Get[string](ctx, s, k)
	case int:
		got, ok = session.Get[int](ctx, s, k)
	case int64:
		got, ok = session.Get[int64](ctx, s, k)
	case bool:
		got, ok = session.Get[bool](ctx, s, k)
	case float64:
		got, ok = session.Get[float64](ctx, s, k)
	case []byte:
		got, ok = session.Get[[]byte](ctx, s, k)
	case []string:
		got, ok = session.Get[[]string](ctx, s, k)
	case map[string]string:
		got, ok = session.Get[map[string]string](ctx, s, k)
	case time.Time:
		var tm time.Time
		tm, ok = session.Get[time.Time](ctx, s, k)
		got = tm.UTC()
	default:
		t.Fatalf("%s: no check for %T", msg, want)
	}
	assert.True(t, ok, msg)
	assert.Equal(t, want, got, msg)
}

func writeStoredSessions(t *testing.T, name string, cases []storedSessionCase) {
	path := filepath.Join("testdata", "stored", name+".json")
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s exists: stored sessions are history, write a new file", path)
	}
	sf := storedSessionFile{WrittenBy: "memkit " + name}
	for _, c := range cases {
		st := &recordingStore{Store: session.NewMemoryStore(), saved: map[string]session.Entry{}}
		mgr := storedManager(c, st)
		// The session is created a minute before the clock's now.
		session.SetClock(mgr, func() time.Time { return storedCreated.Add(-time.Minute) })
		h := middleware.Session(mgr)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s := session.FromContext(r.Context())
			for k, v := range c.values {
				require.NoError(t, s.Set(k, v))
			}
			for cat, list := range c.flashes {
				for _, f := range list {
					require.NoError(t, s.Flash(cat, f))
				}
			}
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		cookies := rec.Result().Cookies()
		require.Len(t, cookies, 1, c.name)
		require.Len(t, st.saved, 1, c.name)
		for key, e := range st.saved {
			sf.Sessions = append(sf.Sessions, storedSession{Name: c.name, Cookie: cookies[0].Value, Key: key, Flags: e.Flags, Data: e.Data})
		}
	}
	b, err := json.MarshalIndent(sf, "", "\t")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
	t.Logf("wrote %s", path)
}
