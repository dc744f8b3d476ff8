package fanout_test

import (
	"testing"

	"github.com/memkit/memkit/internal/fanout"
)

type observer interface{ observe(string) }

type recorder struct{ got []string }

func (r *recorder) observe(s string) { r.got = append(r.got, s) }

// funcObserver is not comparable: Combine must still skip nil ones
// without comparing it.
type funcObserver func(string)

func (f funcObserver) observe(s string) { f(s) }

type multi []observer

func (m multi) observe(s string) {
	for _, o := range m {
		o.observe(s)
	}
}

func combine(obs ...observer) observer {
	return fanout.Combine(obs, func(m multi) observer { return m })
}

func TestCombine(t *testing.T) {
	if o := combine(); o != nil {
		t.Fatalf("none: %v, want nil", o)
	}
	if o := combine(nil, nil); o != nil {
		t.Fatalf("nils: %v, want nil", o)
	}
	a := &recorder{}
	if o := combine(nil, a, nil); o != observer(a) {
		t.Fatalf("one: %v, want the observer itself", o)
	}
	var order []string
	f := funcObserver(func(s string) { order = append(order, "f:"+s) })
	in := []observer{a, nil, f, a}
	o := combine(in...)
	in[0] = nil // Combine kept its own copy
	o.observe("x")
	if len(a.got) != 2 || len(order) != 1 {
		t.Fatalf("a got %v, f got %v", a.got, order)
	}
	if m := o.(multi); len(m) != 3 || m[0] != observer(a) {
		t.Fatalf("list %v", m)
	}
}
