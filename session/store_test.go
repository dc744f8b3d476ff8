package session_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/memkit/memkit/session"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStoreConformance runs one suite over every Store, and over
// memcached in each wire mode.
func TestStoreConformance(t *testing.T) {
	modes := []backend{
		{"memcached-text-protocol", func(t *testing.T, _ *fakeClock) (session.Store, *memcachetest.Server, *memclient.Client) {
			srv := memcachetest.Start(t, memcachetest.Options{})
			return session.NewMemcacheStore(newClientFromConfig(t, memclient.Config{
				Servers: []memclient.Server{{Addr: srv.Addr}}, Protocol: memclient.ProtocolText})), srv, nil
		}},
		{"memcached-tls", func(t *testing.T, _ *fakeClock) (session.Store, *memcachetest.Server, *memclient.Client) {
			srv := memcachetest.Start(t, memcachetest.Options{TLS: true})
			return session.NewMemcacheStore(newClientFromConfig(t, memclient.Config{
				Servers: []memclient.Server{{Addr: srv.Addr}}, TLS: srv.TLSConfig})), srv, nil
		}},
	}
	for _, b := range append(backends, modes...) {
		t.Run(b.name, func(t *testing.T) {
			leakcheck.Check(t)
			clock := newFakeClock()
			st, _, _ := b.new(t, clock)
			testStore(t, st)
		})
	}
}

func testStore(t *testing.T, st session.Store) {
	ctx := context.Background()
	key := session.HashKey("conformance:", t.Name())

	t.Run("missing", func(t *testing.T) {
		_, found, err := st.Load(ctx, key+"missing", 0)
		require.NoError(t, err)
		assert.False(t, found)
		assert.NoError(t, st.Delete(ctx, key+"missing"), "deleting a missing record is not an error")
	})

	t.Run("negative ttl never expires", func(t *testing.T) {
		k := key + "forever"
		require.NoError(t, st.Save(ctx, k, session.Entry{Data: []byte("v")}, -time.Second))
		e, found, err := st.Load(ctx, k, 0)
		require.NoError(t, err)
		require.True(t, found, "a negative ttl is no expiry, not an expiry in the past")
		assert.Equal(t, "v", string(e.Data))
		require.NoError(t, st.Delete(ctx, k))
	})

	t.Run("create, conflict, CAS", func(t *testing.T) {
		k := key + "cas"
		require.NoError(t, st.Save(ctx, k, session.Entry{Data: []byte("v1"), Flags: 7}, time.Hour))
		assert.ErrorIs(t, st.Save(ctx, k, session.Entry{Data: []byte("again")}, time.Hour), session.ErrConflict,
			"Version 0 creates only")

		e, found, err := st.Load(ctx, k, 0)
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, "v1", string(e.Data))
		assert.Equal(t, uint32(7), e.Flags)
		require.NotZero(t, e.Version)

		e2 := session.Entry{Data: []byte("v2"), Flags: 8, Version: e.Version}
		require.NoError(t, st.Save(ctx, k, e2, time.Hour))
		assert.ErrorIs(t, st.Save(ctx, k, session.Entry{Data: []byte("stale"), Version: e.Version}, time.Hour),
			session.ErrConflict, "a stale version loses")

		got, found, err := st.Load(ctx, k, 0)
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, "v2", string(got.Data))
		assert.Equal(t, uint32(8), got.Flags)
		assert.NotEqual(t, e.Version, got.Version)

		require.NoError(t, st.Delete(ctx, k))
		_, found, err = st.Load(ctx, k, 0)
		require.NoError(t, err)
		assert.False(t, found)
		assert.ErrorIs(t, st.Save(ctx, k, session.Entry{Data: []byte("gone"), Version: got.Version}, time.Hour),
			session.ErrConflict, "a CAS on a deleted record loses")
	})

	t.Run("load with touch keeps the data", func(t *testing.T) {
		k := key + "touch"
		require.NoError(t, st.Save(ctx, k, session.Entry{Data: []byte("x")}, time.Hour))
		e, found, err := st.Load(ctx, k, 2*time.Hour)
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, "x", string(e.Data))
		e2, _, err := st.Load(ctx, k, 0)
		require.NoError(t, err)
		assert.Equal(t, e.Version, e2.Version, "a touch is not a write")
	})

	t.Run("concurrent CAS increments all land", func(t *testing.T) {
		k := key + "counter"
		require.NoError(t, st.Save(ctx, k, session.Entry{Data: []byte("0")}, time.Hour))
		const n = 20
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for attempt := 0; attempt < 1000; attempt++ {
					e, _, err := st.Load(ctx, k, 0)
					if err != nil {
						errs <- err
						return
					}
					v, _ := strconv.Atoi(string(e.Data))
					err = st.Save(ctx, k, session.Entry{Data: []byte(strconv.Itoa(v + 1)), Version: e.Version}, time.Hour)
					if err == nil {
						return
					}
					if err != session.ErrConflict {
						errs <- err
						return
					}
				}
				errs <- session.ErrConflict
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		e, _, err := st.Load(ctx, k, 0)
		require.NoError(t, err)
		assert.Equal(t, strconv.Itoa(n), string(e.Data))
	})

	t.Run("binary data", func(t *testing.T) {
		k := key + "bin"
		data := []byte("\x00\r\n" + strings.Repeat("z", 10000) + "END\r\n")
		require.NoError(t, st.Save(ctx, k, session.Entry{Data: data}, time.Hour))
		e, found, err := st.Load(ctx, k, 0)
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, data, e.Data)
	})
}

