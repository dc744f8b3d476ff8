package session

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Values keep their Go types through a type name stored beside each value
// (the record's "t" field), written for the types below and composites of
// them; the value itself stays plain msgpack, so releases that do not know
// the names still read the values.
//
//	bool string int int8 int16 int32 int64 uint uint8 uint16 uint32 uint64
//	uintptr float32 float64 time.Time any []T map[K]T
//
// ([]byte is []uint8.) Named types (type Role string), structs and
// pointers get no name: Session.Get decodes them as msgpack decodes into an
// interface, and the generic Get reads them exactly.

var (
	timeType  = reflect.TypeFor[time.Time]()
	anyType   = reflect.TypeFor[any]()
	bytesType = reflect.TypeFor[[]byte]()
)

// basicTypes are the type names a value can carry, by name.
var basicTypes = map[string]reflect.Type{
	"bool": reflect.TypeFor[bool](), "string": reflect.TypeFor[string](),
	"int": reflect.TypeFor[int](), "int8": reflect.TypeFor[int8](), "int16": reflect.TypeFor[int16](),
	"int32": reflect.TypeFor[int32](), "int64": reflect.TypeFor[int64](),
	"uint": reflect.TypeFor[uint](), "uint8": reflect.TypeFor[uint8](), "uint16": reflect.TypeFor[uint16](),
	"uint32": reflect.TypeFor[uint32](), "uint64": reflect.TypeFor[uint64](), "uintptr": reflect.TypeFor[uintptr](),
	"float32": reflect.TypeFor[float32](), "float64": reflect.TypeFor[float64](),
	"time.Time": timeType, "any": anyType,
}

// maxTypeDepth bounds the nesting of a type name, and maxTypeName its
// length: names come from the store and are parsed on every typed read.
const (
	maxTypeDepth = 16
	maxTypeName  = 512
)

// typeName returns the name stored for a value of type t, or "" when t
// keeps no name (named types, structs, pointers, interfaces with methods).
func typeName(t reflect.Type) string {
	name, ok := typeNameDepth(t, 0)
	if !ok || len(name) > maxTypeName {
		return ""
	}
	return name
}

func typeNameDepth(t reflect.Type, depth int) (string, bool) {
	if t == nil || depth > maxTypeDepth {
		return "", false
	}
	if t == timeType {
		return "time.Time", true
	}
	if t == anyType {
		return "any", true
	}
	switch t.Kind() {
	case reflect.Slice:
		if t.Name() != "" {
			return "", false
		}
		e, ok := typeNameDepth(t.Elem(), depth+1)
		return "[]" + e, ok
	case reflect.Map:
		if t.Name() != "" {
			return "", false
		}
		k, ok := typeNameDepth(t.Key(), depth+1)
		if !ok || !basicKey(k) {
			return "", false
		}
		e, ok := typeNameDepth(t.Elem(), depth+1)
		return "map[" + k + "]" + e, ok
	}
	if t.PkgPath() != "" || t.Name() == "" {
		return "", false
	}
	if bt, ok := basicTypes[t.Name()]; ok && bt == t {
		return t.Name(), true
	}
	return "", false
}

// basicKey reports whether name may be a map key in a type name.
func basicKey(name string) bool {
	t, ok := basicTypes[name]
	return ok && t != anyType && t != timeType
}

// parseType returns the type a stored type name describes.
func parseType(name string) (reflect.Type, error) {
	if len(name) > maxTypeName {
		return nil, fmt.Errorf("type name of %d bytes", len(name))
	}
	t, rest, err := parseTypeDepth(name, 0)
	if err != nil {
		return nil, err
	}
	if rest != "" {
		return nil, fmt.Errorf("type name %q: trailing %q", name, rest)
	}
	return t, nil
}

func parseTypeDepth(s string, depth int) (reflect.Type, string, error) {
	if depth > maxTypeDepth {
		return nil, "", errors.New("type name nested too deep")
	}
	switch {
	case strings.HasPrefix(s, "[]"):
		e, rest, err := parseTypeDepth(s[2:], depth+1)
		if err != nil {
			return nil, "", err
		}
		return reflect.SliceOf(e), rest, nil
	case strings.HasPrefix(s, "map["):
		end := strings.IndexByte(s, ']')
		if end < 0 || !basicKey(s[4:end]) {
			return nil, "", fmt.Errorf("type name %q: bad map key", s)
		}
		e, rest, err := parseTypeDepth(s[end+1:], depth+1)
		if err != nil {
			return nil, "", err
		}
		return reflect.MapOf(basicTypes[s[4:end]], e), rest, nil
	}
	end := strings.IndexAny(s, "[]")
	if end < 0 {
		end = len(s)
	}
	t, ok := basicTypes[s[:end]]
	if !ok {
		return nil, "", fmt.Errorf("unknown type name %q", s[:end])
	}
	return t, s[end:], nil
}

