//go:build !race

package memclient_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

// (The race detector allocates on its own: this file is built without it.)

// TestNoObserverNoCost: without an Observer a Get allocates what it did
// before observers existed.
func TestNoObserverNoCost(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	c := newClient(t, srv, modes[0], nil)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: []byte("v")}))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Get(ctx, "k"); err != nil {
			t.Fatal(err)
		}
	})
	assert.LessOrEqual(t, allocs, 2.0, "allocations per Get")
}

// TestGetIntoNoAlloc: GetInto into an Item with room allocates nothing;
// Get allocates once for a small value (the Item and its value together).
func TestGetIntoNoAlloc(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	for _, m := range plainModes {
		c := newClient(t, srv, m, nil)
		ctx := context.Background()
		require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: make([]byte, 100)}))
		it := &memclient.Item{Value: make([]byte, 0, 4096)}
		allocs := testing.AllocsPerRun(200, func() {
			if err := c.GetInto(ctx, "k", it); err != nil {
				t.Fatal(err)
			}
		})
		assert.Zero(t, allocs, "%s: allocations per GetInto", m.name)
		allocs = testing.AllocsPerRun(200, func() {
			if _, err := c.Get(ctx, "k"); err != nil {
				t.Fatal(err)
			}
		})
		assert.LessOrEqual(t, allocs, 1.0, "%s: allocations per Get of 100 bytes", m.name)
	}
}

// TestGetOneAllocAnySize: a Get allocates once whatever the value's size,
// the Item and its value together.
func TestGetOneAllocAnySize(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	for _, m := range plainModes {
		c := newClient(t, srv, m, nil)
		ctx := context.Background()
		for _, n := range []int{3000, 10 << 10, 100 << 10, 1000 << 10} {
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "k", Value: make([]byte, n)}))
			allocs := testing.AllocsPerRun(20, func() {
				if it, err := c.Get(ctx, "k"); err != nil || len(it.Value) != n {
					t.Fatal(err)
				}
			})
			assert.LessOrEqual(t, allocs, 1.0, "%s: allocations per Get of %d bytes", m.name, n)
		}
	}
}
