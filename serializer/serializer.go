package serializer

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
)

// Sentinel errors. Every error Unmarshal returns matches one of ErrCorrupt,
// ErrUnknownFormat, ErrTooLarge or ErrTarget; ErrPickle errors also match
// ErrUnknownFormat.
var (
	// ErrCorrupt reports a value that does not decode: truncated, corrupted,
	// or of the wrong shape for the target.
	ErrCorrupt = errors.New("serializer: corrupt value")
	// ErrUnknownFormat reports flags naming a codec, compressor or format
	// version this reader does not know, or reserved flag bits that are
	// set.
	ErrUnknownFormat = errors.New("serializer: unknown format")
	// ErrPickle reports a value python-memcached pickled (flag 1). Pickles
	// can run arbitrary code when loaded; they are refused, never executed.
	ErrPickle = errors.New("serializer: python pickle refused")
	// ErrTooLarge reports a compressed value whose decoded size exceeds
	// MaxDecodedSize.
	ErrTooLarge = errors.New("serializer: decoded value too large")
	// ErrTarget reports an Unmarshal target that is not a non-nil pointer.
	ErrTarget = errors.New("serializer: target must be a non-nil pointer")
	// ErrUnsupportedType reports a value the codec cannot encode, such as
	// a struct given to Raw.
	ErrUnsupportedType = errors.New("serializer: unsupported type")
	// ErrCodecID reports a Register call with an ID that is reserved or
	// already taken.
	ErrCodecID = errors.New("serializer: codec ID unavailable")
)

// Defaults for the zero-valued fields of Serializer.
const (
	// DefaultMinCompressLen is the encoded length above which values are
	// compressed when MinCompressLen is zero. Below about a kilobyte the
	// saving rarely pays for the CPU on either side.
	DefaultMinCompressLen = 1024
	// DefaultMaxDecodedSize bounds decompressed values when MaxDecodedSize
	// is zero: 32 MiB, far above memcached's 1 MiB default item size times
	// a typical compression ratio.
	DefaultMaxDecodedSize = 32 << 20
)

// Flag bits; the package doc describes the layout.
const (
	flagPickle = 1 << 0
	flagInt    = 1 << 1
	flagLong   = 1 << 2
	flagZlib   = 1 << 3
	flagText   = 1 << 4
	pyMask     = 0x1f

	codecShift   = 8
	compShift    = 16
	versionShift = 28
	reservedMask = 0x0ff000e0 // bits 5-7 and 20-27

	// formatVersion is the flag layout this package writes and reads
	// (bits 28-31). Every value written so far has 0 there.
	formatVersion = 0
)

// Serializer encodes values into bytes plus memcached item flags and back.
// The zero value is ready to use: msgpack, s2 above DefaultMinCompressLen,
// and python-memcached's native form for strings, byte slices and integers.
// Settings must not change once the Serializer is in use; it is then safe
// for concurrent use by multiple goroutines.
type Serializer struct {
	// Codec encodes values that are not stored natively. Nil means Msgpack.
	// A codec other than the built-ins must be registered (Register).
	Codec Codec
	// Compressor compresses codec output longer than MinCompressLen. Nil
	// means S2; None turns compression off, for native values too. Native
	// strings and byte slices always use Zlib, which Python can read.
	Compressor Compressor
	// MinCompressLen is the encoded length above which compression is
	// tried, as python-memcached's min_compress_len. Zero means
	// DefaultMinCompressLen; negative turns compression off.
	MinCompressLen int
	// MaxDecodedSize bounds the size of a decompressed value; larger ones
	// fail with ErrTooLarge. Zero or negative means DefaultMaxDecodedSize.
	// Uncompressed values are already in memory and are not limited.
	MaxDecodedSize int
	// DisableNative, when true, encodes strings, byte slices and integers
	// with Codec and Compressor instead of python-memcached's native form.
	// Unmarshal reads both forms either way.
	DisableNative bool
}

