package session

import (
	"math"
	"strings"
	"testing"

	"github.com/memkit/memkit/serializer"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// FuzzDecodeRecord feeds arbitrary stored bytes and flags to the record
// decoder: it never panics, and whatever it accepts re-encodes to a record
// that decodes to the same values.
func FuzzDecodeRecord(f *testing.F) {
	ser := &serializer.Serializer{}
	good := &record{Created: 1, Values: map[string]msgpack.RawMessage{"a": {0x01}, "b": {0xa1, 'x'}},
		Flashes: map[string][]msgpack.RawMessage{"": {{0xc3}}}}
	data, flags, err := encodeRecord(ser, good)
	require.NoError(f, err)
	f.Add(data, flags)
	f.Add([]byte{}, uint32(0))
	f.Add([]byte("\xc1garbage"), flags)
	f.Add(data[:len(data)/2], flags)
	f.Add(data, flags^0xffff)
	f.Fuzz(func(t *testing.T, data []byte, flags uint32) {
		rec, err := decodeRecord(ser, data, flags)
		if err != nil {
			require.ErrorIs(t, err, ErrUndecodable)
			return
		}
		again, f2, err := encodeRecord(ser, rec)
		require.NoError(t, err)
		rec2, err := decodeRecord(ser, again, f2)
		require.NoError(t, err)
		require.Equal(t, rec.Created, rec2.Created)
		require.Equal(t, len(rec.Values), len(rec2.Values))
		for k, v := range rec.Values {
			var a, b any
			if decodeValue(v, &a) == nil {
				require.NoError(t, decodeValue(rec2.Values[k], &b))
			}
		}
	})
}

// FuzzDecodeCookie feeds arbitrary cookie values to the Manager, and real
// cookies (bound to a user or not) with one byte changed: none panics and
// none yields a session ID, while the unchanged cookie does.
func FuzzDecodeCookie(f *testing.F) {
	m := &Manager{Keys: [][]byte{[]byte("fuzz-hash-key-fuzz-hash-key-0123"), []byte("fedcba9876543210")}}
	m.init()
	f.Add("", "", uint16(0), byte(0))
	f.Add("garbage", "ann", uint16(3), byte(1))
	f.Add("MTc5NTI1MTIzN3xzT0RXeUstVmZzR0dtVWQxdzBkX0pEWG5zQm5KVGEzNVhEemZyQllVdzhkUzMza3JkZmRLUUdGWG1rYVNhTUtnfE2jRql569D8jmcJ27aSidsYLsEFt3iPgkZiKrrIjzxw", "user@example.com", uint16(40), byte(0x20))
	f.Fuzz(func(t *testing.T, value, user string, pos uint16, xor byte) {
		id, _ := m.decodeCookie(value)
		require.Empty(t, id, "a value the Manager did not sign decoded")
		if len(user) > maxUserID {
			user = user[:maxUserID]
		}

		id = newID()
		good, err := m.encodeCookie(id, user)
		require.NoError(t, err)
		gotID, gotUser := m.decodeCookie(good)
		require.Equal(t, id, gotID)
		require.Equal(t, user, gotUser)
		if xor == 0 {
			return
		}
		b := []byte(good)
		b[int(pos)%len(b)] ^= xor
		gotID, _ = m.decodeCookie(string(b))
		require.Empty(t, gotID, "a changed cookie decoded")
	})
}

// FuzzParseType feeds arbitrary type names, as a store could hold them,
// to the parser: it never panics, and what it accepts names itself back.
func FuzzParseType(f *testing.F) {
	for _, s := range []string{"int", "[]uint8", "map[string][]time.Time", "map[int64]map[string]any", "[][]", "map[", "map[any]int", "[]" + strings.Repeat("[]", 40) + "int"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		typ, err := parseType(name)
		if err != nil {
			return
		}
		require.Equal(t, name, typeName(typ))
	})
}

