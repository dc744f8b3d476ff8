package objcache

import (
	"context"
	"errors"
	"time"

	"github.com/memkit/memkit/memclient"
)

// GetOrLoadMulti returns the values cached under keys, decoded into Ts,
// loading the missing ones with one call of load, which returns them by
// key; they are cached for ttl (0 means Options.TTL). It is GetOrLoad for
// many keys at once, with everything GetOrLoad does per key:
//
//   - One pipelined round trip reads every key (the servers in parallel),
//     and on the meta protocol takes a lease on each missing one (lock
//     keys on the text protocol). Through a view with tags, the tags'
//     versions come in the same round trip.
//   - load is called once with exactly the keys this caller won, never
//     with an empty slice (or not at all). Keys that another goroutine or
//     process is loading are waited for (bounded by Options.LeaseWait) or
//     served stale; those still missing when the wait ends are loaded in
//     one more call. Duplicated keys are looked up and loaded once.
//   - Keys load does not return are "not found": absent from the result,
//     cached as such when Options.NegativeTTL is set. A load returning an
//     error matching ErrNotFound makes all its keys "not found".
//   - Any other load error fails only the keys of that call: they are in
//     the returned memclient.MultiError, keyed by the caller's keys, with
//     the load error wrapped (errors.Is finds it). The other keys are in
//     the result.
//   - When memcached fails for some keys (a server down), they are loaded
//     as if missing (and not stored; counted in Stats.Errors), as
//     GetOrLoad does: a page still shows. If that load fails too, their
//     error joins the load error and memcached's (errors.Is finds
//     memclient.ErrServerUnavailable, or the network error).
//
// The result holds every key found or loaded; the error is nil or a
// memclient.MultiError naming the keys that failed (a malformed key, a
// load error, the end of ctx). Counts go to Stats per key, and each load
// call to Stats.BatchLoads and Stats.BatchKeys.
func GetOrLoadMulti[T any](ctx context.Context, c *Cache, keys []string, ttl time.Duration,
	load func(ctx context.Context, missing []string) (map[string]T, error)) (map[string]T, error) {
	uniq := make([]string, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, k)
		}
	}
	out := make(map[string]T, len(uniq))
	if len(uniq) == 0 {
		return out, nil
	}
	b := &batch[T]{c: c, ttl: c.ttl(ttl), multi: func(ctx context.Context, keys []string) (map[string]loaded[T], error) {
		m, err := load(ctx, keys)
		if err != nil {
			return nil, err
		}
		res := make(map[string]loaded[T], len(m))
		for k, v := range m {
			res[k] = loaded[T]{v: v}
		}
		return res, nil
	}}
	errs := make(memclient.MultiError)
	var ks []string
	var res []keyResult[T]
	p, err := c.prefix(ctx)
	switch {
	case err != nil && ctxEnded(ctx, err):
		return out, err
	case err != nil:
		c.count(ctx, EventError, 1) // namespace generation unreadable: no cache
		ks, res = uniq, b.direct(ctx, uniq)
	default:
		fks := make([]string, 0, len(uniq))
		ks = make([]string, 0, len(uniq))
		for _, k := range uniq {
			fk, err := c.fullKey(p, k)
			if err != nil {
				errs[k] = err
				continue
			}
			fks = append(fks, fk)
			ks = append(ks, k)
		}
		if len(ks) > 0 {
			res = b.run(ctx, ks, fks, 0)
		}
	}
	for i, r := range res {
		switch {
		case r.err == nil:
			out[ks[i]] = r.v
		case !errors.Is(r.err, ErrNotFound):
			errs[ks[i]] = r.err
		}
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}
