package objcache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/memkit/memkit/memclient"
)

// A namespace's keys are "<parent prefix><name>@<generation>:<key>", its
// generation number lives under "<parent prefix><name>@gen". Invalidating
// the namespace increments the generation: every old key becomes
// unreachable at once (memcached evicts them as they age) and nested
// namespaces follow, since their generation keys embed the parent's.
//
// A generation starts at the current Unix time in nanoseconds, not at 1,
// so a generation key lost to eviction restarts far above any number used
// before and old values cannot come back.
type namespace struct {
	parent *Cache
	name   string

	mu     sync.Mutex // protects genKey, gen and at
	genKey string     // the generation key gen was read from
	gen    uint64
	at     time.Time // when gen was read
}

// prefix returns the key prefix of c, resolving namespace generations.
func (c *Cache) prefix(ctx context.Context) (string, error) {
	if c.ns == nil {
		return c.opts.Prefix, nil
	}
	pp, err := c.ns.parent.prefix(ctx)
	if err != nil {
		return "", err
	}
	gk := fitKey(pp + c.ns.name + "@gen")
	gen, err := c.generation(ctx, gk)
	if err != nil {
		return "", err
	}
	return pp + c.ns.name + "@" + strconv.FormatUint(gen, 36) + ":", nil
}

func (c *Cache) generation(ctx context.Context, gk string) (uint64, error) {
	ns := c.ns
	if ttl := c.opts.NamespaceTTL; ttl > 0 {
		ns.mu.Lock()
		if ns.genKey == gk && c.sh.now().Sub(ns.at) < ttl {
			gen := ns.gen
			ns.mu.Unlock()
			return gen, nil
		}
		ns.mu.Unlock()
	}
	for range 3 {
		it, err := c.client.Get(ctx, gk)
		if err == nil {
			gen, perr := strconv.ParseUint(string(it.Value), 10, 64)
			if perr != nil {
				return 0, fmt.Errorf("objcache: namespace %q: generation key %q holds %q", ns.name, gk, it.Value)
			}
			c.remember(gk, gen)
			return gen, nil
		}
		if !errors.Is(err, memclient.ErrCacheMiss) {
			return 0, fmt.Errorf("objcache: namespace %q: %w", ns.name, err)
		}
		gen := uint64(c.sh.now().UnixNano())
		err = c.client.Add(ctx, &memclient.Item{Key: gk, Value: []byte(strconv.FormatUint(gen, 10))})
		if err == nil {
			c.remember(gk, gen)
			return gen, nil
		}
		if !errors.Is(err, memclient.ErrNotStored) {
			return 0, fmt.Errorf("objcache: namespace %q: %w", ns.name, err)
		}
		// Another process created it first: read theirs.
	}
	return 0, fmt.Errorf("objcache: namespace %q: generation key %q keeps vanishing", ns.name, gk)
}

func (c *Cache) remember(gk string, gen uint64) {
	if c.opts.NamespaceTTL <= 0 {
		return
	}
	c.ns.mu.Lock()
	c.ns.genKey, c.ns.gen, c.ns.at = gk, gen, c.sh.now()
	c.ns.mu.Unlock()
}

// InvalidateNamespace drops every value in the namespace c, and in the
// namespaces nested in it, with one Increment of its generation number:
// O(1), no scan. It returns ErrNoNamespace on a Cache that is not a
// namespace. Processes that cache the generation (Options.NamespaceTTL)
// see the change within that TTL; this one sees it at once.
func (c *Cache) InvalidateNamespace(ctx context.Context) error {
	if c.ns == nil {
		return ErrNoNamespace
	}
	pp, err := c.ns.parent.prefix(ctx)
	if err != nil {
		return err
	}
	gk := fitKey(pp + c.ns.name + "@gen")
	for range 3 {
		gen, err := c.client.Increment(ctx, gk, 1)
		if err == nil {
			c.remember(gk, gen)
			return nil
		}
		if !errors.Is(err, memclient.ErrCacheMiss) {
			return fmt.Errorf("objcache: namespace %q: %w", c.ns.name, err)
		}
		// No generation yet (or evicted): any fresh one is new.
		gen = uint64(c.sh.now().UnixNano())
		err = c.client.Add(ctx, &memclient.Item{Key: gk, Value: []byte(strconv.FormatUint(gen, 10))})
		if err == nil {
			c.remember(gk, gen)
			return nil
		}
		if !errors.Is(err, memclient.ErrNotStored) {
			return fmt.Errorf("objcache: namespace %q: %w", c.ns.name, err)
		}
	}
	return fmt.Errorf("objcache: namespace %q: generation key %q keeps vanishing", c.ns.name, gk)
}
