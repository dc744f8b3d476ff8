package memclient

import (
	"context"
	"errors"
	"io"
)

// Reading a value into an Item. A Get returns a new *Item and a new value,
// which the caller owns; for values up to a couple of KiB both come from
// one allocation, the value in an array right after the Item (each struct
// below fills one of the runtime's size classes). GetInto reads into the
// caller's Item and buffer instead, allocating nothing when it has room,
// and a large value goes from the socket straight into it.

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
		return &Item{Value: make([]byte, n)}
	}
	it.Value = buf
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
