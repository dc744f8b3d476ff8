package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/leakcheck"
	"github.com/memkit/memkit/internal/memcachetest"
	"github.com/memkit/memkit/memclient"
)

func TestRace(t *testing.T) {
	leakcheck.Check(t)
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	servers := []memclient.Server{{Addr: srvs[0].Addr, Weight: 1}, {Addr: srvs[1].Addr, Weight: 2}}
	const buyers, sales = 6, 30
	res, err := race(context.Background(), servers, buyers, sales)
	require.NoError(t, err)
	assert.Equal(t, buyers*sales, res.Sold)
	assert.Equal(t, buyers*sales, res.CAS, "gets/cas keeps every sale")
	assert.LessOrEqual(t, res.Naive, buyers*sales, "get/set can only lose sales")
	assert.Positive(t, res.Naive)
	assert.GreaterOrEqual(t, res.Attempts, buyers*sales)
}

func TestRunOutput(t *testing.T) {
	leakcheck.Check(t)
	srv := memcachetest.Start(t, memcachetest.Options{})
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), &out, srv.Addr, 1, 5))
	// One buyer cannot race itself: both counters are exact.
	assert.Contains(t, out.String(), "1 buyers sold 5 tickets each, 5 in all")
	assert.Contains(t, out.String(), "naive get/set counter:       5  (0 sales lost)")
	assert.Contains(t, out.String(), "gets/cas (Update):           5  (0 compare-and-swap retries)")
}
