package objcache

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// The stored format. What objcache writes is either a plain serializer
// value (its bytes and item flags) or, when it has something to say
// besides the value, an envelope:
//
//	flags  envFlags (0x3f00: codec ID 63, which the serializer reserves
//	       for memkit and will never decode, so a reader that predates
//	       the envelope, including this package before it, reads a miss)
//	bytes  version      1 byte, envVersion (1)
//	       headerLen    uvarint: the length of the header fields below
//	       header       kind         1 byte: 0 a value, 1 a cached "not found"
//	                    flags        uvarint: the payload's serializer flags
//	                    expires      varint: logical expiry, Unix ms; 0 never
//	                    retryAt      varint: in service until, Unix ms, after
//	                                 a failed reload (FailSafe); 0 none
//	                    loadTime     uvarint: how long the load took, µs
//	                    tags         uvarint count, then for each: uvarint
//	                                 length, the tag, uvarint version
//	                    ...          fields a later release appends, skipped
//	       payload      the serializer's bytes
//
// A later release may append header fields (this one skips them, thanks to
// headerLen) or bump envVersion for a layout this one must not read (it
// reads a miss). Plain values are what objcache wrote before the envelope
// existed, and what it still writes through Set, Add, SetMulti and Update
// when there is nothing to add (no tags, no FailSafe) and the value is not
// empty, so python-memcached keeps reading them. An envelope is never
// empty, so an empty value with flags 0 is always a lease placeholder.
const (
	envFlags   uint32 = 63 << 8
	envVersion byte   = 1
)

// kind says what an envelope holds.
type kind uint8

const (
	kindValue    kind = 0
	kindNotFound kind = 1
)

// legacyNotFound marks a cached ErrNotFound as written before the
// envelope: flags 0 and a NUL-framed body no codec of ours produces.
var legacyNotFound = []byte("\x00objcache:not-found\x00")

// header is an envelope's header; the zero value describes a plain value.
type header struct {
	kind     kind
	flags    uint32        // the payload's serializer flags
	expires  int64         // logical expiry, Unix ms; 0 never
	retryAt  int64         // after a failed reload: in service until, Unix ms; 0 none
	loadTime time.Duration // how long the load took; 0 unknown
	tags     []tagVersion
}

// tagVersion is a tag a value carries and the tag's version when the
// value was loaded.
type tagVersion struct {
	tag     string
	version uint64
}

// stored is an item as objcache reads it.
type stored struct {
	header
	payload []byte
}

// itemKind is what an item's bytes and flags are.
type itemKind uint8

const (
	itemValue       itemKind = iota // a value (plain or enveloped) or a cached "not found"
	itemPlaceholder                 // a lease placeholder: empty, flags 0
	itemCorrupt                     // an envelope that does not parse
)

var errBadEnvelope = errors.New("objcache: malformed envelope")

// parseStored reads an item. It never panics, whatever the bytes.
func parseStored(data []byte, flags uint32) (stored, itemKind) {
	if flags != envFlags {
		if flags == 0 {
			if len(data) == 0 {
				return stored{}, itemPlaceholder
			}
			if string(data) == string(legacyNotFound) {
				return stored{header: header{kind: kindNotFound}}, itemValue
			}
		}
		return stored{header: header{flags: flags}, payload: data}, itemValue
	}
	s, err := parseEnvelope(data)
	if err != nil {
		return stored{}, itemCorrupt
	}
	return s, itemValue
}

func parseEnvelope(data []byte) (stored, error) {
	var s stored
	if len(data) < 2 || data[0] != envVersion {
		return s, errBadEnvelope
	}
	hlen, n := binary.Uvarint(data[1:])
	if n <= 0 || hlen > uint64(len(data)-1-n) {
		return s, errBadEnvelope
	}
	h := data[1+n : 1+n+int(hlen)]
	s.payload = data[1+n+int(hlen):]
	r := reader{b: h}
	k := r.byte()
	if k > byte(kindNotFound) {
		return s, errBadEnvelope
	}
	s.kind = kind(k)
	f := r.uvarint()
	if f > math.MaxUint32 {
		return s, errBadEnvelope
	}
	s.flags = uint32(f)
	s.expires = r.varint()
	s.retryAt = r.varint()
	lt := r.uvarint()
	if lt > uint64(math.MaxInt64/int64(time.Microsecond)) {
		return s, errBadEnvelope
	}
	s.loadTime = time.Duration(lt) * time.Microsecond
	nt := r.uvarint()
	if nt > uint64(len(h)) { // every tag takes at least 2 bytes
		return s, errBadEnvelope
	}
	if nt > 0 {
		s.tags = make([]tagVersion, 0, nt)
		for range nt {
			tag := r.bytes()
			s.tags = append(s.tags, tagVersion{tag: string(tag), version: r.uvarint()})
		}
	}
	if r.bad {
		return stored{}, errBadEnvelope
	}
	return s, nil
}

// appendEnvelope appends the envelope of h and payload to dst.
func appendEnvelope(dst []byte, h *header, payload []byte) []byte {
	var hb [64]byte
	hdr := hb[:0]
	hdr = append(hdr, byte(h.kind))
	hdr = binary.AppendUvarint(hdr, uint64(h.flags))
	hdr = binary.AppendVarint(hdr, h.expires)
	hdr = binary.AppendVarint(hdr, h.retryAt)
	hdr = binary.AppendUvarint(hdr, uint64(max(h.loadTime, 0)/time.Microsecond))
	hdr = binary.AppendUvarint(hdr, uint64(len(h.tags)))
	for _, t := range h.tags {
		hdr = binary.AppendUvarint(hdr, uint64(len(t.tag)))
		hdr = append(hdr, t.tag...)
		hdr = binary.AppendUvarint(hdr, t.version)
	}
	dst = append(dst, envVersion)
	dst = binary.AppendUvarint(dst, uint64(len(hdr)))
	dst = append(dst, hdr...)
	return append(dst, payload...)
}

// envelope returns the envelope of h and payload in a new slice.
func envelope(h *header, payload []byte) []byte {
	size := 24 + len(payload)
	for _, t := range h.tags {
		size += len(t.tag) + 12
	}
	return appendEnvelope(make([]byte, 0, size), h, payload)
}

// reader reads header fields; a short or malformed field sets bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.bad || n > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}
