package session

import (
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
// cookies with one byte changed: none panics and none yields a session ID,
// while the unchanged cookie does.
func FuzzDecodeCookie(f *testing.F) {
	m := &Manager{Keys: [][]byte{[]byte("fuzz-hash-key-fuzz-hash-key-0123"), []byte("fedcba9876543210")}}
	m.init()
	f.Add("", uint16(0), byte(0))
	f.Add("garbage", uint16(3), byte(1))
	f.Add("MTc5NTI1MTIzN3xzT0RXeUstVmZzR0dtVWQxdzBkX0pEWG5zQm5KVGEzNVhEemZyQllVdzhkUzMza3JkZmRLUUdGWG1rYVNhTUtnfE2jRql569D8jmcJ27aSidsYLsEFt3iPgkZiKrrIjzxw", uint16(40), byte(0x20))
	f.Fuzz(func(t *testing.T, value string, pos uint16, xor byte) {
		require.Empty(t, m.decodeCookie(value), "a value the Manager did not sign decoded")

		id := newID()
		good, err := m.encodeCookie(id)
		require.NoError(t, err)
		require.Equal(t, id, m.decodeCookie(good))
		if xor == 0 {
			return
		}
		b := []byte(good)
		b[int(pos)%len(b)] ^= xor
		require.Empty(t, m.decodeCookie(string(b)), "a changed cookie decoded")
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
