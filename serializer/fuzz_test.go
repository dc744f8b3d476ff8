package serializer

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fuzzValue struct {
	S string
	B []byte
	N int64
	F float64
	L []string
	M map[string]int64
}

// FuzzRoundTrip encodes a value with every codec and compressor and
// requires the same value back.
func FuzzRoundTrip(f *testing.F) {
	f.Add("hello", []byte{0, 1, 2}, int64(42), 1.5, "k", 0)
	f.Add("", []byte{}, int64(-1), 0.0, "", -1)
	f.Add(string(bytes.Repeat([]byte("ab"), 600)), bytes.Repeat([]byte{7}, 3000), int64(1<<62), -2.25, "key", 1)
	f.Add("héllo ✓", []byte(nil), int64(0), 1e300, "é", 5000)
	f.Fuzz(func(t *testing.T, s string, b []byte, n int64, fl float64, key string, minLen int) {
		if fl != fl { // NaN never compares equal
			fl = 0
		}
		in := fuzzValue{S: s, B: b, N: n, F: fl, L: []string{s, key}, M: map[string]int64{key: n}}
		for _, c := range allCodecs {
			if c == JSON && (!utf8.ValidString(s) || !utf8.ValidString(key)) {
				continue // encoding/json replaces invalid UTF-8 by design
			}
			for _, comp := range allCompressors {
				w := Serializer{Codec: c, Compressor: comp, MinCompressLen: minLen % 4096}
				data, flags, err := w.Marshal(in)
				require.NoError(t, err, "%s/%s", c.Name(), comp.Name())
				var out fuzzValue
				require.NoError(t, (&Serializer{}).Unmarshal(data, flags, &out), "%s/%s", c.Name(), comp.Name())
				assert.Equal(t, in.S, out.S)
				assert.True(t, bytes.Equal(in.B, out.B), "%s/%s bytes", c.Name(), comp.Name())
				assert.Equal(t, in.N, out.N)
				assert.Equal(t, in.F, out.F)
				assert.Equal(t, in.L, out.L)
				assert.Equal(t, in.M, out.M)
			}
		}
		for _, comp := range allCompressors {
			for _, disable := range []bool{false, true} {
				w := Serializer{Compressor: comp, MinCompressLen: minLen % 4096, DisableNative: disable}
				data, flags, err := w.Marshal(s)
				require.NoError(t, err)
				var gs string
				require.NoError(t, w.Unmarshal(data, flags, &gs))
				assert.Equal(t, s, gs)

				data, flags, err = w.Marshal(b)
				require.NoError(t, err)
				var gb []byte
				require.NoError(t, w.Unmarshal(data, flags, &gb))
				assert.True(t, bytes.Equal(b, gb))

				data, flags, err = w.Marshal(n)
				require.NoError(t, err)
				var gn int64
				require.NoError(t, w.Unmarshal(data, flags, &gn))
				assert.Equal(t, n, gn)
			}
			raw := Serializer{Codec: Raw, Compressor: comp, MinCompressLen: minLen % 4096}
			data, flags, err := raw.Marshal(s)
			require.NoError(t, err)
			require.Zero(t, flags&^(flagText|flagZlib), "raw flags %#x", flags)
			var gs string
			require.NoError(t, raw.Unmarshal(data, flags, &gs))
			assert.Equal(t, s, gs)
			data, flags, err = raw.Marshal(b)
			require.NoError(t, err)
			require.Zero(t, flags&^flagZlib, "raw flags %#x", flags)
			var gb []byte
			require.NoError(t, raw.Unmarshal(data, flags, &gb))
			assert.True(t, bytes.Equal(b, gb))
		}
	})
}

// FuzzCompressors round-trips every compressor directly and checks that
// the decoded-size bound holds.
func FuzzCompressors(f *testing.F) {
	f.Add([]byte("hello hello hello hello"), 10)
	f.Add(bytes.Repeat([]byte{0}, 10000), 100)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, src []byte, max int) {
		if max < 1 {
			max = 1
		}
		for _, comp := range []Compressor{S2, Zstd, Zlib} {
			enc, err := comp.compress([]byte("prefix"), src)
			require.NoError(t, err)
			require.Equal(t, "prefix", string(enc[:6]), comp.Name())
			dec, err := comp.decompress([]byte("pre"), enc[6:], len(src)+1)
			require.NoError(t, err, comp.Name())
			require.Equal(t, "pre", string(dec[:3]))
			require.True(t, bytes.Equal(src, dec[3:]), comp.Name())

			dec, err = comp.decompress(nil, enc[6:], max)
			if len(src) > max {
				require.ErrorIs(t, err, ErrTooLarge, comp.Name())
			} else {
				require.NoError(t, err, comp.Name())
				require.True(t, bytes.Equal(src, dec), comp.Name())
			}
			// Arbitrary input as compressed data: an error or a bounded result.
			dec, err = comp.decompress(nil, src, 1<<16)
			if err == nil {
				require.LessOrEqual(t, len(dec), 1<<16, comp.Name())
			} else {
				require.True(t, errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTooLarge), "%s: %v", comp.Name(), err)
			}
		}
	})
}

// FuzzUnmarshal decodes arbitrary (bytes, flags) into several targets: it
// must never panic, and every error must match a documented sentinel.
func FuzzUnmarshal(f *testing.F) {
	var w Serializer
	seeds := []any{"text", []byte{1, 2}, 7, map[string]any{"a": []any{1, "b"}}, testRows(2), struct{}{}}
	for _, c := range allCodecs {
		for _, comp := range allCompressors {
			w := Serializer{Codec: c, Compressor: comp, MinCompressLen: 1, DisableNative: true}
			for _, v := range seeds[3:] {
				data, flags, err := w.Marshal(v)
				if err == nil {
					f.Add(data, flags)
				}
			}
		}
	}
	for _, v := range seeds {
		data, flags, err := w.Marshal(v)
		require.NoError(f, err)
		f.Add(data, flags)
	}
	f.Add([]byte("\x80\x04K\x01."), uint32(1))
	f.Add([]byte("12 "), uint32(2))
	r := Serializer{MaxDecodedSize: 1 << 20}
	f.Fuzz(func(t *testing.T, data []byte, flags uint32) {
		targets := []any{new(any), new(map[string]any), new(string), new([]byte), new(int64), new(uint8), new([]row), new(fuzzValue)}
		for _, target := range targets {
			err := r.Unmarshal(data, flags, target)
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnknownFormat) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("flags %#x into %T: error matches no sentinel: %v", flags, target, err)
			}
		}
	})
}
