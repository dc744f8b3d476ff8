// Package fanout combines observers: the Observers function of memclient,
// objcache and session is Combine with the package's own Observer
// interface and the list type that tells each of its observers in turn.
package fanout

// Combine returns the observers of obs that are not nil, in order, as one
// O (an interface type): nil with none, the one itself with one, and
// otherwise list applied to a copy of them. It allocates only then.
func Combine[O comparable, L ~[]O](obs []O, list func(L) O) O {
	var none, one O
	n := 0
	for _, o := range obs {
		if o != none {
			one = o
			n++
		}
	}
	switch n {
	case 0:
		return none
	case 1:
		return one
	}
	l := make(L, 0, n)
	for _, o := range obs {
		if o != none {
			l = append(l, o)
		}
	}
	return list(l)
}
