package objcache

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/memkit/memkit/memclient"
)

// Memoize0 returns a function that calls fn through GetOrLoad under the key
// name, caching its result for ttl (0 means Options.TTL, negative never
// expires).
func Memoize0[R any](c *Cache, name string, ttl time.Duration, fn func(context.Context) (R, error)) func(context.Context) (R, error) {
	return func(ctx context.Context) (R, error) {
		return GetOrLoad(ctx, c, name, ttl, fn)
	}
}

// Memoize1 returns a function with fn's signature whose results are cached
// for ttl (0 means Options.TTL, negative never expires) through GetOrLoad, with all its stampede
// protection. The key is name, ':' and a stable encoding of the argument
// (see ArgsKey): equal arguments, including structs, maps and slices, give
// equal keys across processes. A key that would exceed MaxKeyLen is
// hashed. An argument that cannot be encoded (a func, a channel, a NaN)
// makes the call fail with ErrUnencodableArgs without calling fn.
//
// Go has no variadic generics: use Memoize0, Memoize1, Memoize2 or
// Memoize3, or pass a struct.
//
//	byID := objcache.Memoize1(c, "products.byID", time.Minute, db.ProductByID)
//	p, err := byID(ctx, 42)
func Memoize1[A, R any](c *Cache, name string, ttl time.Duration, fn func(context.Context, A) (R, error)) func(context.Context, A) (R, error) {
	return func(ctx context.Context, a A) (R, error) {
		var buf [argBuf]byte
		arg, ok := appendArg(buf[:0], &a)
		var key string
		if !ok {
			var err error
			if key, err = ArgsKey(name, a); err != nil {
				var zero R
				return zero, err
			}
		}
		return memoCall(ctx, c, name, ttl, arg, key, &a, fn)
	}
}

// Memoize2 is Memoize1 for functions of two arguments.
func Memoize2[A, B, R any](c *Cache, name string, ttl time.Duration, fn func(context.Context, A, B) (R, error)) func(context.Context, A, B) (R, error) {
	call := func(ctx context.Context, p args2[A, B]) (R, error) { return fn(ctx, p.a, p.b) }
	return func(ctx context.Context, a A, b B) (R, error) {
		var buf [argBuf]byte
		arg, ok := appendArgs2(buf[:0], &a, &b)
		var key string
		if !ok {
			var err error
			if key, err = ArgsKey(name, a, b); err != nil {
				var zero R
				return zero, err
			}
		}
		return memoCall(ctx, c, name, ttl, arg, key, &args2[A, B]{a, b}, call)
	}
}

// Memoize3 is Memoize1 for functions of three arguments.
func Memoize3[A, B, D, R any](c *Cache, name string, ttl time.Duration, fn func(context.Context, A, B, D) (R, error)) func(context.Context, A, B, D) (R, error) {
	call := func(ctx context.Context, p args3[A, B, D]) (R, error) { return fn(ctx, p.a, p.b, p.d) }
	return func(ctx context.Context, a A, b B, d D) (R, error) {
		var buf [argBuf]byte
		arg, ok := appendArgs3(buf[:0], &a, &b, &d)
		var key string
		if !ok {
			var err error
			if key, err = ArgsKey(name, a, b, d); err != nil {
				var zero R
				return zero, err
			}
		}
		return memoCall(ctx, c, name, ttl, arg, key, &args3[A, B, D]{a, b, d}, call)
	}
}

// args2 and args3 carry the arguments of Memoize2 and Memoize3 to
// memoCall as one value.
type (
	args2[A, B any] struct {
		a A
		b B
	}
	args3[A, B, D any] struct {
		a A
		b B
		d D
	}
)

// memoCall is the body shared by the memoized functions: the call of fn
// with the arguments *p, whose encoding arg (from appendArg) or key (from
// ArgsKey) makes the key under name (see memoLookup), through the
// get-or-load of one key with ttl. p is only read: a hit leaves the
// arguments where the caller has them (on its stack); a miss copies them
// for the loader.
func memoCall[P, R any](ctx context.Context, c *Cache, name string, ttl time.Duration, arg []byte, key string, p *P, fn func(context.Context, P) (R, error)) (R, error) {
	rttl := c.ttl(ttl)
	fk, key, v, hit, err := memoLookup[R](ctx, c, name, arg, key)
	if hit {
		return v, nil
	}
	if err != nil {
		return memoBatch(c, rttl, key, p, fn).keyFailed(ctx, err)
	}
	v, fl, ok := hitOne[R](ctx, c, fk, rttl)
	if ok {
		return v, nil
	}
	return memoBatch(c, rttl, key, p, fn).goOn(ctx, fk, fl)
}

