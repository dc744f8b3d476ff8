package session

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/memkit/memkit/serializer"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// codecRecords are records with at most one entry per map (so that the
// encoding, which follows Go's map order, is deterministic), each field
// empty in one and set in another.
func codecRecords() map[string]*record {
	raw := msgpack.RawMessage{0xcd, 0x30, 0x39} // 12345
	return map[string]*record{
		"minimal": {Created: 1},
		"counter": {Version: recordVersion, Created: 1764633600123456789,
			Values: map[string]msgpack.RawMessage{"n": raw}, Types: map[string]string{"n": "int"}},
		"everything": {Version: recordVersion, Created: 1 << 62,
			Values:     map[string]msgpack.RawMessage{"a long key of more than thirty-one bytes": {0xc0}},
			Types:      map[string]string{"t": "map[string][]time.Time"},
			Flashes:    map[string][]msgpack.RawMessage{"": {{0xa1, 'x'}, {0xc3}}},
			FlashTypes: map[string][]string{"": {"string", ""}},
			Lifetime:   -1, Persist: -1, User: "ada@example.com", Handle: "h1", Epoch: 1<<64 - 1, Seen: -5},
		"big ints": {Created: -1 << 40, Lifetime: 1 << 33, Persist: 1, Epoch: 200, Seen: 70000},
		"nil lists": {Created: 3, Flashes: map[string][]msgpack.RawMessage{"x": nil},
			FlashTypes: map[string][]string{"x": nil}},
	}
}

// TestRecordCodecMatchesReflection: the record's own msgpack methods write
// the very bytes msgpack writes by reflection under the serializer's
// settings, and read back what reflection reads.
func TestRecordCodecMatchesReflection(t *testing.T) {
	ser := &serializer.Serializer{Compressor: serializer.None}
	for name, r := range codecRecords() {
		t.Run(name, func(t *testing.T) {
			fast, flags, err := ser.Marshal(r)
			require.NoError(t, err)
			slow, slowFlags, err := ser.Marshal((*plainRecord)(r))
			require.NoError(t, err)
			assert.Equal(t, slow, fast)
			assert.Equal(t, slowFlags, flags)

			var viaFast record
			require.NoError(t, ser.Unmarshal(fast, flags, &viaFast))
			var viaSlow plainRecord
			require.NoError(t, ser.Unmarshal(fast, flags, &viaSlow))
			assert.Equal(t, record(viaSlow), viaFast)
		})
	}
}

// TestRecordCodecStored: every stored record of every release decodes the
// same through the record's methods as through reflection.
func TestRecordCodecStored(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "stored", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	ser := &serializer.Serializer{}
	n := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		var sf struct {
			Sessions []struct {
				Name  string `json:"name"`
				Flags uint32 `json:"flags"`
				Data  []byte `json:"data"`
			} `json:"sessions"`
		}
		require.NoError(t, json.Unmarshal(b, &sf))
		for _, ss := range sf.Sessions {
			var fast record
			var slow plainRecord
			errFast := ser.Unmarshal(ss.Data, ss.Flags, &fast)
			errSlow := ser.Unmarshal(ss.Data, ss.Flags, &slow)
			require.Equal(t, errSlow == nil, errFast == nil, "%s %s: %v, %v", file, ss.Name, errFast, errSlow)
			assert.Equal(t, record(slow), fast, "%s %s", file, ss.Name)
			n++
		}
	}
	assert.Positive(t, n)
}

