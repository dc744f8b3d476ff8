package serializer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type row struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
	Score     float64   `json:"score"`
	Active    bool      `json:"active"`
	Tags      []string  `json:"tags"`
}

func testRows(n int) []row {
	rows := make([]row, n)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range rows {
		rows[i] = row{
			ID:        int64(1000 + i),
			Name:      fmt.Sprintf("User Number %d", i),
			Email:     fmt.Sprintf("user%d@example.com", i),
			CreatedAt: base.Add(time.Duration(i) * time.Hour),
			Score:     float64(i) * 1.5,
			Active:    i%3 != 0,
			Tags:      []string{"customer", "newsletter"},
		}
	}
	return rows
}

var allCodecs = []Codec{Msgpack, Gob, JSON}
var allCompressors = []Compressor{None, S2, Zstd, Zlib}

func TestZeroValueNativeFlags(t *testing.T) {
	var s Serializer
	long := strings.Repeat("compress me please ", 100) // 1900 bytes > DefaultMinCompressLen
	tests := []struct {
		name  string
		v     any
		flags uint32
		data  string // expected bytes when not compressed
	}{
		{"bytes", []byte{0, 0xff, 'a'}, 0, "\x00\xffa"},
		{"empty bytes", []byte{}, 0, ""},
		{"text", "héllo", 16, "héllo"},
		{"empty text", "", 16, ""},
		{"invalid utf8 string is bytes", "\xff\xfe", 0, "\xff\xfe"},
		{"int", 42, 2, "42"},
		{"negative int64", int64(-7), 2, "-7"},
		{"int8", int8(-128), 2, "-128"},
		{"uint64 max", uint64(math.MaxUint64), 2, "18446744073709551615"},
		{"uint8", uint8(255), 2, "255"},
		{"long text zlib", long, 16 | 8, ""},
		{"long bytes zlib", []byte(long), 8, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, flags, err := s.Marshal(tt.v)
			require.NoError(t, err)
			assert.Equal(t, tt.flags, flags)
			if flags&flagZlib == 0 {
				assert.Equal(t, tt.data, string(data))
			} else {
				assert.Less(t, len(data), len(long))
			}
		})
	}
}

func TestNativeRoundTrip(t *testing.T) {
	long := strings.Repeat("abc", 1000)
	var s Serializer
	t.Run("string into *string and *any", func(t *testing.T) {
		for _, in := range []string{"", "x", "héllo", long} {
			data, flags, err := s.Marshal(in)
			require.NoError(t, err)
			var got string
			require.NoError(t, s.Unmarshal(data, flags, &got))
			assert.Equal(t, in, got)
			var a any
			require.NoError(t, s.Unmarshal(data, flags, &a))
			assert.Equal(t, in, a)
		}
	})
	t.Run("bytes into *[]byte reuses capacity", func(t *testing.T) {
		data, flags, err := s.Marshal([]byte("payload"))
		require.NoError(t, err)
		buf := make([]byte, 0, 64)
		got := buf
		require.NoError(t, s.Unmarshal(data, flags, &got))
		assert.Equal(t, "payload", string(got))
		assert.Same(t, &buf[:1][0], &got[0])
		var a any
		require.NoError(t, s.Unmarshal(data, flags, &a))
		assert.Equal(t, []byte("payload"), a)
	})
	t.Run("ints", func(t *testing.T) {
		for _, in := range []int64{0, 1, -1, math.MaxInt64, math.MinInt64} {
			data, flags, err := s.Marshal(in)
			require.NoError(t, err)
			var got int64
			require.NoError(t, s.Unmarshal(data, flags, &got))
			assert.Equal(t, in, got)
			var a any
			require.NoError(t, s.Unmarshal(data, flags, &a))
			assert.Equal(t, in, a)
		}
		data, flags, err := s.Marshal(uint64(math.MaxUint64))
		require.NoError(t, err)
		var a any
		require.NoError(t, s.Unmarshal(data, flags, &a))
		assert.Equal(t, uint64(math.MaxUint64), a)
	})
	t.Run("named types by reflection", func(t *testing.T) {
		type myInt int16
		type myString string
		var n myInt
		require.NoError(t, s.Unmarshal([]byte("-300"), flagInt, &n))
		assert.Equal(t, myInt(-300), n)
		var ms myString
		require.NoError(t, s.Unmarshal([]byte("hi"), flagText, &ms))
		assert.Equal(t, myString("hi"), ms)
		var u uint32
		require.NoError(t, s.Unmarshal([]byte("4000000000"), flagLong, &u))
		assert.Equal(t, uint32(4000000000), u)
	})
	t.Run("int into float", func(t *testing.T) {
		var f float64
		require.NoError(t, s.Unmarshal([]byte("-12"), flagInt, &f))
		assert.Equal(t, -12.0, f)
		assert.ErrorIs(t, s.Unmarshal([]byte("nan"), flagInt, &f), ErrCorrupt)
	})
	t.Run("memcached decr padding", func(t *testing.T) {
		var n int
		require.NoError(t, s.Unmarshal([]byte("9 "), flagInt, &n))
		assert.Equal(t, 9, n)
	})
}