// valueEncoder and valueDecoder are msgpack's encoder and decoder with
// their buffers, reused through pools: every Set encodes a value and
// every typed read decodes one. They run with msgpack's default settings,
// as msgpack.Marshal and msgpack.NewDecoder do.
type valueEncoder struct {
	enc *msgpack.Encoder
	buf bytes.Buffer
}

type valueDecoder struct {
	dec *msgpack.Decoder
	r   bytes.Reader
}

// maxPooledValue bounds the buffer a pooled encoder keeps and the value
// after which a decoder goes back to its pool.
const maxPooledValue = 64 << 10

var (
	valueEncoders = sync.Pool{New: func() any { return &valueEncoder{enc: msgpack.NewEncoder(nil)} }}
	valueDecoders = sync.Pool{New: func() any { return &valueDecoder{dec: msgpack.NewDecoder(nil)} }}
)

// encodeValue encodes one session value and returns its type name.
func encodeValue(v any) (msgpack.RawMessage, string, error) {
	e := valueEncoders.Get().(*valueEncoder)
	e.buf.Reset()
	e.enc.Reset(&e.buf)
	err := e.enc.Encode(v)
	var b msgpack.RawMessage
	if err == nil {
		b = bytes.Clone(e.buf.Bytes())
	}
	e.enc.Reset(nil)
	if e.buf.Cap() <= maxPooledValue {
		valueEncoders.Put(e)
	}
	if err != nil {
		return nil, "", fmt.Errorf("session: encoding value: %w", err)
	}
	return b, typeName(reflect.TypeOf(v)), nil
}

// withDecoder runs fn with a pooled decoder reading raw. msgpack keeps
// the buffer it reads strings into and grows it for every length an input
// declares, even one longer than the input, so a decoder that failed or
// read a big value is left to the collector: a corrupt record cannot make
// the pool grow. (msgpack.Unmarshal pools its decoders without that check.)
func withDecoder(raw []byte, fn func(*msgpack.Decoder) error) error {
	d := valueDecoders.Get().(*valueDecoder)
	d.r.Reset(raw)
	d.dec.Reset(&d.r)
	err := fn(d.dec)
	d.dec.Reset(nil)
	d.r.Reset(nil)
	if err == nil && len(raw) <= maxPooledValue {
		valueDecoders.Put(d)
	}
	return err
}

// unmarshalValue is msgpack.Unmarshal through withDecoder.
func unmarshalValue(raw []byte, dst any) error {
	return withDecoder(raw, func(d *msgpack.Decoder) error { return d.Decode(dst) })
}

// untypedMap decodes maps as map[any]any, for convert.
func untypedMap(d *msgpack.Decoder) (any, error) { return d.DecodeUntypedMap() }

// decodeAny decodes a value for Session.Get: into its stored type when
// it has a type name, else as msgpack decodes into an interface.
func decodeAny(raw msgpack.RawMessage, typ string) (any, error) {
	if typ != "" {
		t, err := parseType(typ)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
		}
		v := reflect.New(t)
		if err := decodeValue(raw, v.Interface()); err != nil {
			return nil, err
		}
		return v.Elem().Interface(), nil
	}
	var v any
	if err := unmarshalValue(raw, &v); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	return v, nil
}

