package session

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/memkit/memkit/serializer"
	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// record is what a session stores: its creation time and each value as
// its own msgpack bytes, decoded lazily into the type the caller asks for.
//
// The record goes through the Manager's serializer (msgpack by default,
// whose flags carry the serializer's own format version), as a map:
//
//	"ver"  record layout version: recordVersion; absent in records written
//	       before the field existed, which have the same layout
//	"c"    creation time, Unix nanoseconds
//	"v"    values: key -> msgpack encoding of the value
//	"t"    type names of values: key -> name (see value.go); absent for
//	       values without one, and in records written before it existed
//	"f"    flashes: category -> msgpack encodings, oldest first
//	"ft"   type names of flashes, aligned with "f" ("" for none)
//	"l"    this session's absolute lifetime in nanoseconds (0: the
//	       Manager's Lifetime; negative: none)
//	"p"    this session's cookie persistence (0: the Manager's default;
//	       1: persistent; -1: browser session)
//	"u"    the user the session is bound to (Login); "" if none
//	"h"    the session's public handle, when bound
//	"e"    the user's epoch the session is valid under, when bound
//	"s"    last seen, Unix nanoseconds, when bound
//
// Fields may be added without a new version (readers skip fields they do
// not know); a change that older readers would misread takes a new
// version, and a reader treats a version it does not know as
// ErrUndecodable (a fresh session) rather than misread it. Every release
// keeps reading the records earlier ones wrote: testdata/stored holds them,
// read by TestStoredSessions.
type record struct {
	Version    int                             `msgpack:"ver,omitempty"`
	Created    int64                           `msgpack:"c"` // Unix nanoseconds
	Values     map[string]msgpack.RawMessage   `msgpack:"v,omitempty"`
	Types      map[string]string               `msgpack:"t,omitempty"`
	Flashes    map[string][]msgpack.RawMessage `msgpack:"f,omitempty"`
	FlashTypes map[string][]string             `msgpack:"ft,omitempty"`
	Lifetime   int64                           `msgpack:"l,omitempty"`
	Persist    int8                            `msgpack:"p,omitempty"`
	User       string                          `msgpack:"u,omitempty"`
	Handle     string                          `msgpack:"h,omitempty"`
	Epoch      uint64                          `msgpack:"e,omitempty"`
	Seen       int64                           `msgpack:"s,omitempty"`
}

// recordVersion is the record layout this package writes. Records without
// a version are of the same layout.
const recordVersion = 1

// binding is a session's tie to a user, set by Login.
type binding struct {
	user, handle string
	epoch        uint64
}

// changes are one request's edits to a session, kept apart from the loaded
// record so that they can be re-applied to a newer record after a lost
// compare-and-swap.
type changes struct {
	cleared  bool                            // start from an empty record (Clear, or a reset)
	created  int64                           // with cleared: the new creation time, if non-zero
	keys     map[string]*keyOp               // per-key edits
	flashAdd map[string][]flash              // by category
	flashPop map[string][]msgpack.RawMessage // flashes this request consumed
	lifetime *int64                          // SetLifetime
	persist  *int8                           // SetPersistent
	bind     *binding                        // Login
}

// flash is one flash message and its type name.
type flash struct {
	raw msgpack.RawMessage
	typ string
}

// keyOp is this request's edit of one key: a set or a delete, then updates
// re-applied to whatever value the key has at save time.
type keyOp struct {
	del     bool               // start from no value
	set     msgpack.RawMessage // start from this value, when non-nil
	setType string             // set's type name
	fns     []updateFunc       // then apply these, in order
}

// updateFunc computes a key's new encoded value and its type name from its
// current one.
type updateFunc func(old msgpack.RawMessage, found bool) (msgpack.RawMessage, string, error)

// value returns the key's value and type name after the edit, given its
// value and type name in the base record.
func (op *keyOp) value(v msgpack.RawMessage, typ string, found bool) (msgpack.RawMessage, string, bool) {
	if op.del {
		v, typ, found = nil, "", false
	}
	if op.set != nil {
		v, typ, found = op.set, op.setType, true
	}
	for _, fn := range op.fns {
		if nv, nt, err := fn(v, found); err == nil {
			v, typ, found = nv, nt, true
		}
	}
	return v, typ, found
}

func (ch *changes) op(key string) *keyOp {
	if ch.keys == nil {
		ch.keys = make(map[string]*keyOp)
	}
	op := ch.keys[key]
	if op == nil {
		op = &keyOp{}
		ch.keys[key] = op
	}
	return op
}

