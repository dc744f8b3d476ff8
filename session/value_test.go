package session_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestValuesKeepTheirTypes: what Set stored, Session.Get returns as the
// same Go type, on every backend, after a round trip through the store,
// values, flashes and Update alike.
func TestValuesKeepTheirTypes(t *testing.T) {
	when := time.Date(2026, 5, 1, 12, 30, 0, 123, time.UTC)
	values := map[string]any{
		"bool": true, "string": "s", "int": 5, "int8": int8(-5), "int16": int16(300), "int32": int32(-70000),
		"int64": int64(1) << 40, "uint": uint(7), "uint8": uint8(200), "uint16": uint16(60000),
		"uint32": uint32(70000), "uint64": uint64(1) << 63, "float32": float32(0.5), "float64": 0.25,
		"bytes": []byte{0, 1, 0xff}, "time": when, "strings": []string{"a", "b"}, "ints": []int{1, 70000},
		"map": map[string]int{"a": 1}, "intkeys": map[int]string{3: "c"}, "nested": []map[string][]uint16{{"x": {1, 2}}},
		"anys": []any{"a", int8(1)}, "nilslice": []int(nil), "nil": nil, "times": []time.Time{when},
	}
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _, _ := b.new(t, nil)
		mgr := &session.Manager{Store: st, Keys: testKeys}
		ctx := context.Background()
		s, cm, rec := begin(mgr, nil)
		for k, v := range values {
			require.NoError(t, s.Set(k, v), k)
		}
		require.NoError(t, s.Flash("", 42))
		require.NoError(t, session.Update(ctx, s, "counter", func(n int, _ bool) int { return n + 1 }))
		require.NoError(t, cm.Save(ctx))
		ck := rec.Result().Cookies()[0]

		got := load(mgr, ck)
		for k, want := range values {
			v, ok := got.Get(ctx, k)
			require.True(t, ok, "%s: %v", k, got.Err())
			if tm, isTime := want.(time.Time); isTime {
				require.IsType(t, time.Time{}, v, k)
				assert.True(t, tm.Equal(v.(time.Time)), k)
				continue
			}
			if tms, isTimes := want.([]time.Time); isTimes {
				require.IsType(t, []time.Time{}, v, k)
				assert.True(t, tms[0].Equal(v.([]time.Time)[0]), k)
				continue
			}
			assert.Equal(t, want, v, "%s: %T", k, v)
		}
		n, _ := got.Get(ctx, "counter")
		assert.Equal(t, 1, n, "Update's value keeps its type")
		assert.Equal(t, []any{42}, got.Flashes(ctx, ""), "a flash keeps its type")
		assert.NoError(t, got.Err())
	})
}

// TestValuesWithoutTypeName: named types and structs, and values stored
// before type names existed, read back as msgpack decodes into an
// interface; the generic Get reads them exactly.
func TestValuesWithoutTypeName(t *testing.T) {
	leakcheck.Check(t)
	type Role string
	type Cart struct{ Items []string }
	mgr := &session.Manager{Keys: testKeys}
	defer mgr.Close()
	ctx := context.Background()
	s, cm, rec := begin(mgr, nil)
	require.NoError(t, s.Set("role", Role("admin")))
	require.NoError(t, s.Set("cart", Cart{Items: []string{"pen"}}))
	require.NoError(t, cm.Save(ctx))
	got := load(mgr, rec.Result().Cookies()[0])
	v, _ := got.Get(ctx, "role")
	assert.Equal(t, "admin", v)
	v, _ = got.Get(ctx, "cart")
	assert.Equal(t, map[string]any{"Items": []any{"pen"}}, v)
	role, ok := session.Get[Role](ctx, got, "role")
	assert.True(t, ok)
	assert.Equal(t, Role("admin"), role)
	cart, ok := session.Get[Cart](ctx, got, "cart")
	assert.True(t, ok)
	assert.Equal(t, []string{"pen"}, cart.Items)
}

// TestGetConverts: the generic Get converts numbers only where nothing is
// lost; a value that does not fit is ErrUndecodable.
func TestGetConverts(t *testing.T) {
	leakcheck.Check(t)
	type Level int8
	cases := []struct {
		stored any
		read   func(context.Context, *session.Session) (any, bool)
		want   any // nil: does not fit
	}{
		{5, getAs[int8], int8(5)},
		{int64(5), getAs[int], 5},
		{300, getAs[int8], nil},
		{-1, getAs[uint], nil},
		{uint64(1) << 63, getAs[int64], nil},
		{uint64(1) << 63, getAs[float64], float64(1 << 63)},
		{int64(1)<<53 + 1, getAs[float64], nil},
		{3, getAs[float32], float32(3)},
		{2.0, getAs[int], 2},
		{2.5, getAs[int], nil},
		{0.1, getAs[float32], nil},
		{float32(0.1), getAs[float64], float64(float32(0.1))},
		{7, getAs[Level], Level(7)},
		{[]int64{1, 2}, getAs[[]int8], []int8{1, 2}},
		{[]int{1, 300}, getAs[[]int8], nil},
		{map[string]int{"a": 1}, getAs[map[string]float64], map[string]float64{"a": 1}},
		{"a string", getAs[int], nil},
		{"text", getAs[[]byte], []byte("text")},
		{[]byte("raw"), getAs[string], "raw"},
		{true, getAs[int], nil},
		{[]any{1, "x"}, getAs[[]any], []any{int8(1), "x"}},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%T %v", tc.stored, tc.stored), func(t *testing.T) {
			mgr := &session.Manager{Keys: testKeys, ErrorFunc: func(http.ResponseWriter, *http.Request, error) {}}
			defer mgr.Close()
			ctx := context.Background()
			s, cm, rec := begin(mgr, nil)
			require.NoError(t, s.Set("k", tc.stored))
			require.NoError(t, cm.Save(ctx))
			got := load(mgr, rec.Result().Cookies()[0])
			v, ok := tc.read(ctx, got)
			if tc.want == nil {
				assert.False(t, ok, "read as %v", v)
				assert.ErrorIs(t, got.Err(), session.ErrUndecodable)
				return
			}
			assert.True(t, ok, "%v", got.Err())
			assert.Equal(t, tc.want, v)
		})
	}
}

func getAs[T any](ctx context.Context, s *session.Session) (any, bool) {
	return session.Get[T](ctx, s, "k")
}
