package memclient

import (
	"context"
	"errors"
	"io"
	"math/bits"
	"reflect"
	"sync/atomic"
)

// Reading a value into an Item. A Get returns a new *Item and a new value,
// which the caller owns; both come from one allocation, the value in an
// array right after the Item: for values up to a couple of KiB one of the
// structs below (each fills one of the runtime's size classes), for bigger
// ones a struct type made with reflect once per size class (see
// bigItemClass). GetInto reads into the caller's Item and buffer instead,
// allocating nothing when it has room, and a large value goes from the
// socket straight into it.

type (
	item8 struct {
		it  Item
		buf [8]byte
	}
	item24 struct {
		it  Item
		buf [24]byte
	}
	item56 struct {
		it  Item
		buf [56]byte
	}
	item120 struct {
		it  Item
		buf [120]byte
	}
	item184 struct {
		it  Item
		buf [184]byte
	}
	item312 struct {
		it  Item
		buf [312]byte
	}
	item440 struct {
		it  Item
		buf [440]byte
	}
	item696 struct {
		it  Item
		buf [696]byte
	}
	item952 struct {
		it  Item
		buf [952]byte
	}
	item1464 struct {
		it  Item
		buf [1464]byte
	}
	item1976 struct {
		it  Item
		buf [1976]byte
	}
)

// newItem returns a new Item whose Value has length n (capacity n too:
// an append copies it rather than grow into memory it shares).
func newItem(n int) *Item {
	var it *Item
	var buf []byte
	switch {
	case n <= 8:
		x := new(item8)
		it, buf = &x.it, x.buf[:n:n]
	case n <= 24:
		x := new(item24)
		it, buf = &x.it, x.buf[:n:n]
	case n <= 56:
		x := new(item56)
		it, buf = &x.it, x.buf[:n:n]
	case n <= 120:
		x := new(item120)
		it, buf = &x.it, x.buf[:n:n]
	case n <= 184:
		x := new(item184)
		it, buf = &x.it, x.buf[:n:n]
	case n <= 312:
		x := new(item312)
		it, buf = &x.it, x.buf[:n:n]
	case n <= 440:
		x := new(item440)
		it, buf = &x.it, x.buf[:n:n]
	case n <= 696:
		x := new(item696)
		it, buf = &x.it, x.buf[:n:n]
	case n <= 952:
		x := new(item952)
		it, buf = &x.it, x.buf[:n:n]
	case n <= 1464:
		x := new(item1464)
		it, buf = &x.it, x.buf[:n:n]
	case n <= 1976:
		x := new(item1976)
		it, buf = &x.it, x.buf[:n:n]
	default:
		return newBigItem(n)
	}
	it.Value = buf
	return it
}

// Size classes of the bigger Items, each class's type made once. Up to
// the runtime's largest small object (32 KiB) and past 4 MiB, the Item and
// its value together round up to 33/32, 34/32, ... 64/32 of a power of
// two, so at most 1/32 of the memory is spare (below 32 KiB the runtime
// rounds up to its own classes anyway). In between, a class per 8 KiB
// page: the runtime allocates large objects in whole pages, so those
// classes cost no more memory than a value of its own would.
const (
	bigItemMinShift = 12 // the first power of two above the biggest fixed struct
	bigItemMaxShift = 30 // above 1 GiB (a value no memcached holds): two allocations
	bigItemSteps    = 32
	stepClasses     = (bigItemMaxShift - bigItemMinShift + 1) * bigItemSteps

	pageSize     = 8 << 10  // the runtime's page
	pagedMin     = 32 << 10 // above it, the runtime allocates whole pages
	pagedMax     = 4 << 20  // up to it, a class per page count
	pagedClasses = (pagedMax - pagedMin) / pageSize
)

