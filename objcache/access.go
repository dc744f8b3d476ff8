package objcache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/memkit/memkit/memclient"
)

// Typed access: Get, Set, Add, Delete, Invalidate and the multi-key
// forms. Reads and writes go through the stored format (format.go) and
// tags (tags.go).

// expired reports whether s is past its expiry and not kept in service
// after a failed reload.
func expired(s *stored, now time.Time) bool {
	if s.expires == 0 {
		return false
	}
	ms := now.UnixMilli()
	return ms >= s.expires && !(s.retryAt != 0 && ms < s.retryAt)
}

// readValue turns an item read by Get, GetMulti or Update into a value:
// ok is false for a miss (none, a lease placeholder, a cached "not
// found", an expired value, one invalidated by a tag, or one that does
// not decode into a T). vs holds the tag versions read with the item;
// others the value carries are read here (one more round trip).
func readValue[T any](ctx context.Context, c *Cache, it *memclient.Item, vs versions) (T, bool) {
	v, _, ok := readStored[T](ctx, c, it, vs, c.sh.now())
	return v, ok
}

// readStored is readValue that also returns what the item holds, read at
// now.
func readStored[T any](ctx context.Context, c *Cache, it *memclient.Item, vs versions, now time.Time) (T, stored, bool) {
	var zero T
	if it == nil {
		return zero, stored{}, false
	}
	s, k := parseStored(it.Value, it.Flags)
	switch {
	case k == itemCorrupt:
		c.count(ctx, EventDecodeError, 1)
		return zero, s, false
	case k == itemPlaceholder, s.kind == kindNotFound, expired(&s, now):
		return zero, s, false
	}
	if len(s.tags) > 0 {
		if vs == nil {
			vs = make(versions)
		}
		if c.resolveTags(ctx, vs, []*stored{&s}) != nil || !vs.valid(&s) {
			return zero, s, false
		}
	}
	v, ok := decodeStored[T](ctx, c, &s, ownBytes) // a read's item is its own
	return v, s, ok
}

// readOne reads full key k and the versions of c's tags in one round
// trip: a plain Get when c has no tags. The item is nil on a miss.
func (c *Cache) readOne(ctx context.Context, k string) (*memclient.Item, versions, error) {
	if len(c.tags) == 0 {
		it, err := c.client.Get(ctx, k)
		if errors.Is(err, memclient.ErrCacheMiss) {
			return nil, nil, nil
		}
		return it, nil, err
	}
	items, vs, err := c.readWithTags(ctx, []string{k})
	var me memclient.MultiError
	if errors.As(err, &me) && me[k] != nil {
		err = me[k]
	}
	return items[k], vs, err
}

// readWithTags reads the full keys ks and the versions of c's tags in one
// round trip. Errors name keys of ks only: a tag key that failed is
// absent from the versions, so values carrying it read as misses.
func (c *Cache) readWithTags(ctx context.Context, ks []string) (map[string]*memclient.Item, versions, error) {
	var vs versions
	all := ks
	var tk []string
	if len(c.tags) > 0 {
		tk = c.viewTagKeys
		all = append(append(make([]string, 0, len(ks)+len(tk)), ks...), tk...)
		vs = make(versions, len(c.tags))
	}
	items, err := c.client.GetMulti(ctx, all)
	if vs != nil {
		vs.note(c.tags, tk, items)
	}
	var me memclient.MultiError
	if errors.As(err, &me) {
		out := make(memclient.MultiError)
		for _, k := range ks {
			if e, ok := me[k]; ok {
				out[k] = e
			}
		}
		err = nil
		if len(out) > 0 {
			err = out
		}
	}
	return items, vs, err
}

// Get returns the value stored under key, decoded into a T. It returns
// ErrCacheMiss when there is none, when it does not decode into a T, when
// it expired (see Options.FailSafe), when a tag it carries was
// invalidated (InvalidateTags), and for a key a loader is loading (its
// lease placeholder). Through a view with tags, the tags' versions are
// read in the same round trip; a value carrying tags the view does not
// know costs one more.
func Get[T any](ctx context.Context, c *Cache, key string) (T, error) {
	var zero T
	k, v, hit, err := lookupKey[T](ctx, c, key)
	switch {
	case hit:
		return v, nil
	case err != nil:
		return zero, err
	}
	var lr localRead // with a local tier: k's stripe and its writes, before the read
	if l := c.sh.local; l != nil {
		lr = l.begin(k)
	}
	it, vs, err := c.readOne(ctx, k)
	if err != nil {
		return zero, err
	}
	now := c.sh.now()
	v, s, ok := readStored[T](ctx, c, it, vs, now)
	if !ok {
		c.count(ctx, EventMiss, 1)
		return zero, ErrCacheMiss
	}
	c.count(ctx, EventHit, 1)
	if lr.slot != 0 && len(s.tags) == 0 && s.retryAt == 0 {
		if ttl, ok := localTTL(&s, 0, now); ok {
			c.sh.local.offer(k, lr, s.payload, s.flags, ttl)
		}
	}
	return v, nil
}