func TestCodecCompressorMatrix(t *testing.T) {
	session := map[string]any{"user_id": int64(42), "name": "ada", "roles": []any{"admin", "dev"}, "ok": true}
	rows := testRows(50)
	for _, c := range allCodecs {
		for _, comp := range allCompressors {
			t.Run(c.Name()+"/"+comp.Name(), func(t *testing.T) {
				s := Serializer{Codec: c, Compressor: comp, MinCompressLen: 64}
				data, flags, err := s.Marshal(rows)
				require.NoError(t, err)
				assert.Equal(t, uint32(c.ID()), flags>>codecShift&0xff, "codec ID in flags %#x", flags)
				assert.Equal(t, comp.flags(), flags&(flagZlib|0xf<<compShift), "compressor bits in flags %#x", flags)

				// A reader with other settings decodes it.
				var reader Serializer
				var got []row
				require.NoError(t, reader.Unmarshal(data, flags, &got))
				require.Len(t, got, 50)
				for i := range got {
					assert.True(t, got[i].CreatedAt.Equal(rows[i].CreatedAt))
					got[i].CreatedAt = rows[i].CreatedAt
				}
				assert.Equal(t, rows, got)

				if c == Gob {
					return // gob cannot decode into an untyped map of interfaces it did not see registered
				}
				data, flags, err = s.Marshal(session)
				require.NoError(t, err)
				var m map[string]any
				require.NoError(t, reader.Unmarshal(data, flags, &m))
				assert.Equal(t, "ada", m["name"])
				assert.Equal(t, true, m["ok"])
				assert.EqualValues(t, 42, m["user_id"])
			})
		}
	}
}

func TestDisableNative(t *testing.T) {
	s := Serializer{DisableNative: true}
	data, flags, err := s.Marshal("hello")
	require.NoError(t, err)
	assert.Equal(t, uint32(msgpackID<<codecShift), flags)
	var got string
	require.NoError(t, s.Unmarshal(data, flags, &got))
	assert.Equal(t, "hello", got)

	_, flags, err = (&Serializer{Codec: Raw}).Marshal("héllo")
	require.NoError(t, err)
	assert.Equal(t, uint32(flagText), flags, "raw string is python str")
	_, flags, err = (&Serializer{Codec: Raw}).Marshal(7)
	require.NoError(t, err)
	assert.Equal(t, uint32(flagInt), flags, "raw codec still stores ints natively")

	// Raw as a plain Codec.
	enc, err := Raw.Append([]byte("a"), "bc")
	require.NoError(t, err)
	assert.Equal(t, "abc", string(enc))
	var rs string
	require.NoError(t, Raw.Unmarshal([]byte("xyz"), &rs))
	assert.Equal(t, "xyz", rs)
	assert.ErrorIs(t, Raw.Unmarshal([]byte("xyz"), rs), ErrTarget)

	raw := Serializer{Codec: Raw, DisableNative: true}
	_, flags, err = raw.Marshal([]byte("x"))
	require.NoError(t, err)
	assert.Equal(t, uint32(0), flags)
	_, _, err = raw.Marshal(5)
	assert.ErrorIs(t, err, ErrUnsupportedType)
	_, _, err = raw.Marshal(struct{}{})
	assert.ErrorIs(t, err, ErrUnsupportedType)
}