// decodeValue decodes one session value into the pointer dst. Into the
// types a value can carry the name of (and named types of those kinds) it
// converts numbers only where no information is lost, and fails
// otherwise; anything else decodes as msgpack decodes it.
func decodeValue(raw msgpack.RawMessage, dst any) error {
	pv := reflect.ValueOf(dst)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return fmt.Errorf("session: decoding into %T, not a non-nil pointer", dst)
	}
	t := pv.Elem().Type()
	if !convertible(t, 0) {
		if err := unmarshalValue(raw, dst); err != nil {
			return fmt.Errorf("%w: %w", ErrUndecodable, err)
		}
		return nil
	}
	var v any
	err := withDecoder(raw, func(d *msgpack.Decoder) (err error) {
		d.SetMapDecoder(untypedMap)
		v, err = d.DecodeInterface()
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	out, err := convert(v, t, 0)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	pv.Elem().Set(out)
	return nil
}

// convertible reports whether values of t are converted by convert
// rather than decoded by msgpack.
func convertible(t reflect.Type, depth int) bool {
	if depth > maxTypeDepth {
		return false
	}
	if t == timeType || t == anyType {
		return true
	}
	switch t.Kind() {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	case reflect.Slice:
		return convertible(t.Elem(), depth+1)
	case reflect.Map:
		return convertible(t.Key(), depth+1) && t.Key() != anyType && convertible(t.Elem(), depth+1)
	}
	return false
}

// errLossy is a value that t cannot hold without losing information.
func errLossy(v any, t reflect.Type) error {
	return fmt.Errorf("a stored %T (%v) does not fit %v without loss", v, v, t)
}

// convert returns v, as msgpack decoded it into an interface, as a value
// of type t (for which convertible is true).
func convert(v any, t reflect.Type, depth int) (reflect.Value, error) {
	if t == anyType {
		out := reflect.New(t).Elem()
		if v != nil {
			out.Set(reflect.ValueOf(normalize(v)))
		}
		return out, nil
	}
	out := reflect.New(t).Elem()
	if v == nil {
		switch t.Kind() {
		case reflect.Slice, reflect.Map:
			return out, nil // nil
		}
		return out, fmt.Errorf("a stored nil does not fit %v", t)
	}
	if t == timeType {
		tm, ok := v.(time.Time)
		if !ok {
			return out, fmt.Errorf("a stored %T does not fit time.Time", v)
		}
		out.Set(reflect.ValueOf(tm))
		return out, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return out, fmt.Errorf("a stored %T does not fit %v", v, t)
		}
		out.SetBool(b)
	case reflect.String:
		switch s := v.(type) {
		case string:
			out.SetString(s)
		case []byte:
			out.SetString(string(s))
		default:
			return out, fmt.Errorf("a stored %T does not fit %v", v, t)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := toInt64(v)
		if !ok || out.OverflowInt(n) {
			return out, errLossy(v, t)
		}
		out.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, ok := toUint64(v)
		if !ok || out.OverflowUint(n) {
			return out, errLossy(v, t)
		}
		out.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, ok := toFloat64(v)
		if !ok || (t.Kind() == reflect.Float32 && !math.IsNaN(f) && float64(float32(f)) != f) {
			return out, errLossy(v, t)
		}
		out.SetFloat(f)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			switch b := v.(type) {
			case []byte:
				out.SetBytes(bytes.Clone(b))
				return out, nil
			case string:
				out.SetBytes([]byte(b))
				return out, nil
			}
		}
		list, ok := v.([]any)
		if !ok {
			return out, fmt.Errorf("a stored %T does not fit %v", v, t)
		}
		out.Set(reflect.MakeSlice(t, len(list), len(list)))
		for i, e := range list {
			ev, err := convert(e, t.Elem(), depth+1)
			if err != nil {
				return out, fmt.Errorf("element %d: %w", i, err)
			}
			out.Index(i).Set(ev)
		}
	case reflect.Map:
		m, ok := v.(map[any]any)
		if !ok {
			return out, fmt.Errorf("a stored %T does not fit %v", v, t)
		}
		out.Set(reflect.MakeMapWithSize(t, len(m)))
		for k, e := range m {
			kv, err := convert(k, t.Key(), depth+1)
			if err != nil {
				return out, fmt.Errorf("map key: %w", err)
			}
			ev, err := convert(e, t.Elem(), depth+1)
			if err != nil {
				return out, fmt.Errorf("map value %v: %w", k, err)
			}
			out.SetMapIndex(kv, ev)
		}
	default:
		return out, fmt.Errorf("no conversion to %v", t)
	}
	return out, nil
}

// normalize turns maps whose keys are all strings into map[string]any,
// as msgpack's default interface decoding gives them, at every depth.
func normalize(v any) any {
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
		return x
	case map[any]any:
		sm := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				for k2, e2 := range x {
					x[k2] = normalize(e2)
				}
				return x
			}
			sm[ks] = normalize(e)
		}
		return sm
	}
	return v
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int8:
		return int64(n), true
	case int16:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		return int64(n), n <= math.MaxInt64
	case float32:
		return floatToInt64(float64(n))
	case float64:
		return floatToInt64(n)
	}
	return 0, false
}

func floatToInt64(f float64) (int64, bool) {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

func toUint64(v any) (uint64, bool) {
	switch n := v.(type) {
	case uint8:
		return uint64(n), true
	case uint16:
		return uint64(n), true
	case uint32:
		return uint64(n), true
	case uint64:
		return n, true
	case float32, float64:
		f, _ := toFloat64(n)
		if f != math.Trunc(f) || f < 0 || f >= math.MaxUint64 {
			return 0, false
		}
		return uint64(f), true
	}
	n, ok := toInt64(v)
	return uint64(n), ok && n >= 0
}

// toFloat64 returns v as a float64 when it holds it exactly.
func toFloat64(v any) (float64, bool) {
	switch n := v.(type) {
	case float32:
		return float64(n), true
	case float64:
		return n, true
	case uint64:
		f := float64(n)
		return f, f < math.MaxUint64 && uint64(f) == n
	}
	n, ok := toInt64(v)
	if !ok {
		return 0, false
	}
	f := float64(n)
	return f, f >= math.MinInt64 && f < math.MaxInt64 && int64(f) == n
}
