package objcache

import (
	"bytes"
	"context"
	"unsafe"
)

// How a value's payload (its serializer bytes and flags) becomes a T.
//
// A plain []byte or string stored by python-memcached's rules (flags 0 or
// 16, not compressed) needs no decoding: the result may be the payload's
// own bytes, which saves a copy on every hit. Whether it may depends on
// who else sees those bytes (sharing): memclient hands every read a
// value of its own, so a caller alone with it gets its bytes; goroutines
// that shared one lookup (the singleflight) read the same bytes, so each
// of them gets a copy of a []byte; a string never changes, so it may
// always share the payload, as long as nobody is handed those bytes as a
// []byte to change. Values of the local tier are shared by everyone (see
// LocalCache for the rule).

// sharing says who else sees the bytes a value is decoded from.
type sharing uint8

const (
	// ownBytes: the bytes are this caller's alone; a []byte or a string
	// result may be them.
	ownBytes sharing = iota
	// readBytes: other goroutines read the same bytes; a string may be
	// them, a []byte is a copy.
	readBytes
	// localBytes: the bytes are the local tier's, shared by every caller
	// under the aliasing rule: a []byte or a string may be them.
	localBytes
)

// Item flags of the serializer's native, uncompressed bytes and text
// (python-memcached's 0 and 16).
const (
	flagsBytes uint32 = 0
	flagsText  uint32 = 16
)

// decodePayload decodes data, written with the serializer flags, into a
// new T; a failure counts as a decode error.
func decodePayload[T any](ctx context.Context, c *Cache, data []byte, flags uint32, sh sharing) (T, bool) {
	v, ok := decodeQuiet[T](c, data, flags, sh)
	if !ok {
		c.count(ctx, EventDecodeError, 1)
	}
	return v, ok
}

// decodeQuiet is decodePayload without the count.
func decodeQuiet[T any](c *Cache, data []byte, flags uint32, sh sharing) (T, bool) {
	if v, ok := decodeRaw[T](data, flags, sh); ok {
		return v, true
	}
	var v T
	if err := c.ser.Unmarshal(data, flags, &v); err != nil {
		var zero T
		return zero, false
	}
	return v, true
}

// isRaw reports whether a payload with these flags decodes into a T
// through decodeRaw, which cannot fail.
func isRaw[T any](flags uint32) bool {
	if flags != flagsBytes && flags != flagsText {
		return false
	}
	switch any((*T)(nil)).(type) {
	case *[]byte, *string:
		return true
	}
	return false
}

// decodeRaw is decodePayload's fast path, for a native uncompressed value
// read into a []byte or a string: ok is false for anything else. It
// decodes as the serializer would (an empty value is a nil []byte), without
// the copy when sh allows.
func decodeRaw[T any](data []byte, flags uint32, sh sharing) (v T, ok bool) {
	if flags != flagsBytes && flags != flagsText {
		return v, false
	}
	switch p := any(&v).(type) {
	case *[]byte:
		switch {
		case len(data) == 0:
		case sh == readBytes:
			*p = bytes.Clone(data)
		default:
			*p = data[:len(data):len(data)]
		}
		return v, true
	case *string:
		if len(data) > 0 {
			*p = unsafe.String(unsafe.SliceData(data), len(data))
		}
		return v, true
	}
	return v, false
}

// decodeStored decodes s's payload into a new T; errors count as decode
// errors.
func decodeStored[T any](ctx context.Context, c *Cache, s *stored, sh sharing) (T, bool) {
	return decodePayload[T](ctx, c, s.payload, s.flags, sh)
}
