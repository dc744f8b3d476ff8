package objcache

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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
		key, err := ArgsKey(name, a)
		if err != nil {
			var zero R
			return zero, err
		}
		return GetOrLoad(ctx, c, key, ttl, func(ctx context.Context) (R, error) { return fn(ctx, a) })
	}
}

// Memoize2 is Memoize1 for functions of two arguments.
func Memoize2[A, B, R any](c *Cache, name string, ttl time.Duration, fn func(context.Context, A, B) (R, error)) func(context.Context, A, B) (R, error) {
	return func(ctx context.Context, a A, b B) (R, error) {
		key, err := ArgsKey(name, a, b)
		if err != nil {
			var zero R
			return zero, err
		}
		return GetOrLoad(ctx, c, key, ttl, func(ctx context.Context) (R, error) { return fn(ctx, a, b) })
	}
}

// Memoize3 is Memoize1 for functions of three arguments.
func Memoize3[A, B, D, R any](c *Cache, name string, ttl time.Duration, fn func(context.Context, A, B, D) (R, error)) func(context.Context, A, B, D) (R, error) {
	return func(ctx context.Context, a A, b B, d D) (R, error) {
		key, err := ArgsKey(name, a, b, d)
		if err != nil {
			var zero R
			return zero, err
		}
		return GetOrLoad(ctx, c, key, ttl, func(ctx context.Context) (R, error) { return fn(ctx, a, b, d) })
	}
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
