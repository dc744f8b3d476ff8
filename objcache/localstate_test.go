package objcache

import (
	"sync"
	"testing"
	"time"
)

// mapLocal is the simplest LocalCache: it keeps everything it is offered.
type mapLocal struct {
	mu sync.Mutex
	m  map[string]LocalValue
}

func (l *mapLocal) Get(k string) (LocalValue, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.m[k]
	return v, ok
}

func (l *mapLocal) Set(k string, v LocalValue, _ time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[k] = v
}

func (l *mapLocal) Delete(k string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, k)
}

// TestLocalValueReadBeforeWriteNotServed: a reader that read the old
// value before a write, and whose Set reaches the tier after the write's
// delete, puts a value that no Get serves — not even before the reader
// notices and deletes it (the window that let another goroutine read a
// value older than a finished write).
func TestLocalValueReadBeforeWriteNotServed(t *testing.T) {
	lc := &mapLocal{m: map[string]LocalValue{}}
	l := newLocalState(lc)
	const k = "app:n"
	r := l.begin(k)                                                 // the reader notes the stripe, reads memcached: "old"
	l.drop(k)                                                       // a write: memcached has "new"; stripe bumped, key deleted
	lc.Set(k, LocalValue{Data: []byte("old"), stamp: r.stamp()}, 0) // the reader's Set lands late
	if v, ok := l.get("", k, "", ""); ok {
		t.Fatalf("served %q, read before a write that has returned", v.Data)
	}
	if v, ok := l.get("app:", "n", "", ""); ok {
		t.Fatalf("served %q through the prefixed lookup", v.Data)
	}

	// A value read after the write is served.
	l.offer(k, l.begin(k), []byte("new"), 0, 0)
	if v, ok := l.get("app:", "n", "", ""); !ok || string(v.Data) != "new" {
		t.Fatalf("got %q %v, want the value read after the write", v.Data, ok)
	}
	// A value objcache did not stamp is never served.
	lc.Set("app:other", LocalValue{Data: []byte("x")}, 0)
	if _, ok := l.get("app:", "other", "", ""); ok {
		t.Fatal("served an unstamped value")
	}
}

// TestLocalStampsWrap: stamps keep the stripe and the low bits of its
// number; a stripe's writes are told apart across the wrap of its counter.
func TestLocalStampsWrap(t *testing.T) {
	l := newLocalState(&mapLocal{m: map[string]LocalValue{}})
	const k = "key"
	st := l.stripe(k)
	st.Store(stampSeq) // the last number before the low bits wrap
	s := l.begin(k).stamp()
	if !l.fresh(s) {
		t.Fatal("a value read at the stripe's present number is not fresh")
	}
	st.Add(1) // wraps the low bits to 0
	if l.fresh(s) {
		t.Fatal("a value read before a write is fresh after the counter's low bits wrapped")
	}
	if !l.fresh(l.begin(k).stamp()) {
		t.Fatal("a value read after the wrap is not fresh")
	}
}
