package serializer

import (
	"encoding/gob"
	"strings"
	"testing"
)

func init() {
	// gob needs the concrete types stored in interfaces of the session map.
	gob.Register([]any(nil))
	gob.Register(map[string]any(nil))
}

// benchSession is a typical web session: identity, CSRF token, roles, a
// small cart and a flash message. About 400 bytes encoded.
func benchSession() map[string]any {
	return map[string]any{
		"user_id":    int64(12345),
		"username":   "ada.lovelace",
		"email":      "ada@example.com",
		"csrf_token": "c3VwZXItc2VjcmV0LWNzcmYtdG9rZW4tMTIzNDU2Nzg5MA",
		"roles":      []any{"admin", "editor"},
		"created_at": int64(1763700000),
		"last_seen":  int64(1763703600),
		"locale":     "en-GB",
		"theme":      "dark",
		"flash":      "Your changes have been saved.",
		"cart": []any{
			map[string]any{"sku": "BOOK-0042", "qty": int64(1), "price_cents": int64(2599)},
			map[string]any{"sku": "PEN-0007", "qty": int64(3), "price_cents": int64(199)},
		},
	}
}

// BenchmarkSerializer measures Marshal+Unmarshal of a session map and of 50
// database rows for each codec, uncompressed and with each compressor
// (MinCompressLen 1, so compression is always tried and kept when smaller).
// The "bytes/value" metric is the encoded size.
func BenchmarkSerializer(b *testing.B) {
	values := []struct {
		name   string
		v      any
		target func() any
	}{
		{"session", benchSession(), func() any { return new(map[string]any) }},
		{"rows50", testRows(50), func() any { return new([]row) }},
	}
	for _, val := range values {
		for _, c := range allCodecs {
			for _, comp := range allCompressors {
				s := Serializer{Codec: c, Compressor: comp, MinCompressLen: 1}
				b.Run(val.name+"/"+c.Name()+"/"+comp.Name(), func(b *testing.B) {
					b.ReportAllocs()
					var size int
					for b.Loop() {
						data, flags, err := s.Marshal(val.v)
						if err != nil {
							b.Fatal(err)
						}
						if err := s.Unmarshal(data, flags, val.target()); err != nil {
							b.Fatal(err)
						}
						size = len(data)
					}
					b.ReportMetric(float64(size), "bytes/value")
				})
			}
		}
	}
}

// BenchmarkNative measures python-compatible strings and integers: a short
// string, a 10 KB string (zlib-compressed) and an int.
func BenchmarkNative(b *testing.B) {
	var s Serializer
	long := strings.Repeat("<p>Hello, memcached.</p>\n", 400)
	b.Run("short", func(b *testing.B) {
		b.ReportAllocs()
		var got string
		for b.Loop() {
			data, flags, _ := s.Marshal("hello, world")
			if err := s.Unmarshal(data, flags, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("long-zlib", func(b *testing.B) {
		b.ReportAllocs()
		var got []byte
		for b.Loop() {
			data, flags, _ := s.Marshal(long)
			if err := s.Unmarshal(data, flags, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("int", func(b *testing.B) {
		b.ReportAllocs()
		var got int64
		for b.Loop() {
			data, flags, _ := s.Marshal(int64(1234567))
			if err := s.Unmarshal(data, flags, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
