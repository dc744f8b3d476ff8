// Package serializer turns Go values into self-describing (bytes, flags)
// pairs for memcached and back.
//
// PLACEHOLDER: this file fixes the API other packages build on; the full
// implementation (codecs, compression, python-memcached flags) replaces it.
package serializer

import (
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Sentinel errors.
var (
	// ErrCorrupt reports a value that does not decode: truncated, corrupted,
	// or of the wrong shape for the target.
	ErrCorrupt = errors.New("serializer: corrupt value")
	// ErrUnknownFormat reports flags naming a codec or compressor this
	// reader does not know.
	ErrUnknownFormat = errors.New("serializer: unknown format")
)

// Serializer encodes and decodes values. The zero value is ready to use.
// It is safe for concurrent use.
type Serializer struct{}

// Marshal encodes v into bytes and the item flags that describe them.
func (s *Serializer) Marshal(v any) ([]byte, uint32, error) {
	b, err := msgpack.Marshal(v)
	return b, 0x100, err
}

// Unmarshal decodes data written with flags into the pointer v.
func (s *Serializer) Unmarshal(data []byte, flags uint32, v any) error {
	if flags != 0x100 {
		return fmt.Errorf("%w: flags %#x", ErrUnknownFormat, flags)
	}
	if err := msgpack.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}