func TestMarshalErrors(t *testing.T) {
	tests := []struct {
		name string
		s    Serializer
		v    any
	}{
		{"msgpack chan", Serializer{}, make(chan int)},
		{"gob func", Serializer{Codec: Gob}, func() {}},
		{"json NaN", Serializer{Codec: JSON}, math.NaN()},
		{"raw struct", Serializer{Codec: Raw}, struct{}{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, flags, err := tt.s.Marshal(tt.v)
			assert.ErrorIs(t, err, ErrUnsupportedType)
			assert.Nil(t, data)
			assert.Zero(t, flags)
		})
	}
}

func TestCompressionThreshold(t *testing.T) {
	compressible := bytes.Repeat([]byte("a"), 200)
	random := make([]byte, 4000)
	var x uint64 = 0x9e3779b97f4a7c15
	for i := range random {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		random[i] = byte(x)
	}
	tests := []struct {
		name       string
		s          Serializer
		v          any
		compressed bool
	}{
		{"below default threshold", Serializer{}, map[string]any{"a": string(compressible)}, false},
		{"above custom threshold", Serializer{MinCompressLen: 100}, map[string]any{"a": string(compressible)}, true},
		{"exactly at threshold stays raw", Serializer{MinCompressLen: 200}, compressible, false},
		{"one above threshold", Serializer{MinCompressLen: 199}, compressible, true},
		{"negative disables", Serializer{MinCompressLen: -1}, bytes.Repeat(compressible, 100), false},
		{"None disables native too", Serializer{Compressor: None, MinCompressLen: 1}, compressible, false},
		{"incompressible kept raw", Serializer{MinCompressLen: 1}, map[string]any{"r": random}, false},
		{"incompressible native kept raw", Serializer{MinCompressLen: 1}, random, false},
		{"ints never compressed", Serializer{MinCompressLen: 1}, int64(1111111111111111111), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, flags, err := tt.s.Marshal(tt.v)
			require.NoError(t, err)
			compressed := flags&(flagZlib|0xf<<compShift) != 0
			assert.Equal(t, tt.compressed, compressed, "flags %#x", flags)
			var got any
			require.NoError(t, tt.s.Unmarshal(data, flags, &got))
		})
	}
}