// memoBatch is the get-or-load of a memoized call that missed, whose
// loader calls fn with its own copy of *p: the caller's arguments stay
// on the stack on a hit, as only a miss comes here.
func memoBatch[P, R any](c *Cache, ttl time.Duration, key string, p *P, fn func(context.Context, P) (R, error)) *batch[R] {
	args := *p // the loader's own copy: the arguments stay on the stack on a hit
	return &batch[R]{c: c, ttl: ttl, key: key, plain: func(ctx context.Context) (R, error) { return fn(ctx, args) }}
}

// memoLookup returns the full key and the key (without prefix) of a
// memoized call of name, or, with a local tier that holds it, its value
// (hit). The key is key when ArgsKey made it, else name, ':' and arg, the
// arguments' JSON from appendArg, built with the prefix in one
// allocation (none on a local hit). On an error (the namespace's
// generation) the key is still returned, for a load without the cache.
func memoLookup[R any](ctx context.Context, c *Cache, name string, arg []byte, key string) (fk, k string, v R, hit bool, err error) {
	p, err := c.prefix(ctx)
	switch {
	case err != nil:
		if key == "" {
			key = name + ":" + string(arg)
		}
		return "", key, v, false, err
	case key != "":
		if c.sh.local != nil {
			if v, hit = localHit[R](ctx, c, p, key, "", ""); hit {
				return "", key, v, true, nil
			}
		}
		fk, err = c.fullKey(p, key)
		return fk, key, v, false, err
	}
	if c.sh.local != nil {
		if v, hit = localHit[R](ctx, c, p, name, ":", unsafe.String(unsafe.SliceData(arg), len(arg))); hit {
			return "", "", v, true, nil
		}
	}
	fk = p + name + ":" + string(arg)
	if len(fk) <= MaxKeyLen {
		return fk, fk[len(p):], v, false, nil
	}
	return fitKey(fk), name + ":" + string(arg), v, false, nil
}

// argBuf is the room on the stack for the arguments' encoding by
// appendArg; longer ones spill to the heap.
const argBuf = 64

// appendArg appends the JSON of *a, as ArgsKey writes it (and json.Marshal
// would), when a is a bool, a Go integer or a string of printable ASCII
// that needs no escaping and no '~' (so that the key needs no base64): the
// common arguments, encoded without encoding/json's allocations. ok is
// false for anything else, which ArgsKey encodes. Exact types only: a
// named type may have its own MarshalJSON.
func appendArg[A any](dst []byte, a *A) ([]byte, bool) {
	switch p := any(a).(type) {
	case *int:
		return strconv.AppendInt(dst, int64(*p), 10), true
	case *int64:
		return strconv.AppendInt(dst, *p, 10), true
	case *int32:
		return strconv.AppendInt(dst, int64(*p), 10), true
	case *int16:
		return strconv.AppendInt(dst, int64(*p), 10), true
	case *int8:
		return strconv.AppendInt(dst, int64(*p), 10), true
	case *uint:
		return strconv.AppendUint(dst, uint64(*p), 10), true
	case *uint64:
		return strconv.AppendUint(dst, *p, 10), true
	case *uint32:
		return strconv.AppendUint(dst, uint64(*p), 10), true
	case *uint16:
		return strconv.AppendUint(dst, uint64(*p), 10), true
	case *uint8:
		return strconv.AppendUint(dst, uint64(*p), 10), true
	case *bool:
		return strconv.AppendBool(dst, *p), true
	case *string:
		for i := 0; i < len(*p); i++ {
			if ch := (*p)[i]; ch <= ' ' || ch >= 0x7f || ch == '"' || ch == '\\' || ch == '~' {
				return dst, false
			}
		}
		dst = append(dst, '"')
		dst = append(dst, *p...)
		return append(dst, '"'), true
	}
	return dst, false
}