// writeHeader returns the header of a value written now through c with
// the resolved ttl (0 never expires), and the memcached TTL to store it
// with: longer than ttl by FailSafe, so that it outlives its expiry as a
// fallback. tags are the stamped tags of c.
func (c *Cache) writeHeader(now time.Time, ttl time.Duration, tags []tagVersion) (header, time.Duration) {
	h := header{tags: tags}
	phys := ttl
	if ttl > 0 {
		h.expires = now.Add(ttl).UnixMilli()
		if c.opts.FailSafe > 0 {
			phys += c.opts.FailSafe
		}
	}
	return h, phys
}

// encodeValue encodes v with header h: a plain serializer value when plain
// allows it and h has nothing the reader needs (no tags, no FailSafe
// expiry) and the value is not empty, an envelope otherwise.
func (c *Cache) encodeValue(v any, h *header, plain bool) ([]byte, uint32, error) {
	payload, flags, err := c.ser.Marshal(v)
	if err != nil {
		return nil, 0, err
	}
	if plain && len(payload) > 0 && len(h.tags) == 0 && (h.expires == 0 || c.opts.FailSafe == 0) {
		return payload, flags, nil
	}
	h.flags = flags
	return envelope(h, payload), envFlags, nil
}

// writeStamp returns the tags to record in values written through c now,
// reading (and if need be creating) their versions: one round trip, none
// without tags.
func (c *Cache) writeStamp(ctx context.Context) ([]tagVersion, error) {
	if len(c.tags) == 0 {
		return nil, nil
	}
	vs := make(versions, len(c.tags))
	if err := c.readVersions(ctx, vs, c.tags); err != nil {
		var me memclient.MultiError
		if !errors.As(err, &me) {
			return nil, err
		}
	}
	return c.stamp(ctx, vs)
}

func (c *Cache) item(ctx context.Context, key string, v any, ttl time.Duration) (*memclient.Item, error) {
	k, err := c.Key(ctx, key)
	if err != nil {
		return nil, err
	}
	tags, err := c.writeStamp(ctx)
	if err != nil {
		return nil, err
	}
	h, phys := c.writeHeader(c.sh.now(), c.ttl(ttl), tags)
	data, flags, err := c.encodeValue(v, &h, true)
	if err != nil {
		return nil, fmt.Errorf("objcache: encoding %q: %w", key, err)
	}
	return &memclient.Item{Key: k, Value: data, Flags: flags, TTL: phys}, nil
}

// Set stores v under key for ttl (0 means Options.TTL, negative never
// expires). Through a view with tags, v carries them; their versions are
// read first, so v is invalidated by an InvalidateTags that comes after
// that read, not by one that came before.
func (c *Cache) Set(ctx context.Context, key string, v any, ttl time.Duration) error {
	it, err := c.item(ctx, key, v, ttl)
	if err != nil {
		return err
	}
	err = c.client.Set(ctx, it)
	c.localDrop(it.Key)
	return err
}

// Add stores v under key only if key holds nothing; otherwise it returns
// ErrNotStored.
func (c *Cache) Add(ctx context.Context, key string, v any, ttl time.Duration) error {
	it, err := c.item(ctx, key, v, ttl)
	if err != nil {
		return err
	}
	err = c.client.Add(ctx, it)
	c.localDrop(it.Key)
	if errors.Is(err, memclient.ErrNotStored) {
		return ErrNotStored
	}
	return err
}

// Delete removes key's value. Deleting a missing key is not an error.
func (c *Cache) Delete(ctx context.Context, key string) error {
	k, err := c.Key(ctx, key)
	if err != nil {
		return err
	}
	err = c.client.Delete(ctx, k)
	c.localDrop(k)
	if errors.Is(err, memclient.ErrCacheMiss) {
		return nil
	}
	return err
}

// Invalidate marks key's value stale without deleting it: GetOrLoad
// callers keep being served the old value (counted in Stats.StaleServed)
// for up to Options.StaleTTL while exactly one of them reloads it. On the
// text protocol, which has no stale items, it deletes the value. A missing
// key is not an error.
func (c *Cache) Invalidate(ctx context.Context, key string) error {
	k, err := c.Key(ctx, key)
	if err != nil {
		return err
	}
	err = c.co.invalidate(ctx, k)
	c.localDrop(k)
	return err
}

