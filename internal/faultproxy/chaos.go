package faultproxy

import (
	"math/rand/v2"
	"time"
)

// Chaos configures random faults, drawn for each reply from the server.
// The zero value turns them off.
//
// Draws are reproducible: each connection has its own random sequence,
// seeded from Seed and the connection's index (0 for the first the proxy
// accepted), and draws the same amount for every reply. So the same Seed,
// the same connections opened in the same order, and the same replies on
// each give the same faults, however the connections interleave.
type Chaos struct {
	// Seed seeds the random sequences.
	Seed uint64
	// Drop, Duplicate and Reset are the probabilities, each in [0, 1] and
	// summing to at most 1, that a reply is swallowed, sent twice, or cut
	// partway with its connection reset (as DropReply, DuplicateReply and
	// ResetMidReply do).
	Drop, Duplicate, Reset float64
	// MaxDelay, when positive, holds each reply back by a random time up to
	// MaxDelay before its first byte is sent on.
	MaxDelay time.Duration
}

func (c Chaos) on() bool {
	return c.Drop > 0 || c.Duplicate > 0 || c.Reset > 0 || c.MaxDelay > 0
}

// dice is one connection's random sequence. It is not safe for concurrent
// use.
type dice struct {
	r *rand.Rand
}

func newDice(seed uint64, index int) *dice {
	return &dice{r: rand.New(rand.NewPCG(seed, uint64(index)))}
}

// roll draws the fault and the delay for one reply. It draws twice
// whatever c says, so that sequences stay aligned across settings.
func (d *dice) roll(c Chaos) (fault, time.Duration) {
	x := d.r.Float64()
	y := d.r.Uint64()
	var delay time.Duration
	if c.MaxDelay > 0 {
		delay = time.Duration(y % (uint64(c.MaxDelay) + 1))
	}
	switch {
	case x < c.Drop:
		return drop, delay
	case x < c.Drop+c.Duplicate:
		return duplicate, delay
	case x < c.Drop+c.Duplicate+c.Reset:
		return cut, delay
	}
	return forward, delay
}
