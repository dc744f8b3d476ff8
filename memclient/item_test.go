package memclient

import (
	"reflect"
	"testing"
)

// TestNewItemOneAllocation: an Item of any size a server holds comes with
// its value in one allocation, and its Value is exactly n long and n deep
// (an append copies).
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
			if _, room, ok := bigItemClass(n); !ok || room < n {
				t.Errorf("bigItemClass(%d): room %d ok %v", n, room, ok)
			}
		}
		if a := testing.AllocsPerRun(20, func() { _ = newItem(n) }); a != 1 {
			t.Errorf("newItem(%d): %v allocations, want 1", n, a)
		}
	}
}

// TestBigItemClasses: every size fits the class it is given, a bigger
// size never gets less room, one class has one room, and the room is what
// the runtime would round a value of that size up to anyway: its own pages
// past 32 KiB, at most 1/32 more elsewhere.
func TestBigItemClasses(t *testing.T) {
	rooms := map[int]int{}
	prevRoom := 0
	for n := 1977; n < 9<<20; n += 1 + n/97 {
		idx, room, ok := bigItemClass(n)
		if !ok || room < n || idx < 0 || idx >= len(bigItemTypes) {
			t.Fatalf("bigItemClass(%d) = %d, %d, %v", n, idx, room, ok)
		}
		if room < prevRoom {
			t.Fatalf("bigItemClass(%d): room %d, less than %d for a smaller size", n, room, prevRoom)
		}
		if r, seen := rooms[idx]; seen && r != room {
			t.Fatalf("class %d: room %d and %d", idx, r, room)
		}
		rooms[idx] = room
		total, got := itemSize+n, itemSize+room
		if total > pagedMin && total <= pagedMax {
			if got != (total+pageSize-1)/pageSize*pageSize {
				t.Fatalf("bigItemClass(%d): %d bytes, not %d rounded up to pages", n, got, total)
			}
		} else if got*32 > total*33+32*64 {
			t.Fatalf("bigItemClass(%d): %d bytes for %d", n, got, total)
		}
		prevRoom = room
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
