package objcache

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/memkit/memkit/memclient"
)

// Tags. Every tag has a version number, stored under
// "<Options.Prefix>@tag:<tag>" (a tag that cannot appear in a key as is
// is written "~" and its base64url). A value stored through a view made
// by WithTags records, in its header, each of the view's tags with the
// version it had when the value's load began. InvalidateTags increments
// the versions: from then on, every value recording an older one is
// invalid, in every process at once, and reads as a miss. No value is
// touched, scanned or indexed: the check happens when a value is read,
// against versions fetched in the same round trip as the value (the
// view's tags; a value carrying other tags costs one more).
//
// A version starts at the current Unix time in nanoseconds, not at 1, so
// a tag key lost to eviction comes back with a version no value records:
// the values that carried it become invalid, never valid again. A value
// whose tag has no version at all is invalid too.

// WithTags returns a view of c whose stored values carry tags, besides
// the tags c already has: Set, Add, SetMulti, Update and every loader
// (GetOrLoad, GetOrLoadMulti, Memoize...) record them, and
// InvalidateTags on any of them drops those values. Reads through the
// view fetch the versions of its tags in the same round trip as the
// values. Tags are case-sensitive and may be any string. The view shares
// c's counters, namespaces and background loads.
func (c *Cache) WithTags(tags ...string) *Cache {
	nc := *c
	all := make([]string, 0, len(c.tags)+len(tags))
	all = append(all, c.tags...)
	all = append(all, tags...)
	slices.Sort(all)
	nc.tags = slices.Compact(all)
	nc.viewTagKeys = nc.tagKeys(nc.tags)
	return &nc
}

// InvalidateTags invalidates every value carrying any of tags, wherever
// it is cached (any key, any namespace under the same Options.Prefix), in
// O(1) per tag: one increment of the tag's version, no scan. Reads by
// every process see it at once. When some tags fail it returns an error
// naming them (the others are invalidated).
func (c *Cache) InvalidateTags(ctx context.Context, tags ...string) error {
	var (
		mu   sync.Mutex // protects errs
		errs []error
	)
	parallel(len(tags), func(i int) {
		if err := c.bumpTag(ctx, tags[i]); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("objcache: tag %q: %w", tags[i], err))
			mu.Unlock()
		}
	})
	return errors.Join(errs...)
}

func (c *Cache) bumpTag(ctx context.Context, tag string) error {
	k := c.tagKey(tag)
	for range 3 {
		_, err := c.client.Increment(ctx, k, 1)
		if !errors.Is(err, memclient.ErrCacheMiss) {
			return err
		}
		// No version yet (or evicted): any fresh one is new.
		err = c.client.Add(ctx, &memclient.Item{Key: k, Value: c.newVersion()})
		if !errors.Is(err, memclient.ErrNotStored) {
			return err
		}
	}
	return fmt.Errorf("version key %q keeps vanishing", k)
}

func (c *Cache) newVersion() []byte {
	return strconv.AppendUint(nil, uint64(c.sh.now().UnixNano()), 10)
}

// tagKey is the key of tag's version.
func (c *Cache) tagKey(tag string) string {
	if tag == "" || !keySafe([]byte(tag)) {
		return fitKey(c.opts.Prefix + "@tag:~" + base64.RawURLEncoding.EncodeToString([]byte(tag)))
	}
	return fitKey(c.opts.Prefix + "@tag:" + tag)
}

func (c *Cache) tagKeys(tags []string) []string {
	keys := make([]string, len(tags))
	for i, t := range tags {
		keys[i] = c.tagKey(t)
	}
	return keys
}

func parseVersion(b []byte) (uint64, bool) {
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v, err == nil
}

// versions are tag versions as read, by tag. A tag whose version key is
// missing (or unreadable) is absent.
type versions map[string]uint64

