package session

import (
	"bytes"
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