func TestMemoryStoreExpiry(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	st := &session.MemoryStore{SweepInterval: time.Minute}
	session.SetStoreClock(st, clock.Now)

	require.NoError(t, st.Save(ctx, "a", session.Entry{Data: []byte("a")}, 10*time.Minute))
	require.NoError(t, st.Save(ctx, "b", session.Entry{Data: []byte("b")}, 10*time.Minute))
	require.NoError(t, st.Save(ctx, "forever", session.Entry{Data: []byte("f")}, 0))

	clock.Advance(9 * time.Minute)
	_, found, err := st.Load(ctx, "a", 10*time.Minute) // slides a's TTL
	require.NoError(t, err)
	require.True(t, found)

	clock.Advance(2 * time.Minute) // b expired, a touched 2 minutes ago
	_, found, _ = st.Load(ctx, "b", 0)
	assert.False(t, found, "b expired")
	_, found, _ = st.Load(ctx, "a", 0)
	assert.True(t, found, "a's TTL slid")
	assert.ErrorIs(t, st.Save(ctx, "b", session.Entry{Data: []byte("b2"), Version: 2}, time.Minute), session.ErrConflict)

	clock.Advance(time.Hour)
	require.NoError(t, st.Save(ctx, "c", session.Entry{Data: []byte("c")}, time.Minute)) // sweeps
	assert.Equal(t, 2, session.StoreLen(st), "the sweep dropped a, leaving forever and c")
	_, found, _ = st.Load(ctx, "forever", 0)
	assert.True(t, found)

	require.NoError(t, st.Close())
	_, _, err = st.Load(ctx, "c", 0)
	assert.ErrorIs(t, err, session.ErrClosed)
	assert.ErrorIs(t, err, session.ErrStore)
	assert.ErrorIs(t, st.Save(ctx, "d", session.Entry{}, 0), session.ErrClosed)
	assert.ErrorIs(t, st.Delete(ctx, "d"), session.ErrClosed)
}

func TestHashKey(t *testing.T) {
	id := "some-session-id"
	k := session.HashKey("p:", id)
	assert.True(t, strings.HasPrefix(k, "p:"))
	assert.NotContains(t, k, id)
	assert.Len(t, k, len("p:")+43, "prefix + unpadded base64url SHA-256")
	assert.Equal(t, k, session.HashKey("p:", id))
	assert.NotEqual(t, k, session.HashKey("p:", id+"x"))
}
