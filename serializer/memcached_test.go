package serializer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestThroughMemcached stores every codec and compressor through memclient
// over both wire protocols and reads them back with a default Serializer:
// flags survive the server and the value is self-describing.
func TestThroughMemcached(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows := testRows(50)
	long := strings.Repeat("session data ", 200)

	for _, proto := range []memclient.Protocol{memclient.ProtocolMeta, memclient.ProtocolText} {
		t.Run(proto.String(), func(t *testing.T) {
			c, err := memclient.NewFromConfig(memclient.Config{
				Servers:  []memclient.Server{{Addr: srv.Addr}},
				Protocol: proto,
			})
			require.NoError(t, err)
			defer c.Close()
			var reader Serializer

			for _, codec := range allCodecs {
				for _, comp := range allCompressors {
					w := Serializer{Codec: codec, Compressor: comp, MinCompressLen: 100}
					key := "rows_" + codec.Name() + "_" + comp.Name()
					data, flags, err := w.Marshal(rows)
					require.NoError(t, err)
					require.NoError(t, c.Set(ctx, &memclient.Item{Key: key, Value: data, Flags: flags}))
					it, err := c.Get(ctx, key)
					require.NoError(t, err)
					assert.Equal(t, flags, it.Flags, key)
					var got []row
					require.NoError(t, reader.Unmarshal(it.Value, it.Flags, &got), key)
					require.Len(t, got, len(rows))
					assert.Equal(t, rows[49].Email, got[49].Email, key)
					assert.True(t, rows[49].CreatedAt.Equal(got[49].CreatedAt), key)
				}
			}

			for key, v := range map[string]any{"native_str": long, "native_bytes": []byte("\x00\x01"), "native_int": -5} {
				data, flags, err := reader.Marshal(v)
				require.NoError(t, err)
				require.NoError(t, c.Set(ctx, &memclient.Item{Key: key, Value: data, Flags: flags}))
				it, err := c.Get(ctx, key)
				require.NoError(t, err)
				var got any
				require.NoError(t, reader.Unmarshal(it.Value, it.Flags, &got))
				if n, ok := v.(int); ok {
					v = int64(n)
				}
				assert.Equal(t, v, got, key)
			}
		})
	}
}

// TestNativeIntCounters shows that integers stored natively work with
// memcached's incr/decr, including the space padding memcached leaves when
// decr shortens a number in place.
func TestNativeIntCounters(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, proto := range []memclient.Protocol{memclient.ProtocolMeta, memclient.ProtocolText} {
		t.Run(proto.String(), func(t *testing.T) {
			c, err := memclient.NewFromConfig(memclient.Config{
				Servers:  []memclient.Server{{Addr: srv.Addr}},
				Protocol: proto,
			})
			require.NoError(t, err)
			defer c.Close()
			var s Serializer
			data, flags, err := s.Marshal(10)
			require.NoError(t, err)
			require.NoError(t, c.Set(ctx, &memclient.Item{Key: "counter", Value: data, Flags: flags}))

			n, err := c.Decrement(ctx, "counter", 1)
			require.NoError(t, err)
			require.Equal(t, uint64(9), n)
			it, err := c.Get(ctx, "counter")
			require.NoError(t, err)
			assert.Equal(t, uint32(flagInt), it.Flags, "incr/decr keep the flags")
			var got int
			require.NoError(t, s.Unmarshal(it.Value, it.Flags, &got), "value %q", it.Value)
			assert.Equal(t, 9, got)

			_, err = c.Increment(ctx, "counter", 100)
			require.NoError(t, err)
			it, err = c.Get(ctx, "counter")
			require.NoError(t, err)
			require.NoError(t, s.Unmarshal(it.Value, it.Flags, &got))
			assert.Equal(t, 109, got)
		})
	}
}
