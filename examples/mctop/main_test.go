package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

func TestFrame(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	servers := []memclient.Server{{Addr: srvs[0].Addr, Weight: 1}, {Addr: srvs[1].Addr, Weight: 2}, {Addr: srvs[2].Addr, Weight: 3}}
	cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers})
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()

	prev := collect(ctx, cl)
	require.NoError(t, prev.err)
	// Between the samples: 3 sets, 3 hits and 1 miss.
	for _, k := range []string{"a", "b", "c"} {
		require.NoError(t, cl.Set(ctx, &memclient.Item{Key: k, Value: []byte("v")}))
		_, err := cl.Get(ctx, k)
		require.NoError(t, err)
	}
	_, err = cl.Get(ctx, "missing")
	require.ErrorIs(t, err, memclient.ErrCacheMiss)
	cur := collect(ctx, cl)
	require.NoError(t, cur.err)

	var out bytes.Buffer
	render(&out, prev, cur)
	frame := out.String()
	for i, s := range servers {
		assert.Contains(t, frame, s.Addr+"/"+string(rune('1'+i)), "each server with its weight")
	}
	total := line(t, frame, "total")
	assert.Contains(t, total, "3/3 up")
	assert.Contains(t, total, "75.0%", "3 hits and 1 miss over the interval")
	assert.Regexp(t, `^total\s+3/3 up\s+3\s`, total, "3 items in all")
}

func TestFrameServerDown(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	servers := []memclient.Server{{Addr: srvs[0].Addr}, {Addr: srvs[1].Addr}}
	cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers})
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()
	prev := collect(ctx, cl)
	srvs[1].Kill()
	cur := collect(ctx, cl)
	require.Error(t, cur.err)

	var out bytes.Buffer
	render(&out, prev, cur)
	assert.Regexp(t, `(DOWN|ERROR)`, line(t, out.String(), srvs[1].Addr))
	assert.Contains(t, line(t, out.String(), srvs[0].Addr), " up ")
	assert.Contains(t, line(t, out.String(), "total"), "1/2 up")
	assert.Contains(t, out.String(), "stats: ")
}

func TestTopOnce(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, top(ctx, &out, []memclient.Server{{Addr: srv.Addr}}, time.Millisecond, true, false))
	assert.Equal(t, 1, strings.Count(out.String(), "mctop - "), "one frame")
	assert.Contains(t, out.String(), srv.Addr+"/1")
}

// line returns the line of frame that starts with prefix.
func line(t *testing.T, frame, prefix string) string {
	t.Helper()
	for _, l := range strings.Split(frame, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no line starting with %q in:\n%s", prefix, frame)
	return ""
}