func TestUnmarshalErrors(t *testing.T) {
	var s Serializer
	good, goodFlags, err := s.Marshal(map[string]any{"k": strings.Repeat("v", 3000)})
	require.NoError(t, err)
	require.Equal(t, uint32(msgpackID<<codecShift|s2ID<<compShift), goodFlags)
	plain, plainFlags, err := s.Marshal(map[string]any{"k": "v"})
	require.NoError(t, err)
	zl, zlFlags, err := s.Marshal(strings.Repeat("zz", 2000))
	require.NoError(t, err)
	require.Equal(t, uint32(flagText|flagZlib), zlFlags)
	gobRows, _, err := (&Serializer{Codec: Gob, Compressor: None}).Marshal(testRows(2))
	require.NoError(t, err)
	zs, zsFlags, err := (&Serializer{Compressor: Zstd}).Marshal(map[string]any{"k": strings.Repeat("v", 3000)})
	require.NoError(t, err)

	tests := []struct {
		name   string
		data   []byte
		flags  uint32
		target any
		want   error
	}{
		{"pickle", []byte("\x80\x04K\x01."), 1, new(any), ErrPickle},
		{"pickle is also unknown format", []byte("x"), 1, new(any), ErrUnknownFormat},
		{"compressed pickle", []byte("x"), 1 | 8, new(any), ErrPickle},
		{"python combo", []byte("x"), 2 | 16, new(any), ErrUnknownFormat},
		{"future format version", plain, plainFlags | 1<<28, new(any), ErrUnknownFormat},
		{"format version 15", plain, plainFlags | 15<<28, new(any), ErrUnknownFormat},
		{"reserved bit 27", plain, plainFlags | 1<<27, new(any), ErrUnknownFormat},
		{"reserved bit 20", plain, plainFlags | 1<<20, new(any), ErrUnknownFormat},
		{"reserved bit 5", plain, plainFlags | 1<<5, new(any), ErrUnknownFormat},
		{"unregistered codec", plain, 200 << codecShift, new(any), ErrUnknownFormat},
		{"unknown compressor", plain, msgpackID<<codecShift | 7<<compShift, new(any), ErrUnknownFormat},
		{"s2 on native", plain, s2ID << compShift, new(any), ErrUnknownFormat},
		{"zlib and s2", plain, msgpackID<<codecShift | s2ID<<compShift | flagZlib, new(any), ErrUnknownFormat},
		{"python bits with codec", plain, msgpackID<<codecShift | flagText, new(any), ErrUnknownFormat},
		{"truncated msgpack", plain[:len(plain)-1], plainFlags, new(any), ErrCorrupt},
		{"trailing msgpack", append(clone(plain), 0xc0), plainFlags, new(any), ErrCorrupt},
		{"truncated s2", good[:len(good)/2], goodFlags, new(any), ErrCorrupt},
		{"corrupt s2", flip(good, len(good)/2), goodFlags, new(any), ErrCorrupt},
		{"truncated zlib", zl[:len(zl)-3], zlFlags, new(string), ErrCorrupt},
		{"zlib checksum", flip(zl, len(zl)-1), zlFlags, new(string), ErrCorrupt},
		{"zlib garbage", []byte("not zlib at all"), zlFlags, new(string), ErrCorrupt},
		{"truncated zstd", zs[:len(zs)-5], zsFlags, new(any), ErrCorrupt},
		{"corrupt zstd", flip(zs, len(zs)-2), zsFlags, new(any), ErrCorrupt},
		{"wrong target struct for text", []byte("abc"), flagText, new(row), ErrCorrupt},
		{"text into int", []byte("abc"), flagText, new(int), ErrCorrupt},
		{"bad int", []byte("12x"), flagInt, new(int64), ErrCorrupt},
		{"int overflow int8", []byte("300"), flagInt, new(int8), ErrCorrupt},
		{"negative into uint", []byte("-1"), flagInt, new(uint64), ErrCorrupt},
		{"huge python int into any", []byte(strings.Repeat("9", 40)), flagLong, new(any), ErrCorrupt},
		{"msgpack map into int", plain, plainFlags, new(int), ErrCorrupt},
		{"json garbage", []byte("{"), jsonID << codecShift, new(any), ErrCorrupt},
		{"json object into int", []byte(`{"a":1}`), jsonID << codecShift, new(int), ErrCorrupt},
		{"gob struct into string", gobRows, gobID << codecShift, new(string), ErrCorrupt},
		{"gob truncated", gobRows[:len(gobRows)-4], gobID << codecShift, new([]row), ErrCorrupt},
		{"gob trailing", append(clone(gobRows), 0), gobID << codecShift, new([]row), ErrCorrupt},
		{"gob garbage", []byte{3, 4, 5}, gobID << codecShift, new(any), ErrCorrupt},
		{"nil target", plain, plainFlags, nil, ErrTarget},
		{"non-pointer target", plain, plainFlags, map[string]any{}, ErrTarget},
		{"typed nil pointer", plain, plainFlags, (*map[string]any)(nil), ErrTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Unmarshal(tt.data, tt.flags, tt.target)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "serializer: "), err.Error())
		})
	}
}

func flip(b []byte, i int) []byte {
	out := clone(b)
	out[i] ^= 0x55
	return out
}

func TestDecompressionBounded(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, 1<<20) // 1 MiB of one byte compresses to almost nothing
	for _, comp := range []Compressor{S2, Zstd, Zlib} {
		t.Run(comp.Name(), func(t *testing.T) {
			w := Serializer{Compressor: comp, DisableNative: true}
			data, flags, err := w.Marshal(big)
			require.NoError(t, err)
			require.Less(t, len(data), 64<<10, "a small hostile value")

			small := Serializer{MaxDecodedSize: 64 << 10}
			var got []byte
			err = small.Unmarshal(data, flags, &got)
			assert.ErrorIs(t, err, ErrTooLarge)

			enough := Serializer{MaxDecodedSize: 2 << 20}
			require.NoError(t, enough.Unmarshal(data, flags, &got))
			assert.Equal(t, big, got)
		})
	}
	t.Run("s2 header claiming 4 GiB", func(t *testing.T) {
		hostile := binary.AppendUvarint(nil, 0xffffffff)
		hostile = append(hostile, 0, 0, 0)
		var got any
		err := (&Serializer{}).Unmarshal(hostile, msgpackID<<codecShift|s2ID<<compShift, &got)
		assert.ErrorIs(t, err, ErrTooLarge)
	})
	t.Run("native zlib", func(t *testing.T) {
		data, flags, err := (&Serializer{}).Marshal(string(big))
		require.NoError(t, err)
		require.Equal(t, uint32(flagText|flagZlib), flags)
		var got string
		err = (&Serializer{MaxDecodedSize: 1<<20 - 1}).Unmarshal(data, flags, &got)
		assert.ErrorIs(t, err, ErrTooLarge)
		require.NoError(t, (&Serializer{MaxDecodedSize: 1 << 20}).Unmarshal(data, flags, &got))
		assert.Equal(t, string(big), got)
	})
}