// appendArgs2 appends the JSON array of *a and *b when appendArg encodes
// both.
func appendArgs2[A, B any](dst []byte, a *A, b *B) ([]byte, bool) {
	dst, ok := appendArg(append(dst, '['), a)
	if !ok {
		return dst, false
	}
	dst, ok = appendArg(append(dst, ','), b)
	return append(dst, ']'), ok
}

// appendArgs3 appends the JSON array of *a, *b and *d when appendArg
// encodes all three.
func appendArgs3[A, B, D any](dst []byte, a *A, b *B, d *D) ([]byte, bool) {
	dst, ok := appendArgs2(dst, a, b)
	if !ok {
		return dst, false
	}
	dst, ok = appendArg(append(dst[:len(dst)-1], ','), d)
	return append(dst, ']'), ok
}

// ArgsKey returns the cache key Memoize uses for a call of the function
// name with args: name, ':' and the arguments' JSON encoding (one
// argument alone, several as an array). JSON is stable: struct fields come
// in declaration order and map keys sorted. When the encoding holds a byte
// that cannot appear in a memcached key (a space, a control character), it
// is replaced by '~' and the base64url of the JSON, so keys stay valid and
// distinct. Only exported struct fields take part, as in encoding/json.
func ArgsKey(name string, args ...any) (string, error) {
	var v any = args
	if len(args) == 1 {
		v = args[0]
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrUnencodableArgs, name, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if !keySafe(b) {
		return name + ":~" + base64.RawURLEncoding.EncodeToString(b), nil
	}
	return name + ":" + string(b), nil
}

// keySafe reports whether b can appear in a memcached key as is. '~' is
// refused too: it marks the base64 form (JSON never starts with it, but a
// string could hold one).
func keySafe(b []byte) bool {
	for _, ch := range b {
		if ch <= ' ' || ch == 0x7f || ch == '~' {
			return false
		}
	}
	return true
}

// MemoizeMulti returns a function with fn's signature whose results are
// cached per key for ttl (0 means Options.TTL, negative never expires)
// through GetOrLoadMulti: fn is called once with the keys that are
// missing (never with none), and a key fn does not return is "not
// found" (absent from the result; cached as such with
// Options.NegativeTTL). Each key is cached under ArgsKey(name, key), the
// key Memoize1 uses for a call with that argument, so that
//
//	byID := objcache.Memoize1(c, "product", ttl, db.ProductByID)
//	byIDs := objcache.MemoizeMulti(c, "product", ttl, db.ProductsByIDs)
//
// share their values. Duplicated keys are loaded once. The error is nil
// or a memclient.MultiError naming the keys that failed, each written
// with fmt.Sprint: an argument that cannot be encoded (ErrUnencodableArgs,
// fn not called for it), a failed call of fn (wrapped), the end of ctx.
func MemoizeMulti[K comparable, V any](c *Cache, name string, ttl time.Duration,
	fn func(context.Context, []K) (map[K]V, error)) func(context.Context, []K) (map[K]V, error) {
	return func(ctx context.Context, args []K) (map[K]V, error) {
		keys := make([]string, 0, len(args))
		byKey := make(map[string]K, len(args))
		errs := make(memclient.MultiError)
		for _, a := range args {
			k, err := ArgsKey(name, a)
			if err != nil {
				errs[fmt.Sprint(a)] = err
				continue
			}
			if _, dup := byKey[k]; !dup {
				byKey[k] = a
				keys = append(keys, k)
			}
		}
		got, err := GetOrLoadMulti(ctx, c, keys, ttl, func(ctx context.Context, missing []string) (map[string]V, error) {
			as := make([]K, len(missing))
			for i, k := range missing {
				as[i] = byKey[k]
			}
			m, err := fn(ctx, as)
			if err != nil {
				return nil, err
			}
			res := make(map[string]V, len(m))
			for a, v := range m {
				if k, err := ArgsKey(name, a); err == nil {
					res[k] = v
				}
			}
			return res, nil
		})
		out := make(map[K]V, len(got))
		for k, v := range got {
			out[byKey[k]] = v
		}
		var me memclient.MultiError
		switch {
		case errors.As(err, &me):
			for k, e := range me {
				errs[fmt.Sprint(byKey[k])] = e
			}
		case err != nil:
			return out, err
		}
		if len(errs) > 0 {
			return out, errs
		}
		return out, nil
	}
}