func (s *Serializer) codec() Codec {
	if s.Codec == nil {
		return Msgpack
	}
	return s.Codec
}

func (s *Serializer) compressor() Compressor {
	if s.Compressor == nil {
		return S2
	}
	return s.Compressor
}

func (s *Serializer) minCompressLen() int {
	if s.MinCompressLen == 0 {
		return DefaultMinCompressLen
	}
	return s.MinCompressLen
}

func (s *Serializer) maxDecodedSize() int {
	if s.MaxDecodedSize <= 0 {
		return DefaultMaxDecodedSize
	}
	return s.MaxDecodedSize
}

// Marshal encodes v into bytes and the item flags that describe them. The
// returned slice is newly allocated and owned by the caller. It returns an
// error matching ErrUnsupportedType when the codec fails to encode v (a
// channel, a func, a NaN for JSON, ...), and ErrUnknownFormat when Codec is
// not registered.
func (s *Serializer) Marshal(v any) (data []byte, flags uint32, err error) {
	c := s.codec()
	_, raw := c.(rawCodec)
	if !s.DisableNative || raw {
		if data, flags, ok := s.marshalNative(v, s.DisableNative); ok {
			return data, flags, nil
		}
	}
	if raw {
		return nil, 0, fmt.Errorf("%w: raw codec cannot encode %T", ErrUnsupportedType, v)
	}
	id := c.ID()
	if reg, ok := lookupCodec(id); !ok || reg.Name() != c.Name() {
		return nil, 0, fmt.Errorf("%w: codec %q (ID %d) is not registered", ErrUnknownFormat, c.Name(), id)
	}
	bp := getBuf()
	defer putBuf(bp)
	enc, err := c.Append((*bp)[:0], v)
	*bp = enc[:0]
	if err != nil {
		if errors.Is(err, ErrUnsupportedType) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("%w: %s: %w", ErrUnsupportedType, c.Name(), err)
	}
	data, cflags := s.compress(enc, s.compressor())
	return data, uint32(id)<<codecShift | cflags, nil
}

// marshalNative stores strings, byte slices and (unless rawOnly) integers
// the way python-memcached does. ok is false for any other type.
func (s *Serializer) marshalNative(v any, rawOnly bool) (data []byte, flags uint32, ok bool) {
	switch x := v.(type) {
	case []byte:
		data, flags = s.compressNative(x)
		return data, flags, true
	case string:
		data, flags = s.compressNative(stringBytes(x))
		if isUTF8(x) {
			flags |= flagText
		}
		return data, flags, true
	}
	if rawOnly {
		return nil, 0, false
	}
	if b, ok := appendInt(nil, v); ok {
		return b, flagInt, true
	}
	return nil, 0, false
}

// compressNative compresses with zlib, python-memcached's compressor, when
// compression is on. The result never aliases b.
func (s *Serializer) compressNative(b []byte) ([]byte, uint32) {
	comp := s.compressor()
	if _, off := comp.(noneCompressor); !off {
		comp = Zlib
	}
	return s.compress(b, comp)
}

// compress returns a copy of b, compressed with comp when that is on, b is
// longer than the threshold and the result is smaller, and the flag bits
// naming the compressor used.
func (s *Serializer) compress(b []byte, comp Compressor) ([]byte, uint32) {
	threshold := s.minCompressLen()
	if _, off := comp.(noneCompressor); off || threshold < 0 || len(b) <= threshold {
		return clone(b), 0
	}
	bp := getBuf()
	defer putBuf(bp)
	out, err := comp.compress((*bp)[:0], b)
	*bp = out[:0]
	if err != nil || len(out) >= len(b) {
		return clone(b), 0
	}
	return clone(out), comp.flags()
}