// GetMulti returns the values stored under keyPrefix+key for each of keys
// that has one decoding into a T, by key without keyPrefix
// (python-memcached's get_multi with key_prefix). Missing, undecodable,
// expired and tag-invalidated keys are absent from the map. One round
// trip reads the values and the versions of c's tags; values carrying
// other tags cost one more, for all of them. When some servers fail it
// returns what the others had and a memclient.MultiError naming the
// failed keys (without keyPrefix).
func GetMulti[T any](ctx context.Context, c *Cache, keyPrefix string, keys []string) (map[string]T, error) {
	p, err := c.prefix(ctx)
	if err != nil {
		return nil, err
	}
	full := make([]string, 0, len(keys))
	orig := make(map[string]string, len(keys))
	for _, k := range keys {
		fk, err := c.fullKey(p, keyPrefix+k)
		if err != nil {
			return nil, fmt.Errorf("objcache: key %q: %w", k, err)
		}
		if _, dup := orig[fk]; dup {
			continue
		}
		orig[fk] = k
		full = append(full, fk)
	}
	items, vs, err := c.readWithTags(ctx, full)
	// Read the versions of the tags the values carry, all at once.
	ss := make(map[string]*stored, len(items))
	var tagged []*stored
	for _, fk := range full {
		it := items[fk]
		if it == nil {
			continue
		}
		s, k := parseStored(it.Value, it.Flags)
		switch {
		case k == itemCorrupt:
			c.count(ctx, EventDecodeError, 1)
			continue
		case k == itemPlaceholder, s.kind == kindNotFound, expired(&s, c.sh.now()):
			continue
		}
		ss[fk] = &s
		if len(s.tags) > 0 {
			tagged = append(tagged, &s)
		}
	}
	if len(tagged) > 0 {
		if vs == nil {
			vs = make(versions)
		}
		_ = c.resolveTags(ctx, vs, tagged) // a tag it cannot read is absent: a miss
	}
	out := make(map[string]T, len(ss))
	for fk, s := range ss {
		if len(s.tags) > 0 && !vs.valid(s) {
			continue
		}
		if v, ok := decodeStored[T](ctx, c, s, ownBytes); ok {
			out[orig[fk]] = v
		}
	}
	c.count(ctx, EventHit, uint64(len(out)))
	c.count(ctx, EventMiss, uint64(len(orig)-len(out)))
	return out, unprefixErr(err, orig)
}

// SetMulti stores each value under keyPrefix+key for ttl
// (python-memcached's set_multi with key_prefix). When some keys fail it
// returns a memclient.MultiError naming them without keyPrefix; the others
// are stored.
func SetMulti[T any](ctx context.Context, c *Cache, keyPrefix string, values map[string]T, ttl time.Duration) error {
	p, err := c.prefix(ctx)
	if err != nil {
		return err
	}
	tags, err := c.writeStamp(ctx)
	if err != nil {
		return err
	}
	items := make([]*memclient.Item, 0, len(values))
	orig := make(map[string]string, len(values))
	now := c.sh.now()
	ttl = c.ttl(ttl)
	for k, v := range values {
		fk, err := c.fullKey(p, keyPrefix+k)
		if err != nil {
			return fmt.Errorf("objcache: key %q: %w", k, err)
		}
		h, phys := c.writeHeader(now, ttl, tags)
		data, flags, err := c.encodeValue(v, &h, true)
		if err != nil {
			return fmt.Errorf("objcache: encoding %q: %w", k, err)
		}
		orig[fk] = k
		items = append(items, &memclient.Item{Key: fk, Value: data, Flags: flags, TTL: phys})
	}
	err = c.client.SetMulti(ctx, items)
	for _, it := range items {
		c.localDrop(it.Key)
	}
	return unprefixErr(err, orig)
}

// DeleteMulti deletes keyPrefix+key for each of keys; missing keys are not
// errors.
func (c *Cache) DeleteMulti(ctx context.Context, keyPrefix string, keys []string) error {
	p, err := c.prefix(ctx)
	if err != nil {
		return err
	}
	full := make([]string, 0, len(keys))
	orig := make(map[string]string, len(keys))
	for _, k := range keys {
		fk, err := c.fullKey(p, keyPrefix+k)
		if err != nil {
			return fmt.Errorf("objcache: key %q: %w", k, err)
		}
		orig[fk] = k
		full = append(full, fk)
	}
	err = c.client.DeleteMulti(ctx, full)
	for _, k := range full {
		c.localDrop(k)
	}
	return unprefixErr(err, orig)
}

// unprefixErr renames the keys of a memclient.MultiError back to the
// caller's keys.
func unprefixErr(err error, orig map[string]string) error {
	var me memclient.MultiError
	if err == nil || !errors.As(err, &me) {
		return err
	}
	out := make(memclient.MultiError, len(me))
	for fk, e := range me {
		if k, ok := orig[fk]; ok {
			out[k] = e
		} else {
			out[fk] = e
		}
	}
	return out
}
