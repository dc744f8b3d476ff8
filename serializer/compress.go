package serializer

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Compressor is one of the built-in compressors: S2, Zstd, Zlib or None.
// The set is closed because every reader must know every compressor and
// bound its output. All are safe for concurrent use.
type Compressor interface {
	// Name is a short lower-case name.
	Name() string
	flags() uint32
	compress(dst, src []byte) ([]byte, error)
	// decompress appends the decoded src to dst, failing with ErrTooLarge
	// beyond max bytes and with ErrCorrupt on bad input.
	decompress(dst, src []byte, max int) ([]byte, error)
}

// Built-in compressors.
var (
	// S2 is klauspost/compress/s2 block format: very fast, the default.
	S2 Compressor = s2Compressor{}
	// Zstd is Zstandard (klauspost/compress/zstd) at its default level,
	// with checksums: smaller output than S2 for more CPU. Readers accept
	// only what memkit writes: one single-segment frame that declares its
	// size.
	Zstd Compressor = zstdCompressor{}
	// Zlib is RFC 1950 zlib, flagged with python-memcached's flag 8 so
	// Python can read it.
	Zlib Compressor = zlibCompressor{}
	// None turns compression off.
	None Compressor = noneCompressor{}
)

const (
	s2ID   = 1
	zstdID = 2
)

func compressorByID(id uint8) (Compressor, bool) {
	switch id {
	case s2ID:
		return S2, true
	case zstdID:
		return Zstd, true
	}
	return nil, false
}

func tooLarge(max int) error {
	return fmt.Errorf("%w: above %d bytes", ErrTooLarge, max)
}

type noneCompressor struct{}

func (noneCompressor) Name() string  { return "none" }
func (noneCompressor) flags() uint32 { return 0 }
func (noneCompressor) compress(dst, src []byte) ([]byte, error) {
	return append(dst, src...), nil
}
func (noneCompressor) decompress(dst, src []byte, max int) ([]byte, error) {
	if len(src) > max {
		return dst, tooLarge(max)
	}
	return append(dst, src...), nil
}

type s2Compressor struct{}

func (s2Compressor) Name() string  { return "s2" }
func (s2Compressor) flags() uint32 { return s2ID << compShift }

func (s2Compressor) compress(dst, src []byte) ([]byte, error) {
	n := s2.MaxEncodedLen(len(src))
	if n < 0 {
		return dst, s2.ErrTooLarge
	}
	dst = grow(dst, n)
	out := s2.Encode(dst[len(dst):len(dst)+n], src)
	return dst[:len(dst)+len(out)], nil
}

func (s2Compressor) decompress(dst, src []byte, max int) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return dst, fmt.Errorf("%w: s2: %w", ErrCorrupt, err)
	}
	if n > max {
		return dst, tooLarge(max)
	}
	dst = grow(dst, n)
	out, err := s2.Decode(dst[len(dst):len(dst)+n], src)
	if err != nil {
		return dst, fmt.Errorf("%w: s2: %w", ErrCorrupt, err)
	}
	return dst[:len(dst)+len(out)], nil
}

type zstdCompressor struct{}

func (zstdCompressor) Name() string  { return "zstd" }
func (zstdCompressor) flags() uint32 { return zstdID << compShift }

// zstdEncoder is shared; single-segment frames record the content size and
// need no window beyond it. EncodeAll is safe for concurrent use and starts no
// goroutines.
var zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithSingleSegment(true))
	if err != nil {
		panic(err) // only invalid options fail
	}
	return e
})

// zstdDecoder is shared: DecodeAll is safe for concurrent use and starts no
// goroutines. With the cap limit it never writes past cap(dst), which
// decompress sets to the frame's declared size.
var zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
	d, err := zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderConcurrency(0))
	if err != nil {
		panic(err) // only invalid options fail
	}
	return d
})

func (zstdCompressor) compress(dst, src []byte) ([]byte, error) {
	return zstdEncoder().EncodeAll(src, dst), nil
}

// decompress accepts only what compress writes: one single-segment frame
// that declares its content size, so the size is known, and bounded, before
// anything is allocated.
func (zstdCompressor) decompress(dst, src []byte, max int) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return dst, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
	}
	if h.Skippable || !h.SingleSegment || !h.HasFCS {
		return dst, fmt.Errorf("%w: zstd: not a single-segment frame with its content size", ErrCorrupt)
	}
	if h.FrameContentSize > uint64(max) {
		return dst, tooLarge(max)
	}
	n := int(h.FrameContentSize)
	start := len(dst)
	dst = grow(dst, n)
	out, err := zstdDecoder().DecodeAll(src, dst[start:start:start+n])
	switch {
	case err != nil:
		return dst[:start], fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
	case len(out) != n:
		return dst[:start], fmt.Errorf("%w: zstd: %d bytes, frame declares %d", ErrCorrupt, len(out), n)
	case n > 0 && &out[0] != &dst[start : start+1][0]:
		copy(dst[start:start+n], out) // not expected with the cap limit
	}
	return dst[:start+n], nil
}