// FuzzRecordCodec: on any bytes the record's decoder fails where
// reflection fails and reads what it reads; whatever it reads, its encoder
// writes what reflection's encoder writes (up to the order of map
// entries: both read back the same).
func FuzzRecordCodec(f *testing.F) {
	ser := &serializer.Serializer{Compressor: serializer.None}
	var flags uint32
	for _, r := range codecRecords() {
		data, fl, err := ser.Marshal(r)
		require.NoError(f, err)
		flags = fl
		f.Add(data)
		f.Add(data[:len(data)-1])
	}
	f.Add([]byte{0xc0})                                                                     // nil
	f.Add([]byte{0x92, 0x01, 0x02})                                                         // an array
	f.Add([]byte{0x81, 0xa1, 'v', 0xc0})                                                    // "v": nil
	f.Add([]byte{0x82, 0xa1, 'c', 0x01, 0x01, 0x02})                                        // a key that is not a string
	f.Add([]byte{0x81, 0xa1, 'z', 0x93, 1, 2, 3})                                           // an unknown field
	f.Add([]byte{0x82, 0xa1, 'v', 0x81, 0xa1, 'a', 0x01, 0xa1, 'v', 0x81, 0xa1, 'b', 0x02}) // "v" twice
	f.Add([]byte{0x81, 0xa1, 'v', 0xdf, 0xff, 0xff, 0xff, 0xff})                            // a huge map length
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast record
		var slow plainRecord
		errFast := ser.Unmarshal(data, flags, &fast)
		errSlow := ser.Unmarshal(data, flags, &slow)
		require.Equal(t, errSlow == nil, errFast == nil, "fast: %v, reflection: %v", errFast, errSlow)
		if errFast != nil {
			return
		}
		require.Equal(t, record(slow), fast)
		byFast, fl, err := ser.Marshal(&fast)
		require.NoError(t, err)
		bySlow, fl2, err := ser.Marshal((*plainRecord)(&fast))
		require.NoError(t, err)
		require.Equal(t, len(bySlow), len(byFast))
		var a, b plainRecord
		require.NoError(t, ser.Unmarshal(byFast, fl, &a))
		require.NoError(t, ser.Unmarshal(bySlow, fl2, &b))
		require.Equal(t, b, a)
	})
}

// TestCookieCache: a cookie the Manager verified (or issued) is
// remembered with what it holds; a tampered or foreign one never is; the
// cache stays bounded and serves concurrent requests.
func TestCookieCache(t *testing.T) {
	m := &Manager{Keys: [][]byte{[]byte("cache-hash-key-cache-hash-key-01"), []byte("0123456789abcdef")}}
	m.init()
	id := newID()
	v, err := m.encodeCookie(id, "ada")
	require.NoError(t, err)
	got, ok := m.verified.get(v)
	require.True(t, ok, "an issued cookie is remembered")
	assert.Equal(t, verifiedCookie{id: id, user: "ada"}, got)

	other := &Manager{Keys: [][]byte{[]byte("other-hash-key-other-hash-key-01"), nil}}
	other.init()
	foreign, err := other.encodeCookie(newID(), "")
	require.NoError(t, err)
	for _, bad := range []string{"", "garbage", v[:len(v)-1], v + "x", foreign} {
		gotID, _ := m.decodeCookie(bad)
		assert.Empty(t, gotID, "%q", bad)
		_, ok := m.verified.get(bad)
		assert.False(t, ok, "%q", bad)
	}

	// A cookie issued by another process (same keys) is verified once,
	// then remembered.
	peer := &Manager{Keys: m.Keys}
	peer.init()
	id2 := newID()
	v2, err := peer.encodeCookie(id2, "")
	require.NoError(t, err)
	_, ok = m.verified.get(v2)
	require.False(t, ok)
	gotID, gotUser := m.decodeCookie(v2)
	assert.Equal(t, id2, gotID)
	assert.Empty(t, gotUser)
	_, ok = m.verified.get(v2)
	assert.True(t, ok)

	// Bounded, and safe for concurrent use.
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3000 {
				id := newID()
				v, err := peer.encodeCookie(id, strconv.Itoa(g))
				if !assert.NoError(t, err) {
					return
				}
				gotID, gotUser := m.decodeCookie(v)
				assert.Equal(t, id, gotID)
				assert.Equal(t, strconv.Itoa(g), gotUser)
				_, _ = m.verified.get(v[:i%len(v)])
			}
		})
	}
	wg.Wait()
	total := 0
	for i := range m.verified.shards {
		n := len(m.verified.shards[i].m)
		assert.LessOrEqual(t, n, cookieCacheShardSize)
		total += n
	}
	assert.Greater(t, total, cookieCacheShardSize, "the values spread over the shards")
}