func (ch *changes) empty() bool {
	return !ch.cleared && len(ch.keys) == 0 && len(ch.flashAdd) == 0 && len(ch.flashPop) == 0 &&
		ch.lifetime == nil && ch.persist == nil && ch.bind == nil
}

// apply returns base with c applied; base is not modified.
func (ch *changes) apply(base *record) *record {
	out := &record{Version: recordVersion, Values: make(map[string]msgpack.RawMessage)}
	flashes := make(map[string][]flash)
	if base != nil {
		out.Created = base.Created
		out.Lifetime, out.Persist = base.Lifetime, base.Persist
		out.User, out.Handle, out.Epoch, out.Seen = base.User, base.Handle, base.Epoch, base.Seen
	}
	if base != nil && !ch.cleared {
		for k, v := range base.Values {
			out.Values[k] = v
			if t := base.Types[k]; t != "" {
				out.setType(k, t)
			}
		}
		for cat, list := range base.Flashes {
			types := base.FlashTypes[cat]
			for i, raw := range list {
				f := flash{raw: raw}
				if i < len(types) {
					f.typ = types[i]
				}
				flashes[cat] = append(flashes[cat], f)
			}
		}
	}
	if ch.cleared && ch.created != 0 {
		out.Created = ch.created
	}
	for k, op := range ch.keys {
		old, found := out.Values[k]
		if v, t, ok := op.value(old, out.Types[k], found); ok {
			out.Values[k] = v
			out.setType(k, t)
		} else {
			delete(out.Values, k)
			out.setType(k, "")
		}
	}
	for cat, popped := range ch.flashPop {
		list := flashes[cat]
		for _, p := range popped {
			for i, f := range list {
				if bytes.Equal(f.raw, p) {
					list = append(list[:i:i], list[i+1:]...)
					break
				}
			}
		}
		flashes[cat] = list
	}
	for cat, added := range ch.flashAdd {
		flashes[cat] = append(flashes[cat], added...)
	}
	for cat, list := range flashes {
		if len(list) == 0 {
			continue
		}
		if out.Flashes == nil {
			out.Flashes = make(map[string][]msgpack.RawMessage)
		}
		typed := false
		types := make([]string, len(list))
		for i, f := range list {
			out.Flashes[cat] = append(out.Flashes[cat], f.raw)
			types[i] = f.typ
			typed = typed || f.typ != ""
		}
		if typed {
			if out.FlashTypes == nil {
				out.FlashTypes = make(map[string][]string)
			}
			out.FlashTypes[cat] = types
		}
	}
	if ch.lifetime != nil {
		out.Lifetime = *ch.lifetime
	}
	if ch.persist != nil {
		out.Persist = *ch.persist
	}
	if ch.bind != nil {
		out.User, out.Handle, out.Epoch = ch.bind.user, ch.bind.handle, ch.bind.epoch
	}
	return out
}

// setType records key's type name ("" removes it).
func (r *record) setType(key, typ string) {
	if typ == "" {
		delete(r.Types, key)
		return
	}
	if r.Types == nil {
		r.Types = make(map[string]string)
	}
	r.Types[key] = typ
}

// flashTypes returns the type names of category's flashes, aligned with
// r.Flashes[category].
func (r *record) flashTypes(category string) []string {
	types := make([]string, len(r.Flashes[category]))
	copy(types, r.FlashTypes[category])
	return types
}

// The msgpack codec (the default serializer's) encodes and decodes every
// record a request loads and saves; EncodeMsgpack and DecodeMsgpack do it
// without reflection, byte for byte as msgpack does by the struct tags
// under the serializer's settings (a map of the fields that are not empty,
// in field order, integers in their shortest form). Other codecs (gob,
// json) do not see these methods.
var (
	_ msgpack.CustomEncoder = (*record)(nil)
	_ msgpack.CustomDecoder = (*record)(nil)
)

// plainRecord is a record without its msgpack methods, for the tests that
// compare them with msgpack's reflection.
type plainRecord record

// errArrayRecord refuses a record in msgpack's array form, which no
// release wrote.
var errArrayRecord = errors.New("session: record in array form")

