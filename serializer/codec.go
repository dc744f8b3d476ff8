package serializer

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"
)

// Codec turns values into bytes and back. Implementations must be safe for
// concurrent use.
type Codec interface {
	// ID is the codec's number in bits 8-15 of the item flags. 0 is the
	// native/raw form, 1-63 are reserved for memkit, 64-255 are free for
	// user codecs.
	ID() uint8
	// Name is a short lower-case name used in error messages.
	Name() string
	// Append appends the encoding of v to dst and returns the result.
	Append(dst []byte, v any) ([]byte, error)
	// Unmarshal decodes data into the non-nil pointer v. It must not
	// retain data, which may be a pooled buffer, and should reject trailing
	// bytes.
	Unmarshal(data []byte, v any) error
}

// Built-in codecs.
var (
	// Msgpack encodes with github.com/vmihailenco/msgpack/v5, with compact
	// integers; struct fields without a msgpack tag use their json tag.
	// Decoding into an interface (a map[string]any session, say) gives
	// int64, uint64 and float64 numbers, string for both strings and binary
	// data, map[string]any maps and []any slices; typed targets (a []byte
	// struct field) get their own types.
	Msgpack Codec = msgpackCodec{}
	// Gob encodes with encoding/gob; each value carries its type
	// description, so values decode independently. Concrete types stored
	// in interface fields must be registered with gob.Register.
	Gob Codec = gobCodec{}
	// JSON encodes with encoding/json.
	JSON Codec = jsonCodec{}
	// Raw passes string and []byte through untouched, flagged the way
	// python-memcached flags str and bytes; it refuses other types with
	// ErrUnsupportedType. As Serializer.Codec it also stores integers as
	// python ints unless DisableNative is set.
	Raw Codec = rawCodec{}
)

// Codec IDs of the built-ins.
const (
	rawID     = 0
	msgpackID = 1
	gobID     = 2
	jsonID    = 3
)

// MinUserCodecID is the lowest codec ID Register accepts; lower IDs are
// memkit's.
const MinUserCodecID = 64

// registry maps codec IDs to codecs; written copy-on-write under regMu.
var (
	regMu    sync.Mutex // serializes Register
	registry atomic.Pointer[[256]Codec]
)

func init() {
	var r [256]Codec
	for _, c := range []Codec{Raw, Msgpack, Gob, JSON} {
		r[c.ID()] = c
	}
	registry.Store(&r)
}

// Register makes c known to every Serializer in the process, so values it
// wrote decode anywhere and it can be used as Serializer.Codec. Register
// the same codecs in every program that shares the data. Registering a
// codec with the same ID and Name again does nothing. It returns an error
// matching ErrCodecID when c.ID() is below MinUserCodecID or taken by a
// codec of another name. It is safe for concurrent use.
func Register(c Codec) error {
	if c == nil {
		return fmt.Errorf("%w: nil codec", ErrCodecID)
	}
	id := c.ID()
	if id < MinUserCodecID {
		return fmt.Errorf("%w: %d is reserved (user codecs use %d-255)", ErrCodecID, id, MinUserCodecID)
	}
	regMu.Lock()
	defer regMu.Unlock()
	old := registry.Load()
	if prev := old[id]; prev != nil {
		if prev.Name() == c.Name() {
			return nil // the same codec again
		}
		return fmt.Errorf("%w: %d is taken by %q", ErrCodecID, id, prev.Name())
	}
	r := *old
	r[id] = c
	registry.Store(&r)
	return nil
}

// lookupCodec returns the codec registered under id.
func lookupCodec(id uint8) (Codec, bool) {
	c := registry.Load()[id]
	return c, c != nil
}

// appendWriter is an io.Writer (and msgpack's writer) appending to b.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

func (w *appendWriter) WriteString(s string) (int, error) {
	w.b = append(w.b, s...)
	return len(s), nil
}

// trailing reports bytes left after a value as corruption.
func trailing(name string, r *bytes.Reader) error {
	if n := r.Len(); n > 0 {
		return fmt.Errorf("%w: %s: %d trailing bytes", ErrCorrupt, name, n)
	}
	return nil
}

type msgpackCodec struct{}

type msgpackEnc struct {
	enc *msgpack.Encoder
	w   appendWriter
}

type msgpackDec struct {
	dec *msgpack.Decoder
	r   bytes.Reader
}

var (
	msgpackEncPool = sync.Pool{New: func() any { return &msgpackEnc{enc: msgpack.NewEncoder(nil)} }}
	msgpackDecPool = sync.Pool{New: func() any { return &msgpackDec{dec: msgpack.NewDecoder(nil)} }}
)

func (msgpackCodec) ID() uint8    { return msgpackID }
func (msgpackCodec) Name() string { return "msgpack" }

func (msgpackCodec) Append(dst []byte, v any) ([]byte, error) {
	st := msgpackEncPool.Get().(*msgpackEnc)
	st.w.b = dst
	st.enc.Reset(&st.w)
	st.enc.UseCompactInts(true)
	st.enc.SetCustomStructTag("json")
	err := st.enc.Encode(v)
	out := st.w.b
	st.w.b = nil
	st.enc.Reset(nil)
	msgpackEncPool.Put(st)
	return out, err
}

func (msgpackCodec) Unmarshal(data []byte, v any) error {
	st := msgpackDecPool.Get().(*msgpackDec)
	st.r.Reset(data)
	st.dec.Reset(&st.r)
	st.dec.UseLooseInterfaceDecoding(true)
	st.dec.SetCustomStructTag("json")
	err := st.dec.Decode(v)
	if err == nil {
		err = trailing("msgpack", &st.r)
	}
	st.r.Reset(nil)
	st.dec.Reset(nil)
	// msgpack keeps the buffer it read strings and binaries into, and
	// grows it, a megabyte at a time, for every length an input declares,
	// even when the input turns out to be shorter. A decoder that failed,
	// or read a big input, is left to the collector rather than pooled,
	// so corrupt or foreign entries cannot make the pool grow.
	if err == nil && len(data) <= maxPooledDecode {
		msgpackDecPool.Put(st)
	}
	return err
}

// maxPooledDecode is the largest input after which a msgpack decoder is
// put back in its pool.
const maxPooledDecode = 64 << 10

type gobCodec struct{}

func (gobCodec) ID() uint8    { return gobID }
func (gobCodec) Name() string { return "gob" }

func (gobCodec) Append(dst []byte, v any) ([]byte, error) {
	w := appendWriter{b: dst}
	err := gob.NewEncoder(&w).Encode(v)
	return w.b, err
}

func (gobCodec) Unmarshal(data []byte, v any) error {
	r := bytes.NewReader(data)
	if err := gob.NewDecoder(r).Decode(v); err != nil {
		return err
	}
	return trailing("gob", r)
}

type jsonCodec struct{}

func (jsonCodec) ID() uint8    { return jsonID }
func (jsonCodec) Name() string { return "json" }

func (jsonCodec) Append(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

type rawCodec struct{}

func (rawCodec) ID() uint8    { return rawID }
func (rawCodec) Name() string { return "raw" }

func (rawCodec) Append(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return append(dst, x...), nil
	case string:
		return append(dst, x...), nil
	}
	return dst, fmt.Errorf("%w: raw codec cannot encode %T", ErrUnsupportedType, v)
}

// Unmarshal stores data into a *[]byte (reusing its capacity), a *string
// or a *any ([]byte).
func (rawCodec) Unmarshal(data []byte, v any) error {
	if err := checkTarget(v); err != nil {
		return err
	}
	return decodeNative(0, data, v)
}
