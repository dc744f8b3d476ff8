package serializer_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/memkit/memkit/serializer"
)

func Example() {
	var s serializer.Serializer // msgpack, s2 above 1 KiB, python-compatible natives

	type Cart struct {
		Items []string `json:"items"`
		Total int      `json:"total_cents"`
	}
	data, flags, err := s.Marshal(Cart{Items: []string{"book", "pen"}, Total: 2798})
	if err != nil {
		panic(err)
	}
	fmt.Printf("flags %#x\n", flags) // codec 1 (msgpack), uncompressed

	// Any Serializer decodes it: the flags say how it was written.
	var reader serializer.Serializer
	var cart Cart
	if err := reader.Unmarshal(data, flags, &cart); err != nil {
		panic(err)
	}
	fmt.Println(cart.Items, cart.Total)
	// Output:
	// flags 0x100
	// [book pen] 2798
}

// Strings, byte slices and integers are stored as python-memcached stores
// str, bytes and int, so a Python application reads them natively.
func Example_python() {
	var s serializer.Serializer
	for _, v := range []any{"héllo", []byte{0xff}, 42, strings.Repeat("x", 2000)} {
		data, flags, err := s.Marshal(v)
		if err != nil {
			panic(err)
		}
		if flags&8 != 0 { // zlib: show the stream header
			data = data[:2]
		}
		fmt.Printf("%T: flags %d, %q\n", v, flags, data)
	}
	// Output:
	// string: flags 16, "héllo"
	// []uint8: flags 0, "\xff"
	// int: flags 2, "42"
	// string: flags 24, "x\x9c"
}

// A value python-memcached pickled is refused, never unpickled.
func ExampleErrPickle() {
	var s serializer.Serializer
	var v any
	err := s.Unmarshal([]byte("\x80\x04\x95..."), 1, &v)
	fmt.Println(errors.Is(err, serializer.ErrPickle), errors.Is(err, serializer.ErrUnknownFormat))
	// Output:
	// true true
}

// Compression is tried above MinCompressLen and kept only when smaller;
// decompression stops at MaxDecodedSize.
func ExampleSerializer_compression() {
	w := serializer.Serializer{Compressor: serializer.Zstd, MinCompressLen: 100}
	page := map[string]string{"html": strings.Repeat("<li>item</li>", 1000)}
	data, flags, err := w.Marshal(page)
	if err != nil {
		panic(err)
	}
	fmt.Printf("flags %#x, compressed to less than 1%%: %v\n", flags, len(data) < 130)

	small := serializer.Serializer{MaxDecodedSize: 4096}
	var got map[string]string
	err = small.Unmarshal(data, flags, &got)
	fmt.Println(errors.Is(err, serializer.ErrTooLarge))
	// Output:
	// flags 0x20100, compressed to less than 1%: true
	// true
}

// upper is a user codec: it stores strings upper-cased.
type upper struct{}

func (upper) ID() uint8    { return 100 }
func (upper) Name() string { return "upper" }
func (upper) Append(dst []byte, v any) ([]byte, error) {
	s, ok := v.(fmt.Stringer)
	if !ok {
		return dst, serializer.ErrUnsupportedType
	}
	return append(dst, strings.ToUpper(s.String())...), nil
}
func (upper) Unmarshal(data []byte, v any) error {
	p, ok := v.(*string)
	if !ok {
		return fmt.Errorf("upper: cannot decode into %T", v)
	}
	*p = string(data)
	return nil
}

type name string

func (n name) String() string { return string(n) }

func ExampleRegister() {
	if err := serializer.Register(upper{}); err != nil {
		panic(err)
	}
	w := serializer.Serializer{Codec: upper{}}
	data, flags, err := w.Marshal(name("ada"))
	if err != nil {
		panic(err)
	}
	var got string
	var reader serializer.Serializer // knows the codec from the flags
	if err := reader.Unmarshal(data, flags, &got); err != nil {
		panic(err)
	}
	fmt.Printf("flags %#x: %s\n", flags, got)
	// Output:
	// flags 0x6400: ADA
}