// EncodeMsgpack implements msgpack.CustomEncoder.
func (r *record) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 1 // "c" is always there
	for _, present := range [...]bool{r.Version != 0, len(r.Values) > 0, len(r.Types) > 0, len(r.Flashes) > 0,
		len(r.FlashTypes) > 0, r.Lifetime != 0, r.Persist != 0, r.User != "", r.Handle != "", r.Epoch != 0, r.Seen != 0} {
		if present {
			n++
		}
	}
	w := recordWriter{enc: enc}
	w.do(enc.EncodeMapLen(n))
	if r.Version != 0 {
		w.key("ver")
		w.do(enc.EncodeInt(int64(r.Version)))
	}
	w.key("c")
	w.do(enc.EncodeInt(r.Created))
	if len(r.Values) > 0 {
		w.key("v")
		writeMap(&w, r.Values, encodeRaw)
	}
	if len(r.Types) > 0 {
		w.key("t")
		writeMap(&w, r.Types, (*msgpack.Encoder).EncodeString)
	}
	if len(r.Flashes) > 0 {
		w.key("f")
		writeListMap(&w, r.Flashes, encodeRaw)
	}
	if len(r.FlashTypes) > 0 {
		w.key("ft")
		writeListMap(&w, r.FlashTypes, (*msgpack.Encoder).EncodeString)
	}
	if r.Lifetime != 0 {
		w.key("l")
		w.do(enc.EncodeInt(r.Lifetime))
	}
	if r.Persist != 0 {
		w.key("p")
		w.do(enc.EncodeInt(int64(r.Persist)))
	}
	if r.User != "" {
		w.key("u")
		w.do(enc.EncodeString(r.User))
	}
	if r.Handle != "" {
		w.key("h")
		w.do(enc.EncodeString(r.Handle))
	}
	if r.Epoch != 0 {
		w.key("e")
		w.do(enc.EncodeUint(r.Epoch))
	}
	if r.Seen != 0 {
		w.key("s")
		w.do(enc.EncodeInt(r.Seen))
	}
	return w.err
}

// recordWriter keeps the first error of a run of encoder calls.
type recordWriter struct {
	enc *msgpack.Encoder
	err error
}

func (w *recordWriter) do(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *recordWriter) key(k string) { w.do(w.enc.EncodeString(k)) }

// encodeRaw writes an encoded value as msgpack writes a RawMessage: nil
// as msgpack's nil, anything else as it is.
func encodeRaw(enc *msgpack.Encoder, v msgpack.RawMessage) error {
	if v == nil {
		return enc.EncodeNil()
	}
	return v.EncodeMsgpack(enc)
}

// writeMap writes m as msgpack writes a map[string]V, each value by
// elem. (elem gets the encoder, not w: w stays on its caller's stack.)
func writeMap[V any](w *recordWriter, m map[string]V, elem func(*msgpack.Encoder, V) error) {
	w.do(w.enc.EncodeMapLen(len(m)))
	for k, v := range m {
		w.do(w.enc.EncodeString(k))
		w.do(elem(w.enc, v))
	}
}

// writeListMap writes m as msgpack writes a map[string][]V (a nil list as
// msgpack's nil), each element by elem.
func writeListMap[V any](w *recordWriter, m map[string][]V, elem func(*msgpack.Encoder, V) error) {
	w.do(w.enc.EncodeMapLen(len(m)))
	for k, list := range m {
		w.do(w.enc.EncodeString(k))
		if list == nil {
			w.do(w.enc.EncodeNil())
			continue
		}
		w.do(w.enc.EncodeArrayLen(len(list)))
		for _, v := range list {
			w.do(elem(w.enc, v))
		}
	}
}

// maxPrealloc bounds the room made for a map or list before its entries
// are read: a corrupt length must not allocate gigabytes.
const maxPrealloc = 64

