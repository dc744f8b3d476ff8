// Package serializer turns Go values into self-describing (bytes, flags)
// pairs for memcached and back.
//
// A [Serializer] encodes a value with a [Codec] (msgpack by default; gob,
// JSON, raw, or one registered with [Register]) and, when the encoding is
// longer than MinCompressLen and compression actually makes it smaller,
// compresses it with a [Compressor] (s2 by default; zstd, zlib). The item
// flags returned by Marshal name both, so Unmarshal needs no configuration:
// any Serializer, whatever its settings, decodes any value any other wrote.
//
// # python-memcached compatibility
//
// By default a string, a []byte and a Go integer (int, int8...int64, uint,
// uint8...uint64; exact types, not named types) are stored the way
// python-memcached 1.59 stores str, bytes and int, so a Python application
// sharing the servers reads them natively, and what it writes for str, bytes
// and int decodes in Go:
//
//	Go value                      bytes                  flags
//	[]byte                        as is                  0    (Python bytes)
//	string, valid UTF-8           as is                  16   (Python str)
//	string, not valid UTF-8       as is                  0    (Python bytes)
//	integers                      decimal ASCII          2    (Python int)
//	string/[]byte, compressed     zlib stream            8|16 or 8|0
//
// Native strings and byte slices longer than MinCompressLen are compressed
// with zlib, python-memcached's only compressor, whatever Compressor says
// (unless compression is off), and kept compressed only when smaller, exactly
// as python-memcached does. Integers are never compressed. Integers stored
// this way also work with memcached's incr/decr. Set DisableNative to encode
// these types with Codec and Compressor like everything else.
//
// Every other value goes through Codec and carries memkit's own flag bits,
// which python-memcached does not know: it raises "Unknown flags on get"
// rather than misreading them. Python's pickles (flag 1) are refused with
// [ErrPickle]: they are never executed.
//
// pylibmc uses the same flags except that it writes ints with flag 4
// (long), which Unmarshal reads too; it reads Go's str, bytes, int and zlib
// values natively, and returns values with memkit's flags as raw bytes.
//
// # Flag layout
//
//	bit  0      python-memcached pickle (refused on read, never written)
//	bit  1      python-memcached int (decimal text)
//	bit  2      python-memcached long (decimal text; read only)
//	bit  3      zlib compression (python-memcached's flag 8), any codec
//	bit  4      python-memcached str (UTF-8 text)
//	bits 5-7    zero
//	bits 8-15   codec ID: 0 native/raw (bits 0-4 give the type),
//	            1 msgpack, 2 gob, 3 json, 4-63 reserved for memkit,
//	            64-255 user codecs (see Register)
//	bits 16-19  compressor ID: 0 none (or zlib when bit 3 is set),
//	            1 s2, 2 zstd; s2 and zstd are only used with codec IDs > 0
//	bits 20-27  zero
//	bits 28-31  format version: 0, the layout above
//
// A reader refuses flags it cannot account for with [ErrUnknownFormat]:
// reserved bits set, a format version it does not know, an unregistered
// codec or compressor ID, python bits combined with a memkit codec, or two
// compressors at once.
//
// # Versions
//
// Every value carries the version of its layout in flag bits 28-31. Values
// written before the field existed have 0 there, which is the layout above:
// they read as they always did, and python-memcached's flags keep their
// meaning. A change to how a codec or compressor encodes takes a new codec or
// compressor ID; a change to the layout itself takes a new version. A reader
// refuses a version it does not know rather than misread it, so during a
// rolling deploy an older process treats a newer value as unreadable (a
// cache miss for objcache), never as garbage, and every release keeps
// reading what earlier ones wrote: testdata/stored holds the bytes each
// release stored, and TestStoredValues reads them all.
//
// # Bad input
//
// Unmarshal never panics on hostile input. Truncated or corrupted payloads,
// trailing bytes after a msgpack or gob value, and values that do not fit
// the target type return errors matching [ErrCorrupt]. Decompression stops
// at MaxDecodedSize and returns [ErrTooLarge], so a small value cannot make
// the reader allocate without bound.
//
// # Performance
//
// Encoding and decompression use pooled buffers; Marshal allocates its
// result once, at its final size. An uncompressed value is decoded straight
// from the caller's bytes, and Unmarshal into a *[]byte reuses the slice's
// capacity. README.md has the benchmark table: encode+decode time, size
// and allocations of a session map and of 50 database rows for each codec
// and compressor. In short, msgpack is the fastest codec (a session map in
// about 2.3 µs, 300 bytes); s2 shrinks 50 rows of structs from 5.9 KB to
// 1.5 KB for about 3 µs more; zstd reaches 0.7 KB for about 15 µs more.
package serializer
