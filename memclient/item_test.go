package memclient

import (
	"reflect"
	"testing"
)

// TestNewItemOneAllocation: an Item of any size a server holds comes with
// its value in one allocation, of a size class at most 1/32 bigger than
// needed, and its Value is exactly n long and n deep (an append copies).
func TestNewItemOneAllocation(t *testing.T) {
	sizes := []int{0, 1, 8, 9, 100, 1976, 1977, 2048 - itemSize, 2049 - itemSize, 4000, 10 << 10,
		100_000, 1<<20 - itemSize, 1 << 20, 1<<20 + 1, 5 << 20}
	for _, n := range sizes {
		it := newItem(n)
		if len(it.Value) != n || cap(it.Value) != n {
			t.Fatalf("newItem(%d): len %d cap %d", n, len(it.Value), cap(it.Value))
		}
		for i := range it.Value {
			if it.Value[i] != 0 {
				t.Fatalf("newItem(%d): byte %d not zero", n, i)
			}
		}
		if n > 1976 {
			_, room, ok := bigItemClass(n)
			if !ok || room < n || (itemSize+room)*32 > (itemSize+n)*33+32*64 {
				t.Errorf("bigItemClass(%d): room %d ok %v", n, room, ok)
			}
		}
		if a := testing.AllocsPerRun(20, func() { _ = newItem(n) }); a != 1 {
			t.Errorf("newItem(%d): %v allocations, want 1", n, a)
		}
	}
}

// TestBigItemClasses: the classes are contiguous and growing: every size
// fits the class it is given, and the class before it would not hold it.
func TestBigItemClasses(t *testing.T) {
	prevIdx, prevRoom := -1, 0
	for n := 1977; n < 3<<20; n += 1 + n/97 {
		idx, room, ok := bigItemClass(n)
		if !ok || room < n {
			t.Fatalf("bigItemClass(%d) = %d, %d, %v", n, idx, room, ok)
		}
		switch {
		case idx == prevIdx:
			if room != prevRoom {
				t.Fatalf("class %d: room %d and %d", idx, prevRoom, room)
			}
		case idx == prevIdx+1 || prevIdx == -1:
			if n <= prevRoom {
				t.Fatalf("bigItemClass(%d) = %d, but class %d had room %d", n, idx, prevIdx, prevRoom)
			}
		default:
			// a step of n may skip a class, never go back
			if idx < prevIdx {
				t.Fatalf("bigItemClass(%d) = %d after %d", n, idx, prevIdx)
			}
		}
		prevIdx, prevRoom = idx, room
	}
	if _, _, ok := bigItemClass(1<<30 + 1); ok {
		t.Error("a value over 1 GiB got a class")
	}
	it := newItem(1<<30 + 1 - itemSize - 1<<29) // in the last class
	if reflect.TypeOf(it).Elem() != itemType {
		t.Error("not an *Item")
	}
}

func BenchmarkNewItem(b *testing.B) {
	for _, n := range []int{10 << 10, 100 << 10, 1 << 20} {
		b.Run("one/"+itoa(n), func(b *testing.B) {
			for b.Loop() {
				sinkItem = newItem(n)
			}
		})
		b.Run("two/"+itoa(n), func(b *testing.B) {
			for b.Loop() {
				sinkItem = &Item{Value: make([]byte, n)}
			}
		})
	}
}

var sinkItem *Item
