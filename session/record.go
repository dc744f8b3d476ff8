package session

import (
	"bytes"
	"fmt"

	"github.com/memkit/memkit/serializer"
	"github.com/vmihailenco/msgpack/v5"
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
//	"f"    flashes: category -> msgpack encodings, oldest first
//
// Fields may be added without a new version (readers skip fields they do
// not know); a change that older readers would misread takes a new
// version, and a reader treats a version it does not know as
// ErrUndecodable (a fresh session) rather than misread it. Every release
// keeps reading the records earlier ones wrote: testdata/stored holds them,
// read by TestStoredSessions.
type record struct {
	Version int                             `msgpack:"ver,omitempty"`
	Created int64                           `msgpack:"c"` // Unix nanoseconds
	Values  map[string]msgpack.RawMessage   `msgpack:"v,omitempty"`
	Flashes map[string][]msgpack.RawMessage `msgpack:"f,omitempty"`
}

// recordVersion is the record layout this package writes. Records without
// a version are of the same layout.
const recordVersion = 1

// changes are one request's edits to a session, kept apart from the loaded
// record so that they can be re-applied to a newer record after a lost
// compare-and-swap.
type changes struct {
	cleared  bool                            // start from an empty record (Clear, or a reset)
	created  int64                           // with cleared: the new creation time, if non-zero
	keys     map[string]*keyOp               // per-key edits
	flashAdd map[string][]msgpack.RawMessage // by category
	flashPop map[string][]msgpack.RawMessage // flashes this request consumed
}

// keyOp is this request's edit of one key: a set or a delete, then updates
// re-applied to whatever value the key has at save time.
type keyOp struct {
	del bool               // start from no value
	set msgpack.RawMessage // start from this value, when non-nil
	fns []updateFunc       // then apply these, in order
}

// updateFunc computes a key's new encoded value from its current one.
type updateFunc func(old msgpack.RawMessage, found bool) (msgpack.RawMessage, error)

// value returns the key's value after the edit, given its value in the
// base record.
func (op *keyOp) value(v msgpack.RawMessage, found bool) (msgpack.RawMessage, bool) {
	if op.del {
		v, found = nil, false
	}
	if op.set != nil {
		v, found = op.set, true
	}
	for _, fn := range op.fns {
		if nv, err := fn(v, found); err == nil {
			v, found = nv, true
		}
	}
	return v, found
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
	return !ch.cleared && len(ch.keys) == 0 && len(ch.flashAdd) == 0 && len(ch.flashPop) == 0
}

// apply returns base with c applied; base is not modified.
func (ch *changes) apply(base *record) *record {
	out := &record{Version: recordVersion, Values: make(map[string]msgpack.RawMessage)}
	if base != nil {
		out.Created = base.Created
	}
	if base != nil && !ch.cleared {
		for k, v := range base.Values {
			out.Values[k] = v
		}
		for cat, list := range base.Flashes {
			if out.Flashes == nil {
				out.Flashes = make(map[string][]msgpack.RawMessage)
			}
			out.Flashes[cat] = append([]msgpack.RawMessage(nil), list...)
		}
	}
	if ch.cleared && ch.created != 0 {
		out.Created = ch.created
	}
	for k, op := range ch.keys {
		old, found := out.Values[k]
		if v, ok := op.value(old, found); ok {
			out.Values[k] = v
		} else {
			delete(out.Values, k)
		}
	}
	for cat, popped := range ch.flashPop {
		list := out.Flashes[cat]
		for _, p := range popped {
			for i, v := range list {
				if bytes.Equal(v, p) {
					list = append(list[:i:i], list[i+1:]...)
					break
				}
			}
		}
		if len(list) == 0 {
			delete(out.Flashes, cat)
		} else {
			out.Flashes[cat] = list
		}
	}
	for cat, added := range ch.flashAdd {
		if out.Flashes == nil {
			out.Flashes = make(map[string][]msgpack.RawMessage)
		}
		out.Flashes[cat] = append(out.Flashes[cat], added...)
	}
	return out
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
	for k, v := range r.Values {
		if len(v) == 0 {
			return nil, fmt.Errorf("%w: empty value for key %q", ErrUndecodable, k)
		}
	}
	return &r, nil
}

// encodeValue encodes one session value.
func encodeValue(v any) (msgpack.RawMessage, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("session: encoding value: %w", err)
	}
	return b, nil
}

// decodeValue decodes one session value into the pointer dst.
func decodeValue(raw msgpack.RawMessage, dst any) error {
	if err := msgpack.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	return nil
}
