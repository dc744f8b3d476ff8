package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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

// TestRecordCodecHugeLengths: a corrupt record that announces a huge map
// or list fails without allocating for it (msgpack's reflection allocates
// a list's whole declared length: 67 GB for the flashes below).
func TestRecordCodecHugeLengths(t *testing.T) {
	ser := &serializer.Serializer{Compressor: serializer.None}
	_, flags, err := ser.Marshal(&record{Created: 1})
	require.NoError(t, err)
	for name, data := range map[string][]byte{
		"flash list": []byte("\x83\xa1c\x01\xa1f\x81\xa10\xdd\xa6\x30\x30\x30"),
		"values map": []byte("\x82\xa1c\x01\xa1v\xdf\xff\xff\xff\xff\xa1a"),
		"types map":  []byte("\x82\xa1c\x01\xa1t\xdf\x7f\xff\xff\xff"),
		"type list":  []byte("\x82\xa1c\x01\xa2ft\x81\xa10\xdd\xff\xff\xff\xff"),
		"value":      []byte("\x82\xa1c\x01\xa1v\x81\xa1a\xdd\xff\xff\xff\xff"),
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := decodeRecord(ser, data, flags)
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, ErrUndecodable)
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))
		})
	}
	_, err = decodeRecord(ser, []byte{0x92, 0x01, 0x02}, flags)
	assert.ErrorIs(t, err, ErrUndecodable, "the array form is refused")
	assert.ErrorContains(t, err, "array form")
}

// TestValueDecodersDoNotGrow decodes, again and again, a value that
// declares a four-gigabyte string and holds one byte. msgpack grows a
// decoder's buffer by a megabyte for each such attempt; were the decoder
// pooled regardless, each attempt would allocate all the earlier ones again.
func TestValueDecodersDoNotGrow(t *testing.T) {
	hostile := msgpack.RawMessage{0xdb, 0xff, 0xff, 0xff, 0xf0, 'x'}
	const n = 16
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		var s string
		require.ErrorIs(t, decodeValue(hostile, &s), ErrUndecodable)
		var m map[string]any
		require.ErrorIs(t, decodeValue(hostile, &m), ErrUndecodable)
		_, err := decodeAny(hostile, "")
		require.ErrorIs(t, err, ErrUndecodable)
	}
	runtime.ReadMemStats(&after)
	assert.Less(t, (after.TotalAlloc-before.TotalAlloc)/(3*n), uint64(4<<20), "bytes allocated per corrupt decode")
}

// fitsInput reports whether data is one msgpack value whose every map,
// list, string and extension announces no more than the input holds, so
// that msgpack's reflection can decode it without running out of memory.
// Skipping allocates nothing for maps and lists and reads strings in
// bounded chunks.
func fitsInput(data []byte) bool {
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	return dec.Skip() == nil
}

// decodeFresh decodes data into v with a decoder of its own, set up as the
// serializer's msgpack codec sets up its pooled ones. (A pooled decoder
// keeps the buffer msgpack grows for every over-long announced length, so
// the fuzzer's millions of corrupt inputs would grow it without bound.)
func decodeFresh(data []byte, v any) error {
	r := bytes.NewReader(data)
	dec := msgpack.NewDecoder(r)
	dec.UseLooseInterfaceDecoding(true)
	dec.SetCustomStructTag("json")
	if err := dec.Decode(v); err != nil {
		return err
	}
	if r.Len() > 0 {
		return errors.New("trailing bytes")
	}
	return nil
}

// FuzzRecordCodec: on any bytes the record's decoder does not panic; it
// refuses the array form; on bytes whose announced lengths the input
// holds (reflection cannot be asked about the others: it may run out of
// memory, see TestRecordCodecHugeLengths) it fails where reflection fails
// and reads what it reads; whatever it reads, its encoder writes what
// reflection's encoder writes (up to the order of map entries: both read
// back the same).
func FuzzRecordCodec(f *testing.F) {
	ser := &serializer.Serializer{Compressor: serializer.None}
	for _, r := range codecRecords() {
		data, _, err := ser.Marshal(r)
		require.NoError(f, err)
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
	f.Add([]byte("\x83\xa100\xa1f\x81\xa10\xdd\xa6000"))                                    // a list of 2.8 billion
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast record
		errFast := decodeFresh(data, &fast)
		if len(data) > 0 && (data[0] >= 0x90 && data[0] <= 0x9f || data[0] == 0xdc || data[0] == 0xdd) {
			require.Error(t, errFast, "the array form is refused")
			return
		}
		if !fitsInput(data) {
			return // reflection might run out of memory on it
		}
		var slow plainRecord
		errSlow := decodeFresh(data, &slow)
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
	for i := range m.verified.shards {
		assert.Equal(t, cookieCacheShardSize, len(m.verified.shards[i].m), "shard %d", i)
	}
}

// TestCookieCacheShards: cookies of one length (which securecookie's
// base64 pads alike) spread evenly over the shards.
func TestCookieCacheShards(t *testing.T) {
	m := &Manager{Keys: [][]byte{[]byte("cache-hash-key-cache-hash-key-01"), []byte("0123456789abcdef")}}
	m.init()
	var n [cookieCacheShards]int
	const cookies = 1600
	padded := 0
	for range cookies {
		v, err := m.encodeCookie(newID(), "1")
		require.NoError(t, err)
		if strings.HasSuffix(v, "=") {
			padded++
		}
		n[m.verified.shard(v)]++
	}
	assert.Positive(t, padded, "this test needs padded values")
	for i, c := range n {
		assert.InDelta(t, cookies/cookieCacheShards, c, cookies/cookieCacheShards/2, "shard %d", i)
	}
}