var (
	itemType      = reflect.TypeFor[Item]()
	itemSize      = int(itemType.Size())
	bigItemTypes  [stepClasses + pagedClasses]atomic.Pointer[reflect.Type]
	bigItemFields = func(n int) []reflect.StructField {
		return []reflect.StructField{
			{Name: "Item", Type: itemType},
			{Name: "Buf", Type: reflect.ArrayOf(n, reflect.TypeFor[byte]())},
		}
	}
)

// bigItemClass returns the index of the size class that holds an Item and
// n bytes after it, and the room for bytes that class has; ok is false
// past the last class.
func bigItemClass(n int) (idx, room int, ok bool) {
	total := itemSize + n
	if total > pagedMin && total <= pagedMax {
		pages := (total + pageSize - 1) / pageSize
		return stepClasses + pages - pagedMin/pageSize - 1, pages*pageSize - itemSize, true
	}
	shift := bits.Len(uint(total - 1)) // 1<<(shift-1) < total <= 1<<shift
	if shift < bigItemMinShift {
		shift = bigItemMinShift
	}
	if shift > bigItemMaxShift {
		return 0, 0, false
	}
	step := 1 << (shift - 1 - 5) // 1/bigItemSteps of the power of two below
	m := (total + step - 1) / step
	if m <= bigItemSteps { // total <= 1<<(shift-1): only below the first class
		m = bigItemSteps + 1
	}
	return (shift-bigItemMinShift)*bigItemSteps + m - bigItemSteps - 1, m*step - itemSize, true
}

// newBigItem returns a new Item whose Value has length and capacity n, in
// one allocation (two past the last size class).
func newBigItem(n int) *Item {
	idx, room, ok := bigItemClass(n)
	if !ok {
		return &Item{Value: make([]byte, n)}
	}
	t := bigItemTypes[idx].Load()
	if t == nil {
		st := reflect.StructOf(bigItemFields(room))
		bigItemTypes[idx].CompareAndSwap(nil, &st)
		t = bigItemTypes[idx].Load()
	}
	v := reflect.New(*t).Elem()
	it := v.Field(0).Addr().Interface().(*Item)
	it.Value = v.Field(1).Bytes()[:n:n] // an addressable array: no slice header to allocate
	return it
}

// readItem reads a value of n bytes and its CRLF into into, when set
// (its Value's storage reused), or into a new Item. tooBig reports a
// value over MaxItemSize, read past and dropped; err a lost stream.
func (rr *replyReader) readItem(n uint64, into *Item) (it *Item, tooBig, err error) {
	if n > uint64(rr.maxItem) {
		_, tooBig, err = rr.value(n) // drops it
		return nil, tooBig, err
	}
	if into != nil {
		it = into
		if uint64(cap(it.Value)) >= n {
			it.Value = it.Value[:n]
		} else {
			it.Value = make([]byte, n)
		}
	} else {
		it = newItem(int(n))
	}
	// A large read with the buffer empty goes straight from the socket.
	if _, err := io.ReadFull(rr.br, it.Value); err != nil {
		return nil, nil, noEOF(err)
	}
	if err := rr.crlf(); err != nil {
		return nil, nil, err
	}
	rr.noteValue(n)
	return it, nil, nil
}

// GetInto reads key's item into it, reusing it.Value's storage: with
// room enough, a Get that allocates nothing, and a large value is read
// from the socket straight into it. It sets it.Key (to key), Value, Flags
// and CAS; TTL is left as it was. It returns ErrCacheMiss when key has
// no item (it then unchanged but for Key). Otherwise it works as Get.
func (c *Client) GetInto(ctx context.Context, key string, it *Item) error {
	if it == nil {
		return errors.New("memclient: GetInto into a nil Item")
	}
	if err := checkKey(key); err != nil {
		c.refused(ctx, opGet, err)
		return err
	}
	it.Key = key
	r := getRequest(opGet)
	r.key = key
	r.into = it
	owned, err := c.do(ctx, r)
	if owned {
		putRequest(r)
	}
	return err
}
