package serializer_test

// Values stored by earlier releases must keep decoding, so that a rolling
// deploy (old and new processes sharing the servers) neither loses the
// cache nor signs anybody out. testdata/stored/ holds the bytes and flags
// that a release wrote for the values in storedCases; TestStoredValues
// decodes every file there, forever.
//
// The files are history: never regenerate one. When a release changes what
// it writes, run
//
//	go test ./serializer -run TestStoredValues -write-stored=NAME
//
// to add testdata/stored/NAME.json next to the others (it refuses to
// overwrite a file).

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/serializer"
)

var writeStored = flag.String("write-stored", "", "write the values of storedCases, as this code stores them, to testdata/stored/NAME.json")

// storedFile is the layout of a file in testdata/stored.
type storedFile struct {
	WrittenBy string        `json:"written_by"`
	Values    []storedValue `json:"values"`
}

type storedValue struct {
	Name  string `json:"name"`
	Flags uint32 `json:"flags"`
	Data  []byte `json:"data"`
}

type storedItem struct {
	ID      int64            `json:"id"`
	Name    string           `json:"name"`
	Price   float64          `json:"price"`
	InStock bool             `json:"in_stock"`
	Tags    []string         `json:"tags"`
	Counts  map[string]int   `json:"counts"`
	Blob    []byte           `json:"blob"`
	Parent  *storedItem      `json:"parent,omitempty"`
	Extra   map[string]int64 `json:"extra,omitempty"`
}

type storedCase struct {
	name  string
	ser   *serializer.Serializer
	value any
	// target returns a pointer to decode into.
	target func() any
}

func storedCases() []storedCase {
	item := storedItem{
		ID: 42, Name: "Espresso cup", Price: 7.5, InStock: true,
		Tags: []string{"kitchen", "porcelain"}, Counts: map[string]int{"sold": 12, "returned": 1},
		Blob: []byte{0, 1, 2, 0xfe, 0xff}, Parent: &storedItem{ID: 7, Name: "Cups", Tags: []string{"all"}},
	}
	many := make([]storedItem, 40)
	for i := range many {
		many[i] = storedItem{ID: int64(1000 + i), Name: "Item number " + strings.Repeat("x", i%7), Price: float64(i) * 1.25,
			InStock: i%2 == 0, Tags: []string{"bulk", "catalogue"}, Counts: map[string]int{"views": i * 3}}
	}
	longText := strings.Repeat("memkit stores this sentence many times. ", 60)
	itemPtr := func() any { return new(storedItem) }
	manyPtr := func() any { return new([]storedItem) }
	strPtr := func() any { return new(string) }
	bytesPtr := func() any { return new([]byte) }
	var cases []storedCase
	codecs := []struct {
		name  string
		codec serializer.Codec
	}{{"msgpack", serializer.Msgpack}, {"gob", serializer.Gob}, {"json", serializer.JSON}}
	comps := []struct {
		name string
		comp serializer.Compressor
	}{{"none", serializer.None}, {"s2", serializer.S2}, {"zstd", serializer.Zstd}, {"zlib", serializer.Zlib}}
	for _, cd := range codecs {
		cases = append(cases, storedCase{cd.name + "/struct", &serializer.Serializer{Codec: cd.codec}, item, itemPtr})
		for _, cp := range comps {
			cases = append(cases, storedCase{cd.name + "/" + cp.name + "/rows",
				&serializer.Serializer{Codec: cd.codec, Compressor: cp.comp}, many, manyPtr})
		}
	}
	cases = append(cases,
		storedCase{"msgpack/map", &serializer.Serializer{}, map[string]string{"user": "ada", "theme": "dark"},
			func() any { return new(map[string]string) }},
		storedCase{"msgpack/int-slice", &serializer.Serializer{}, []int{-1, 0, 1, 300, 70000, 1 << 40},
			func() any { return new([]int) }},
		storedCase{"native/str", &serializer.Serializer{}, "héllo, wörld", strPtr},
		storedCase{"native/bytes", &serializer.Serializer{}, []byte{0xff, 0, 'a', 0x80}, bytesPtr},
		storedCase{"native/int", &serializer.Serializer{}, int64(-1234567890123), func() any { return new(int64) }},
		storedCase{"native/uint64", &serializer.Serializer{}, uint64(18446744073709551615), func() any { return new(uint64) }},
		storedCase{"native/zlib-str", &serializer.Serializer{}, longText, strPtr},
		storedCase{"native/zlib-bytes", &serializer.Serializer{}, []byte(longText), bytesPtr},
		storedCase{"raw/bytes", &serializer.Serializer{Codec: serializer.Raw, Compressor: serializer.None}, []byte(longText), bytesPtr},
		storedCase{"disable-native/str-s2", &serializer.Serializer{DisableNative: true}, longText, strPtr},
		storedCase{"disable-native/int-json", &serializer.Serializer{DisableNative: true, Codec: serializer.JSON}, 77,
			func() any { return new(int) }},
	)
	return cases
}

// deref returns what the pointer p points to.
func deref(p any) any {
	switch p := p.(type) {
	case *storedItem:
		return *p
	case *[]storedItem:
		return *p
	case *string:
		return *p
	case *[]byte:
		return *p
	case *int64:
		return *p
	case *uint64:
		return *p
	case *int:
		return *p
	case *[]int:
		return *p
	case *map[string]string:
		return *p
	}
	panic("deref: unexpected type")
}

func TestStoredValues(t *testing.T) {
	cases := storedCases()
	if *writeStored != "" {
		writeStoredFile(t, *writeStored, cases)
		return
	}
	files, err := filepath.Glob(filepath.Join("testdata", "stored", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no stored values to check")
	byName := make(map[string]storedCase, len(cases))
	for _, c := range cases {
		byName[c.name] = c
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			var sf storedFile
			require.NoError(t, json.Unmarshal(b, &sf))
			require.NotEmpty(t, sf.Values)
			for _, v := range sf.Values {
				c, ok := byName[v.Name]
				require.True(t, ok, "%s: no case named %q: cases may be added, never renamed or removed", file, v.Name)
				// Any Serializer reads any value, whatever its settings.
				for _, reader := range []*serializer.Serializer{{}, c.ser, {Codec: serializer.JSON, Compressor: serializer.None}} {
					dst := c.target()
					require.NoError(t, reader.Unmarshal(v.Data, v.Flags, dst), "%s: %s", file, v.Name)
					assert.Equal(t, c.value, deref(dst), "%s: %s", file, v.Name)
				}
			}
		})
	}
}

func writeStoredFile(t *testing.T, name string, cases []storedCase) {
	path := filepath.Join("testdata", "stored", name+".json")
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s exists: stored values are history, write a new file", path)
	}
	sf := storedFile{WrittenBy: "memkit " + name}
	for _, c := range cases {
		data, flags, err := c.ser.Marshal(c.value)
		require.NoError(t, err, c.name)
		sf.Values = append(sf.Values, storedValue{Name: c.name, Flags: flags, Data: data})
	}
	b, err := json.MarshalIndent(sf, "", "\t")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
	t.Logf("wrote %s", path)
}
