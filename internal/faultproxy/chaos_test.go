package faultproxy

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func rolls(seed uint64, index int, c Chaos, n int) []fault {
	d := newDice(seed, index)
	out := make([]fault, n)
	for i := range out {
		out[i], _ = d.roll(c)
	}
	return out
}

func TestDice(t *testing.T) {
	c := Chaos{Drop: 0.2, Duplicate: 0.2, Reset: 0.2}
	require.Equal(t, rolls(1, 0, c, 1000), rolls(1, 0, c, 1000), "same seed and connection, same faults")
	require.NotEqual(t, rolls(1, 0, c, 1000), rolls(2, 0, c, 1000), "another seed")
	require.NotEqual(t, rolls(1, 0, c, 1000), rolls(1, 1, c, 1000), "another connection")

	counts := map[fault]int{}
	for _, f := range rolls(3, 0, c, 10000) {
		counts[f]++
	}
	for _, f := range []fault{forward, drop, duplicate, cut} {
		require.Greater(t, counts[f], 1000, "fault %d drawn %d times", f, counts[f])
	}

	d := newDice(4, 0)
	for i := 0; i < 1000; i++ {
		f, delay := d.roll(Chaos{MaxDelay: time.Millisecond})
		require.Equal(t, forward, f)
		require.True(t, delay >= 0 && delay <= time.Millisecond, delay)
	}
	require.False(t, Chaos{}.on())
}