type upperCodec struct {
	id   uint8
	name string
}

func (c upperCodec) ID() uint8    { return c.id }
func (c upperCodec) Name() string { return c.name }
func (c upperCodec) Append(dst []byte, v any) ([]byte, error) {
	s, ok := v.(fmt.Stringer)
	if !ok {
		return dst, ErrUnsupportedType
	}
	return append(dst, strings.ToUpper(s.String())...), nil
}
func (c upperCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*string)
	if !ok {
		return errors.New("upper: want *string")
	}
	*p = string(data)
	return nil
}

type stringer string

func (s stringer) String() string { return string(s) }

func TestRegister(t *testing.T) {
	// A fresh ID each run, so -count=N works with the global registry.
	id := uint8(0)
	for i := 255; i >= MinUserCodecID; i-- {
		if _, taken := lookupCodec(uint8(i)); !taken {
			id = uint8(i)
			break
		}
	}
	require.NotZero(t, id, "a free codec ID")
	c := upperCodec{id: id, name: "upper"}
	s := Serializer{Codec: c}
	_, _, err := s.Marshal(stringer("x"))
	require.ErrorIs(t, err, ErrUnknownFormat, "unregistered codec refused")

	require.NoError(t, Register(c))
	require.NoError(t, Register(c), "registering the same codec again is a no-op")
	data, flags, err := s.Marshal(stringer("shout"))
	require.NoError(t, err)
	assert.Equal(t, uint32(id)<<codecShift, flags)
	var got string
	require.NoError(t, (&Serializer{}).Unmarshal(data, flags, &got))
	assert.Equal(t, "SHOUT", got)
	err = (&Serializer{}).Unmarshal(data, flags, new(int))
	assert.ErrorIs(t, err, ErrCorrupt, "user codec errors are wrapped")

	assert.ErrorIs(t, Register(upperCodec{id: id, name: "other"}), ErrCodecID, "taken")
	_, _, err = (&Serializer{Codec: upperCodec{id: id, name: "other"}}).Marshal(stringer("x"))
	assert.ErrorIs(t, err, ErrUnknownFormat, "an impostor with a registered ID")
	assert.ErrorIs(t, Register(upperCodec{id: 5, name: "upper"}), ErrCodecID, "reserved")
	assert.ErrorIs(t, Register(nil), ErrCodecID)
	got2, ok := lookupCodec(msgpackID)
	assert.True(t, ok)
	assert.Equal(t, "msgpack", got2.Name())
}