// FuzzValueRoundTrip: a value of a named type decodes back to the very
// same type and value; a number read into another number type converts
// only when nothing is lost.
func FuzzValueRoundTrip(f *testing.F) {
	f.Add(int64(5), uint64(300), 2.5, "x", true)
	f.Add(int64(math.MinInt64), uint64(math.MaxUint64), math.Inf(1), "", false)
	f.Fuzz(func(t *testing.T, i int64, u uint64, fl float64, s string, b bool) {
		if math.IsNaN(fl) {
			fl = 1.5 // NaN equals nothing, itself included
		}
		for _, v := range []any{i, int(i), int8(i), int16(i), int32(i), u, uint(u), uint8(u), uint16(u), uint32(u),
			fl, float32(fl), s, b, []byte(s), []int64{i}, map[string]uint64{s: u}, map[int8][]float64{int8(i): {fl}}} {
			raw, typ, err := encodeValue(v)
			require.NoError(t, err)
			require.NotEmpty(t, typ, "%T", v)
			got, err := decodeAny(raw, typ)
			require.NoError(t, err)
			require.Equal(t, v, got)
		}
		raw, _, err := encodeValue(i)
		require.NoError(t, err)
		var i8 int8
		if err := decodeValue(raw, &i8); err == nil {
			require.Equal(t, i, int64(i8))
		} else {
			require.True(t, i < math.MinInt8 || i > math.MaxInt8, "%d refused", i)
		}
		var f64 float64
		if err := decodeValue(raw, &f64); err == nil {
			require.Equal(t, i, int64(f64))
		}
		raw, _, err = encodeValue(fl)
		require.NoError(t, err)
		var n int
		if err := decodeValue(raw, &n); err == nil {
			require.Equal(t, fl, float64(n))
		}
	})
}

// FuzzParseEpoch: an epoch record never panics the parser, and what it
// accepts formats back to the same text.
func FuzzParseEpoch(f *testing.F) {
	f.Add("v1 5")
	f.Add("v1 5 handle 4")
	f.Add("v2 5")
	f.Add("v1 0")
	f.Fuzz(func(t *testing.T, s string) {
		ep := parseEpoch(Entry{Data: []byte(s)}, true)
		if !ep.found {
			return
		}
		require.Equal(t, ep, parseEpoch(Entry{Data: []byte(ep.String())}, true))
	})
}

// FuzzChangesApply checks the merge: this request's sets and deletes
// always win over the base, and every other base key survives.
func FuzzChangesApply(f *testing.F) {
	f.Add([]byte("abc"), []byte("bcd"), []byte("ce"))
	f.Fuzz(func(t *testing.T, baseKeys, setKeys, delKeys []byte) {
		base := &record{Created: 5, Values: map[string]msgpack.RawMessage{}}
		for _, k := range baseKeys {
			base.Values[string(k)] = msgpack.RawMessage{0x00}
		}
		var c changes
		sets := map[string]bool{}
		dels := map[string]bool{}
		for _, k := range delKeys {
			*c.op(string(k)) = keyOp{del: true}
			dels[string(k)] = true
		}
		for _, k := range setKeys {
			*c.op(string(k)) = keyOp{set: msgpack.RawMessage{0x01}}
			sets[string(k)] = true
			delete(dels, string(k))
		}
		out := c.apply(base)
		require.Equal(t, int64(5), out.Created)
		for k := range sets {
			require.Equal(t, msgpack.RawMessage{0x01}, out.Values[k])
		}
		for k := range dels {
			require.NotContains(t, out.Values, k)
		}
		for k := range base.Values {
			set, del := sets[k], dels[k]
			if !set && !del {
				require.Equal(t, msgpack.RawMessage{0x00}, out.Values[k])
			}
		}
		require.Len(t, base.Values, len(uniq(baseKeys)), "apply does not modify the base")
	})
}

func uniq(b []byte) map[byte]bool {
	m := map[byte]bool{}
	for _, c := range b {
		m[c] = true
	}
	return m
}
