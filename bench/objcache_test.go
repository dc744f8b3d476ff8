package main

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestObjcacheSmoke runs the objcache hit-path rows for a handful of
// operations against real memcached: every call a hit (a loader run is an
// error), each row measured, and the targets' lines printed.
func TestObjcacheSmoke(t *testing.T) {
	needMemcached(t)
	base := runtime.NumGoroutine()
	cfg := config{rounds: 2, duration: 1e9, warmup: 1e7, maxOps: 64, clients: 2, limitDepth: 4, keys: multiKeys}
	require.NoError(t, cfg.compile(`^objcache/`, ""))
	rep, err := run(context.Background(), cfg, io.Discard)
	require.NoError(t, err)
	var names []string
	for _, cr := range rep.cases {
		names = append(names, cr.name)
		assert.Equal(t, []string{"memkit", "getorload", "memoize1", "local"}, cr.impls, cr.name)
		for i, r := range cr.results {
			assert.Positive(t, r.ops, "%s %s", cr.name, cr.impls[i])
			assert.Zero(t, r.errs, "%s %s: %v", cr.name, cr.impls[i], r.firstErr)
		}
		iv, ok := cr.paired("memkit", "getorload")
		assert.True(t, ok)
		assert.Positive(t, iv.med)
	}
	assert.Equal(t, []string{"objcache/1g/100B/3srv", "objcache/64g/100B/3srv"}, names)

	var out bytes.Buffer
	printReport(&out, rep)
	for _, s := range []string{
		"GetOrLoad hit within 1.15x of Get", "Memoize1 hit <= 4 allocations", "local-tier hit: no allocation",
		"objcache/64g/100B/3srv", "getorload", "memoize1",
	} {
		assert.Contains(t, out.String(), s)
	}
	if runtime.GOOS == "linux" {
		assert.Contains(t, out.String(), "GetOrLoad hit CPU within 1.15x of Get's")
	}
	waitGoroutines(t, base)
}