func TestConcurrentUse(t *testing.T) {
	s := Serializer{MinCompressLen: 32}
	rows := testRows(10)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			comp := allCompressors[g%len(allCompressors)]
			w := Serializer{Compressor: comp, MinCompressLen: 32}
			for i := 0; i < 50; i++ {
				data, flags, err := w.Marshal(rows)
				if err != nil {
					errs <- err
					return
				}
				var got []row
				if err := s.Unmarshal(data, flags, &got); err != nil {
					errs <- err
					return
				}
				if len(got) != len(rows) || got[9].Email != rows[9].Email {
					errs <- fmt.Errorf("goroutine %d: bad decode", g)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMarshalResultNotShared(t *testing.T) {
	var s Serializer
	in := []byte("mutable")
	data, _, err := s.Marshal(in)
	require.NoError(t, err)
	in[0] = 'X'
	assert.Equal(t, "mutable", string(data))
	a, _, err := s.Marshal(map[string]any{"a": 1})
	require.NoError(t, err)
	b, _, err := s.Marshal(map[string]any{"b": 2})
	require.NoError(t, err)
	assert.NotEqual(t, a, b, "pooled buffers must not leak into results")
	assert.Equal(t, len(a), cap(a), "result allocated at its final size")
}

func TestS2IsBlockFormat(t *testing.T) {
	s := Serializer{DisableNative: true, MinCompressLen: 1}
	data, flags, err := s.Marshal(strings.Repeat("s2", 500))
	require.NoError(t, err)
	require.Equal(t, uint32(msgpackID<<codecShift|s2ID<<compShift), flags)
	dec, err := s2.Decode(nil, data)
	require.NoError(t, err, "other languages decode it with a plain s2/snappy block decoder")
	assert.Greater(t, len(dec), len(data))
}

func TestDecodedValuesDoNotAliasPooledBuffers(t *testing.T) {
	s := Serializer{MinCompressLen: 1}
	for _, comp := range []Compressor{S2, Zstd, Zlib} {
		t.Run(comp.Name(), func(t *testing.T) {
			w := Serializer{Compressor: comp, MinCompressLen: 1}
			type blobVal struct {
				Blob []byte
				S    string
			}
			first := blobVal{Blob: bytes.Repeat([]byte("first"), 100), S: strings.Repeat("1", 300)}
			second := blobVal{Blob: bytes.Repeat([]byte("other"), 100), S: strings.Repeat("2", 300)}
			d1, f1, err := w.Marshal(first)
			require.NoError(t, err)
			require.NotZero(t, f1&(flagZlib|0xf<<compShift), "compressed")
			var got1 blobVal
			require.NoError(t, s.Unmarshal(d1, f1, &got1))
			d2, f2, err := w.Marshal(second)
			require.NoError(t, err)
			for i := 0; i < 3; i++ { // reuse the pooled buffers
				var got2 blobVal
				require.NoError(t, s.Unmarshal(d2, f2, &got2))
			}
			assert.Equal(t, first, got1)

			// Native values decompressed into a pooled buffer are copied out.
			d3, f3, err := s.Marshal(bytes.Repeat([]byte("x"), 2000))
			require.NoError(t, err)
			var a any
			require.NoError(t, s.Unmarshal(d3, f3, &a))
			d4, f4, err := s.Marshal(bytes.Repeat([]byte("y"), 2000))
			require.NoError(t, err)
			var b any
			require.NoError(t, s.Unmarshal(d4, f4, &b))
			assert.Equal(t, bytes.Repeat([]byte("x"), 2000), a)
		})
	}
}

// TestMsgpackInterfaceTypes pins what a map[string]any session gets back.
func TestMsgpackInterfaceTypes(t *testing.T) {
	var s Serializer
	in := map[string]any{
		"int": 5, "neg": int8(-3), "big": uint64(math.MaxUint64), "f32": float32(1.5), "f64": 2.25,
		"str": "s", "bytes": []byte("b"), "bool": true, "nil": nil,
		"list": []string{"a"}, "map": map[string]int{"k": 1},
		"time": time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	data, flags, err := s.Marshal(in)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, s.Unmarshal(data, flags, &got))
	want := map[string]any{
		"int": int64(5), "neg": int64(-3), "big": uint64(math.MaxUint64), "f32": 1.5, "f64": 2.25,
		"str": "s", "bytes": "b", "bool": true, "nil": nil,
		"list": []any{"a"}, "map": map[string]any{"k": int64(1)},
	}
	gotTime, ok := got["time"].(time.Time)
	require.True(t, ok, "time.Time survives: %T", got["time"])
	assert.True(t, gotTime.Equal(in["time"].(time.Time)))
	delete(got, "time")
	assert.Equal(t, want, got)
}

// TestCorruptMsgpackDoesNotGrowDecoders decodes, again and again, a six-byte
// msgpack string that declares four gigabytes. msgpack grows its decoder's
// buffer a megabyte for each such attempt; pooled and reused, one decoder
// would grow without bound (and each attempt would copy all of it).
func TestCorruptMsgpackDoesNotGrowDecoders(t *testing.T) {
	hostile := []byte{0xdb, 0xff, 0xff, 0xff, 0xf0, 'x'} // str32, 4 GiB declared, 1 byte present
	var s Serializer
	const n = 32
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		var got any
		err := s.Unmarshal(hostile, msgpackID<<codecShift, &got)
		require.ErrorIs(t, err, ErrCorrupt)
	}
	runtime.ReadMemStats(&after)
	perDecode := (after.TotalAlloc - before.TotalAlloc) / n
	assert.Less(t, perDecode, uint64(4<<20), "bytes allocated per corrupt decode")
}
