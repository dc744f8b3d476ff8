package serializer

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// This file holds python-memcached's native forms: bytes (flag 0), str
// (flag 16, UTF-8) and int/long (flags 2 and 4, decimal ASCII).

// stringBytes returns the bytes of s without copying; they must not be
// modified.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func isUTF8(s string) bool { return utf8.ValidString(s) }

// appendInt appends the decimal form of v when v is a Go integer.
func appendInt(dst []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case int:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int8:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int16:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int64:
		return strconv.AppendInt(dst, x, 10), true
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10), true
	case uint64:
		return strconv.AppendUint(dst, x, 10), true
	}
	return dst, false
}

func nativeName(kind uint32) string {
	switch kind {
	case flagText:
		return "str"
	case flagInt, flagLong:
		return "int"
	}
	return "bytes"
}

// decodeNative stores a native value of the given kind into the pointer v.
// Any kind decodes into *[]byte and *string (an int as its decimal text);
// ints decode into integer pointers, range-checked, and float pointers;
// *any receives []byte, string, or int64 (uint64 above math.MaxInt64).
// Named types with those kinds work too.
func decodeNative(kind uint32, data []byte, v any) error {
	isInt := kind == flagInt || kind == flagLong
	if isInt {
		// memcached pads a decremented number with trailing spaces.
		data = bytes.TrimSpace(data)
	}
	switch p := v.(type) {
	case *[]byte:
		*p = append((*p)[:0], data...)
		return nil
	case *string:
		*p = string(data)
		return nil
	case *any:
		switch {
		case isInt:
			n, err := parseAnyInt(data)
			if err != nil {
				return err
			}
			*p = n
		case kind == flagText:
			*p = string(data)
		default:
			*p = clone(data)
		}
		return nil
	case *int64:
		if !isInt {
			break
		}
		n, err := parseInt(data, 64)
		*p = n
		return err
	case *int:
		if !isInt {
			break
		}
		n, err := parseInt(data, strconv.IntSize)
		*p = int(n)
		return err
	case *uint64:
		if !isInt {
			break
		}
		n, err := parseUint(data, 64)
		*p = n
		return err
	}
	// Named and less common types.
	rv := reflect.ValueOf(v).Elem()
	switch k := rv.Kind(); {
	case k == reflect.String:
		rv.SetString(string(data))
		return nil
	case k == reflect.Slice && rv.Type().Elem().Kind() == reflect.Uint8:
		rv.SetBytes(append(rv.Bytes()[:0], data...))
		return nil
	case isInt && k >= reflect.Int && k <= reflect.Int64:
		n, err := parseInt(data, rv.Type().Bits())
		if err == nil {
			rv.SetInt(n)
		}
		return err
	case isInt && k >= reflect.Uint && k <= reflect.Uintptr:
		n, err := parseUint(data, rv.Type().Bits())
		if err == nil {
			rv.SetUint(n)
		}
		return err
	case isInt && (k == reflect.Float32 || k == reflect.Float64):
		n, err := parseAnyInt(data)
		if err != nil {
			return err
		}
		if i, ok := n.(int64); ok {
			rv.SetFloat(float64(i))
		} else {
			rv.SetFloat(float64(n.(uint64)))
		}
		return nil
	case k == reflect.Interface && rv.NumMethod() == 0:
		var x any
		if err := decodeNative(kind, data, &x); err != nil {
			return err
		}
		rv.Set(reflect.ValueOf(x))
		return nil
	}
	return fmt.Errorf("%w: cannot decode python %s into %T", ErrCorrupt, nativeName(kind), v)
}

func parseInt(data []byte, bits int) (int64, error) {
	n, err := strconv.ParseInt(string(data), 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: python int %q: %w", ErrCorrupt, truncate(data), err)
	}
	return n, nil
}

func parseUint(data []byte, bits int) (uint64, error) {
	n, err := strconv.ParseUint(string(data), 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: python int %q: %w", ErrCorrupt, truncate(data), err)
	}
	return n, nil
}

// parseAnyInt returns an int64, or a uint64 for values above MaxInt64.
func parseAnyInt(data []byte) (any, error) {
	if n, err := strconv.ParseInt(string(data), 10, 64); err == nil {
		return n, nil
	}
	if n, err := strconv.ParseUint(string(data), 10, 64); err == nil {
		return n, nil
	}
	_, err := parseInt(data, 64)
	return nil, err
}

func truncate(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