type zlibCompressor struct{}

func (zlibCompressor) Name() string  { return "zlib" }
func (zlibCompressor) flags() uint32 { return flagZlib }

var (
	zlibWriters = sync.Pool{New: func() any {
		w, _ := zlib.NewWriterLevel(nil, zlib.DefaultCompression)
		return w
	}}
	zlibReaders sync.Pool // of zlibReader
)

type zlibReader struct {
	src bytes.Reader
	zr  io.ReadCloser // also a zlib.Resetter
}

func (zlibCompressor) compress(dst, src []byte) ([]byte, error) {
	w := appendWriter{b: dst}
	zw := zlibWriters.Get().(*zlib.Writer)
	zw.Reset(&w)
	_, err := zw.Write(src)
	if err == nil {
		err = zw.Close()
	}
	zw.Reset(nil)
	zlibWriters.Put(zw)
	return w.b, err
}

// zlibDirect is how much zlib output is decoded straight into the
// destination. zlib does not say how big its output is, so past this the
// rest is first counted in a small scratch buffer and only decoded for
// keeps, into a buffer of the exact size, once it is known to fit: a small
// payload that inflates past the limit (a bomb) then costs no allocation
// of the limit. Growing the destination as the output came instead
// allocated about six times the limit (append grows big slices by 1.25x).
const zlibDirect = 1 << 20

func (zlibCompressor) decompress(dst, src []byte, max int) ([]byte, error) {
	zr, _ := zlibReaders.Get().(*zlibReader)
	if zr == nil {
		zr = &zlibReader{}
	}
	defer func() {
		zr.src.Reset(nil)
		zlibReaders.Put(zr)
	}()
	if err := zr.reset(src); err != nil {
		return dst, err
	}
	start := len(dst)
	direct := min(max+1, zlibDirect) // bytes decoded straight into dst
	dst = grow(dst, min(direct, 4*len(src)+512))
	for len(dst)-start < direct {
		if len(dst) == cap(dst) {
			dst = grow(dst, min(cap(dst)-start, direct-(len(dst)-start)))
		}
		n, err := zr.zr.Read(dst[len(dst):min(cap(dst), start+direct)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return zr.finish(dst, start, max)
		}
		if err != nil {
			return dst[:start], fmt.Errorf("%w: zlib: %w", ErrCorrupt, err)
		}
	}
	if direct > max {
		return dst[:start], tooLarge(max)
	}
	// Count the rest before keeping any of it.
	total := len(dst) - start
	scratch := getBuf()
	defer putBuf(scratch)
	buf := (*scratch)[:cap(*scratch)]
	if len(buf) < 32<<10 {
		buf = make([]byte, 32<<10)
		*scratch = buf[:0]
	}
	for {
		n, err := zr.zr.Read(buf)
		total += n
		if total > max {
			return dst[:start], tooLarge(max)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return dst[:start], fmt.Errorf("%w: zlib: %w", ErrCorrupt, err)
		}
	}
	if err := zr.reset(src); err != nil {
		return dst[:start], err
	}
	dst = grow(dst[:start], total)[:start+total]
	if _, err := io.ReadFull(zr.zr, dst[start:]); err != nil {
		return dst[:start], fmt.Errorf("%w: zlib: %w", ErrCorrupt, err)
	}
	// Read on to the end, which checks the stream's checksum.
	if n, err := zr.zr.Read(buf[:1]); n != 0 || err != io.EOF {
		return dst[:start], fmt.Errorf("%w: zlib: output changed between passes", ErrCorrupt)
	}
	return zr.finish(dst, start, max)
}

// reset points the reader at src.
func (zr *zlibReader) reset(src []byte) error {
	zr.src.Reset(src)
	var err error
	if zr.zr == nil {
		zr.zr, err = zlib.NewReader(&zr.src)
	} else {
		err = zr.zr.(zlib.Resetter).Reset(&zr.src, nil)
	}
	if err != nil {
		zr.zr = nil
		return fmt.Errorf("%w: zlib: %w", ErrCorrupt, err)
	}
	return nil
}

// finish checks a complete output: within max, and no input left over.
func (zr *zlibReader) finish(dst []byte, start, max int) ([]byte, error) {
	if len(dst)-start > max {
		return dst[:start], tooLarge(max)
	}
	if src := zr.src.Len(); src > 0 {
		return dst[:start], fmt.Errorf("%w: zlib: %d trailing bytes", ErrCorrupt, src)
	}
	return dst, nil
}

// grow makes room for n more bytes after len(dst).
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	out := make([]byte, len(dst), len(dst)+n)
	copy(out, dst)
	return out
}