// note records the version items hold for each of tags.
func (vs versions) note(tags, keys []string, items map[string]*memclient.Item) {
	for i, t := range tags {
		if it := items[keys[i]]; it != nil {
			if v, ok := parseVersion(it.Value); ok {
				vs[t] = v
				continue
			}
		}
		delete(vs, t)
	}
}

// valid reports whether every tag s carries has the version s recorded.
func (vs versions) valid(s *stored) bool {
	for _, t := range s.tags {
		if v, ok := vs[t.tag]; !ok || v != t.version {
			return false
		}
	}
	return true
}

// readVersions reads the versions of tags into vs in one round trip. A
// tag it cannot read is absent: values carrying it read as misses.
func (c *Cache) readVersions(ctx context.Context, vs versions, tags []string) error {
	if len(tags) == 0 {
		return nil
	}
	keys := c.tagKeys(tags)
	items, err := c.client.GetMulti(ctx, keys)
	vs.note(tags, keys, items)
	return err
}

// resolveTags reads the versions of the tags that values in ss carry but
// vs does not hold yet: one round trip, none when there are none.
func (c *Cache) resolveTags(ctx context.Context, vs versions, ss []*stored) error {
	var need []string
	var asked map[string]bool
	for _, s := range ss {
		if s == nil || len(s.tags) == 0 {
			continue
		}
		for _, t := range s.tags {
			if _, ok := vs[t.tag]; ok {
				continue
			}
			if asked == nil {
				asked = make(map[string]bool)
			}
			if !asked[t.tag] {
				asked[t.tag] = true
				need = append(need, t.tag)
			}
		}
	}
	return c.readVersions(ctx, vs, need)
}

// stamp returns the tags of c with their versions in vs, creating the
// version keys of tags that have none (one more round trip, the first
// time a tag is used). It must run before the value it stamps is loaded:
// an invalidation during the load then leaves the value with an old
// version, invalid, as it should be.
func (c *Cache) stamp(ctx context.Context, vs versions) ([]tagVersion, error) {
	if len(c.tags) == 0 {
		return nil, nil
	}
	if vs == nil {
		vs = make(versions, len(c.tags))
	}
	var missing []string
	for _, t := range c.tags {
		if _, ok := vs[t]; !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		var (
			mu   sync.Mutex // protects errs and vs
			errs []error
		)
		parallel(len(missing), func(i int) {
			v, err := c.createTag(ctx, missing[i])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("objcache: tag %q: %w", missing[i], err))
				return
			}
			vs[missing[i]] = v
		})
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	out := make([]tagVersion, len(c.tags))
	for i, t := range c.tags {
		out[i] = tagVersion{tag: t, version: vs[t]}
	}
	return out, nil
}

// createTag gives tag a version if it has none and returns its version.
func (c *Cache) createTag(ctx context.Context, tag string) (uint64, error) {
	k := c.tagKey(tag)
	for range 3 {
		v := c.newVersion()
		err := c.client.Add(ctx, &memclient.Item{Key: k, Value: v})
		if err == nil {
			n, _ := parseVersion(v)
			return n, nil
		}
		if !errors.Is(err, memclient.ErrNotStored) {
			return 0, err
		}
		it, err := c.client.Get(ctx, k) // another process made it first
		if err == nil {
			if n, ok := parseVersion(it.Value); ok {
				return n, nil
			}
			return 0, fmt.Errorf("version key %q holds %q", k, it.Value)
		}
		if !errors.Is(err, memclient.ErrCacheMiss) {
			return 0, err
		}
	}
	return 0, fmt.Errorf("version key %q keeps vanishing", k)
}

// parallel runs f(0) ... f(n-1), up to maxParallel at a time, and returns
// when all have: concurrent requests to memcached share pipelined
// round trips. It starts no goroutine for n <= 1.
func parallel(n int, f func(i int)) {
	switch n {
	case 0:
		return
	case 1:
		f(0)
		return
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // protects next
		next int
	)
	for range min(n, maxParallel) {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

// maxParallel bounds the goroutines of one parallel call.
const maxParallel = 16
