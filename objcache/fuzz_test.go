package objcache

import (
	"strings"
	"testing"
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
