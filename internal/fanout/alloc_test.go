//go:build !race

package fanout_test

import "testing"

// (The race detector allocates on its own: this file is built without it.)

// TestCombineAllocs: with no observer or one, Combine allocates nothing.
func TestCombineAllocs(t *testing.T) {
	a := &recorder{}
	for name, obs := range map[string][]observer{"none": nil, "nils": {nil, nil}, "one": {nil, a}} {
		if n := testing.AllocsPerRun(100, func() { combine(obs...) }); n != 0 {
			t.Errorf("%s: %v allocations, want 0", name, n)
		}
	}
}