// Unmarshal decodes data written with flags into v, which must be a
// non-nil pointer. It reads whatever codec and compressor the flags name,
// whatever this Serializer's settings. It does not retain data.
//
// Errors match ErrTarget (v is not a non-nil pointer), ErrUnknownFormat
// (flags this reader cannot account for; with ErrPickle for Python
// pickles), ErrTooLarge (decompressed size above MaxDecodedSize) or
// ErrCorrupt (truncated or corrupted data, or data that does not fit v).
func (s *Serializer) Unmarshal(data []byte, flags uint32, v any) (err error) {
	if err := checkTarget(v); err != nil {
		return err
	}
	f, err := parseFlags(flags)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: decoder panic: %v", ErrCorrupt, r)
		}
	}()
	if f.comp != nil {
		bp := getBuf()
		defer putBuf(bp)
		out, err := f.comp.decompress((*bp)[:0], data, s.maxDecodedSize())
		if err != nil {
			return err
		}
		*bp = out[:0]
		data = out
	}
	if f.codec == nil {
		return decodeNative(f.native, data, v)
	}
	if err := f.codec.Unmarshal(data, v); err != nil {
		if errors.Is(err, ErrCorrupt) {
			return err
		}
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, f.codec.Name(), err)
	}
	return nil
}

// format is what a flags word says about a value.
type format struct {
	codec  Codec      // nil for native values
	native uint32     // python type flag for native values: 0, flagInt, flagLong or flagText
	comp   Compressor // nil when not compressed
}

func parseFlags(flags uint32) (format, error) {
	var f format
	if v := flags >> versionShift; v != formatVersion {
		return f, fmt.Errorf("%w: format version %d in flags %#x (this reader knows %d)", ErrUnknownFormat, v, flags, formatVersion)
	}
	if flags&reservedMask != 0 {
		return f, fmt.Errorf("%w: reserved bits in flags %#x", ErrUnknownFormat, flags)
	}
	codecID := uint8(flags >> codecShift)
	compID := uint8(flags>>compShift) & 0xf
	py := flags & pyMask
	if py&flagZlib != 0 {
		if compID != 0 {
			return f, fmt.Errorf("%w: two compressors in flags %#x", ErrUnknownFormat, flags)
		}
		f.comp = Zlib
		py &^= flagZlib
	}
	if codecID == 0 {
		if compID != 0 {
			return f, fmt.Errorf("%w: compressor %d on a native value, flags %#x", ErrUnknownFormat, compID, flags)
		}
		switch py {
		case 0, flagInt, flagLong, flagText:
			f.native = py
			return f, nil
		case flagPickle:
			return f, fmt.Errorf("%w: %w: flags %#x", ErrUnknownFormat, ErrPickle, flags)
		}
		return f, fmt.Errorf("%w: python flags %#x", ErrUnknownFormat, flags)
	}
	if py != 0 {
		return f, fmt.Errorf("%w: python bits with codec %d, flags %#x", ErrUnknownFormat, codecID, flags)
	}
	c, ok := lookupCodec(codecID)
	if !ok {
		return f, fmt.Errorf("%w: codec ID %d, flags %#x", ErrUnknownFormat, codecID, flags)
	}
	f.codec = c
	if compID != 0 {
		comp, ok := compressorByID(compID)
		if !ok {
			return f, fmt.Errorf("%w: compressor ID %d, flags %#x", ErrUnknownFormat, compID, flags)
		}
		f.comp = comp
	}
	return f, nil
}

func checkTarget(v any) error {
	switch p := v.(type) {
	case *any:
		if p != nil {
			return nil
		}
	case *string:
		if p != nil {
			return nil
		}
	case *[]byte:
		if p != nil {
			return nil
		}
	case *map[string]any:
		if p != nil {
			return nil
		}
	case nil:
	default:
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Pointer && !rv.IsNil() {
			return nil
		}
	}
	return fmt.Errorf("%w, not %T", ErrTarget, v)
}

// Buffer pool for encoding and decompression. Buffers that grew beyond
// maxPooled are dropped rather than kept alive.
const maxPooled = 4 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(bp *[]byte) {
	if cap(*bp) > maxPooled {
		return
	}
	*bp = (*bp)[:0]
	bufPool.Put(bp)
}

func clone(b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	return out
}
