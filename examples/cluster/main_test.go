package main

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

func TestMeasure(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	servers := []memclient.Server{{Addr: srvs[0].Addr, Weight: 1}, {Addr: srvs[1].Addr, Weight: 2}, {Addr: srvs[2].Addr, Weight: 3}}
	const n = 3000
	for _, d := range []memclient.Distribution{memclient.DistributionKetama, memclient.DistributionModula} {
		t.Run(d.String(), func(t *testing.T) {
			res, err := measure(context.Background(), servers, d, n)
			require.NoError(t, err)
			require.Len(t, res.Shares, 3)
			var sum float64
			keys := 0
			for i, s := range res.Shares {
				assert.Equal(t, servers[i].Addr, s.Addr)
				assert.Equal(t, servers[i].Weight, s.Weight)
				assert.Positive(t, s.Keys, "every server gets keys")
				// The weight shows: within 8 points of weight/total.
				assert.InDelta(t, s.Expected, s.Percent, 8, "%s", s.Addr)
				sum += s.Percent
				keys += s.Keys
			}
			assert.InDelta(t, 100, sum, 1e-9, "percentages sum to 100")
			assert.Equal(t, n, keys)
			assert.Less(t, res.Shares[0].Keys, res.Shares[2].Keys, "weight 1 gets fewer keys than weight 3")

			// The keys are deleted afterwards.
			stats, err := statsItems(t, servers)
			require.NoError(t, err)
			assert.Zero(t, stats, "keys left behind")
		})
	}
}

// statsItems sums curr_items over servers.
func statsItems(t *testing.T, servers []memclient.Server) (int, error) {
	cl, err := memclient.NewFromConfig(memclient.Config{Servers: servers})
	require.NoError(t, err)
	defer cl.Close()
	st, err := cl.Stats(context.Background())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range st {
		var v int
		v, _ = strconv.Atoi(m["curr_items"])
		n += v
	}
	return n, nil
}

func TestRunPrintsBothDistributions(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 3, memcachetest.Options{})
	list := srvs[0].Addr + ":1," + srvs[1].Addr + ":2," + srvs[2].Addr + ":3"
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, list, 600))
	s := out.String()
	assert.Contains(t, s, "3 servers, 600 keys")
	assert.Contains(t, s, "ketama:")
	assert.Contains(t, s, "modula:")
	for _, srv := range srvs {
		assert.Equal(t, 2, bytes.Count(out.Bytes(), []byte(srv.Addr)), "each server in both tables")
	}
}