// DecodeMsgpack implements msgpack.CustomDecoder. It reads a record in map
// form as msgpack's reflection would (unknown fields skipped, a field
// given twice decoded twice, nil maps and lists nil) and nil as the empty
// record, as reflection does; it refuses the array form, which reflection
// reads field by field but no release wrote. Unlike reflection, it makes
// room for no more than a few entries of a map or list before reading
// them, so that a corrupt length cannot exhaust the memory (reflection
// allocates the whole declared length of a list at once).
func (r *record) DecodeMsgpack(dec *msgpack.Decoder) error {
	c, err := dec.PeekCode()
	switch {
	case err != nil:
		return err
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		return errArrayRecord
	case !msgpcode.IsFixedMap(c) && c != msgpcode.Map16 && c != msgpcode.Map32 && c != msgpcode.Nil:
		return fmt.Errorf("session: record: unexpected msgpack code %#x", c)
	}
	n, err := dec.DecodeMapLen()
	if err != nil {
		return err
	}
	if n < 0 { // nil
		*r = record{}
		return nil
	}
	for i := 0; i < n; i++ {
		key, err := dec.DecodeString()
		if err != nil {
			return err
		}
		switch key {
		case "ver":
			var v int64
			v, err = dec.DecodeInt64()
			r.Version = int(v)
		case "c":
			r.Created, err = dec.DecodeInt64()
		case "v":
			r.Values, err = decodeMap(dec, r.Values, decodeRaw)
		case "t":
			r.Types, err = decodeMap(dec, r.Types, (*msgpack.Decoder).DecodeString)
		case "f":
			r.Flashes, err = decodeListMap(dec, r.Flashes, decodeRaw)
		case "ft":
			r.FlashTypes, err = decodeListMap(dec, r.FlashTypes, (*msgpack.Decoder).DecodeString)
		case "l":
			r.Lifetime, err = dec.DecodeInt64()
		case "p":
			var v int64
			v, err = dec.DecodeInt64()
			r.Persist = int8(v) // as reflect's SetInt
		case "u":
			r.User, err = dec.DecodeString()
		case "h":
			r.Handle, err = dec.DecodeString()
		case "e":
			r.Epoch, err = dec.DecodeUint64()
		case "s":
			r.Seen, err = dec.DecodeInt64()
		default:
			err = dec.Skip()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeMapLen reads a map's length: -1 (nil) sets m to nil, otherwise m
// is made if it is nil (a field given twice adds to the first one's map).
func decodeMapLen[V any](dec *msgpack.Decoder, m map[string]V) (int, map[string]V, error) {
	n, err := dec.DecodeMapLen()
	if err != nil || n < 0 {
		return n, nil, err
	}
	if m == nil {
		m = make(map[string]V, min(n, maxPrealloc))
	}
	return n, m, nil
}

// decodeMap reads a map[string]V into m (see decodeMapLen), each value
// by elem.
func decodeMap[V any](dec *msgpack.Decoder, m map[string]V, elem func(*msgpack.Decoder) (V, error)) (map[string]V, error) {
	n, m, err := decodeMapLen(dec, m)
	for i := 0; i < n && err == nil; i++ {
		var k string
		if k, err = dec.DecodeString(); err == nil {
			m[k], err = elem(dec)
		}
	}
	return m, err
}

// decodeListMap reads a map[string][]V into m (see decodeMapLen), a nil
// list as nil, each element by elem.
func decodeListMap[V any](dec *msgpack.Decoder, m map[string][]V, elem func(*msgpack.Decoder) (V, error)) (map[string][]V, error) {
	n, m, err := decodeMapLen(dec, m)
	for i := 0; i < n && err == nil; i++ {
		var k string
		if k, err = dec.DecodeString(); err != nil {
			break
		}
		var l int
		if l, err = dec.DecodeArrayLen(); err != nil || l < 0 {
			m[k] = nil
			continue
		}
		list := make([]V, 0, min(l, maxPrealloc))
		for j := 0; j < l && err == nil; j++ {
			var v V
			v, err = elem(dec)
			list = append(list, v)
		}
		m[k] = list
	}
	return m, err
}

// decodeRaw reads one value's bytes, as msgpack decodes a RawMessage: a
// nil value is a nil RawMessage (decodeRecord makes it msgpack's nil).
func decodeRaw(dec *msgpack.Decoder) (msgpack.RawMessage, error) {
	c, err := dec.PeekCode()
	if err != nil {
		return nil, err
	}
	if c == msgpcode.Nil {
		return nil, dec.Skip()
	}
	return dec.DecodeRaw()
}

// encodeRecord encodes r through ser.
func encodeRecord(ser *serializer.Serializer, r *record) ([]byte, uint32, error) {
	return ser.Marshal(r)
}

// decodeRecord decodes a stored record; any failure is ErrUndecodable.
func decodeRecord(ser *serializer.Serializer, data []byte, flags uint32) (*record, error) {
	var r record
	if err := ser.Unmarshal(data, flags, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	if r.Version > recordVersion || r.Version < 0 {
		return nil, fmt.Errorf("%w: record version %d (this reader knows up to %d)", ErrUndecodable, r.Version, recordVersion)
	}
	if r.Created <= 0 {
		return nil, fmt.Errorf("%w: no creation time", ErrUndecodable)
	}
	// msgpack decodes a stored nil (a nil slice or map, or Set(k, nil))
	// into an empty RawMessage: it is the nil it was.
	for k, v := range r.Values {
		if len(v) == 0 {
			r.Values[k] = msgpack.RawMessage{msgpcode.Nil}
		}
	}
	for _, list := range r.Flashes {
		for i, v := range list {
			if len(v) == 0 {
				list[i] = msgpack.RawMessage{msgpcode.Nil}
			}
		}
	}
	return &r, nil
}
