package objcache

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzFitKey(f *testing.F) {
	f.Add("short")
	f.Add(strings.Repeat("k", 250))
	f.Add(strings.Repeat("k", 251))
	f.Add(strings.Repeat("é", 200))
	f.Add(strings.Repeat("日本", 100))
	f.Fuzz(func(t *testing.T, k string) {
		got := fitKey(k)
		if len(k) <= MaxKeyLen {
			if got != k {
				t.Fatalf("a key that fits changed: %q -> %q", k, got)
			}
			return
		}
		if len(got) > MaxKeyLen {
			t.Fatalf("fitKey(%d bytes) = %d bytes", len(k), len(got))
		}
		if fitKey(k) != got {
			t.Fatal("not deterministic")
		}
		if utf8.ValidString(k) && !utf8.ValidString(got) {
			t.Fatalf("cut a rune: %q", got)
		}
		i := strings.LastIndexByte(got, '#')
		if i < 0 || !strings.HasPrefix(k, got[:i]) {
			t.Fatalf("the readable part is not a prefix of the key: %q", got)
		}
		// Another key with the same start gets another hash.
		if other := fitKey(k + "x"); other == got {
			t.Fatalf("%q and %q+x collide", k, k)
		}
	})
}

func FuzzArgsKey(f *testing.F) {
	f.Add("products.byID", "chair", 42, true)
	f.Add("n", "a b\x00~", -1, false)
	f.Add("n", strings.Repeat("x", 300), 0, true)
	f.Fuzz(func(t *testing.T, name, s string, n int, b bool) {
		if name == "" || !keySafe([]byte(name)) {
			return // names are the programmer's, not the fuzzer's
		}
		type arg struct {
			S string
			N int
			M map[string]bool
		}
		a := arg{S: s, N: n, M: map[string]bool{"s" + s: b, "z": !b}}
		k1, err := ArgsKey(name, a, s)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := ArgsKey(name, arg{S: s, N: n, M: map[string]bool{"z": !b, "s" + s: b}}, s)
		if err != nil {
			t.Fatal(err)
		}
		if k1 != k2 {
			t.Fatalf("equal arguments, different keys: %q %q", k1, k2)
		}
		if !strings.HasPrefix(k1, name+":") {
			t.Fatalf("key %q does not start with the name", k1)
		}
		if !keySafe([]byte(k1[len(name)+1:])) && k1[len(name)+1] != '~' {
			t.Fatalf("unsafe key %q", k1)
		}
		full := fitKey(k1)
		for i := 0; i < len(full); i++ {
			if c := full[i]; c <= ' ' || c == 0x7f {
				t.Fatalf("key %q holds byte %#x", full, c)
			}
		}
		k3, err := ArgsKey(name, arg{S: s, N: n + 1, M: a.M}, s)
		if err != nil {
			t.Fatal(err)
		}
		if k3 == k1 {
			t.Fatalf("different arguments, one key: %q", k1)
		}
	})
}

// FuzzStored: parseStored never panics on any bytes, and what
// appendEnvelope writes parses back to what was written.
func FuzzStored(f *testing.F) {
	f.Add([]byte{}, uint32(0), uint8(0), int64(0), int64(0), uint64(0), "", uint64(0))
	f.Add([]byte("plain"), uint32(16), uint8(0), int64(1700000000000), int64(0), uint64(1500), "products", uint64(1700000000000000000))
	f.Add(legacyNotFound, uint32(0), uint8(1), int64(-5), int64(7), uint64(1<<40), "a b", uint64(1))
	f.Add([]byte{envVersion, 0x05, 0, 0x80}, envFlags, uint8(0), int64(0), int64(0), uint64(0), "", uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, flags uint32, k uint8, expires, retryAt int64, loadUS uint64, tag string, version uint64) {
		// Any bytes: no panic, and a value parses to a payload inside them.
		if s, kind := parseStored(data, flags); kind == itemValue && len(s.payload) > len(data) {
			t.Fatalf("payload longer than the item")
		}
		_, _ = parseStored(data, envFlags)

		h := header{kind: kind(k % 2), flags: flags, expires: expires, retryAt: retryAt,
			loadTime: time.Duration(loadUS%(1<<40)) * time.Microsecond}
		if tag != "" || version != 0 {
			h.tags = []tagVersion{{tag: tag, version: version}, {tag: tag + "2", version: version / 2}}
		}
		env := envelope(&h, data)
		if len(env) == 0 {
			t.Fatal("an envelope is never empty")
		}
		s, kind := parseStored(env, envFlags)
		if kind != itemValue {
			t.Fatalf("own envelope does not parse: %v", kind)
		}
		if !reflect.DeepEqual(s.header, h) || !bytes.Equal(s.payload, data) {
			t.Fatalf("round trip: got %+v %q, want %+v %q", s.header, s.payload, h, data)
		}
	})
}

// A header field appended by a later release is skipped by this one.
func TestEnvelopeSkipsLaterFields(t *testing.T) {
	h := header{flags: 16, expires: 123, tags: []tagVersion{{"t", 9}}}
	env := envelope(&h, []byte("payload"))
	// Rebuild it with 3 unknown bytes at the end of the header.
	hlen, n := binary.Uvarint(env[1:])
	hdr := env[1+n : 1+n+int(hlen)]
	later := append([]byte{envVersion}, binary.AppendUvarint(nil, hlen+3)...)
	later = append(later, hdr...)
	later = append(later, 0xde, 0xad, 0x01)
	later = append(later, "payload"...)
	s, k := parseStored(later, envFlags)
	if k != itemValue || !reflect.DeepEqual(s.header, h) || string(s.payload) != "payload" {
		t.Fatalf("got %v %+v %q", k, s.header, s.payload)
	}
	// Another version is not read.
	later[0] = envVersion + 1
	if _, k := parseStored(later, envFlags); k != itemCorrupt {
		t.Fatalf("version %d read as %v", later[0], k)
	}
}

// FuzzFastArgsKey: where Memoize's fast encoding applies, it is ArgsKey's.
func FuzzFastArgsKey(f *testing.F) {
	f.Add("chair", int64(42), true)
	f.Add("a b\x00~\"\\é", int64(-1), false)
	f.Fuzz(func(t *testing.T, s string, n int64, b bool) {
		for _, tc := range []struct {
			fast func() (string, bool)
			args []any
		}{
			{func() (string, bool) { k, ok := appendArg(nil, &s); return "f:" + string(k), ok }, []any{s}},
			{func() (string, bool) { k, ok := appendArg(nil, &n); return "f:" + string(k), ok }, []any{n}},
			{func() (string, bool) { k, ok := appendArgs3(nil, &s, &n, &b); return "f:" + string(k), ok }, []any{s, n, b}},
		} {
			got, ok := tc.fast()
			if !ok {
				continue
			}
			want, err := ArgsKey("f", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("fast key %q, ArgsKey %q", got, want)
			}
		}
	})
}
