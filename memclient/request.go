package memclient

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

type opcode uint8

const (
	opGet opcode = iota
	opGAT
	opTouch
	opSet
	opAdd
	opReplace
	opAppend
	opPrepend
	opCAS
	opDelete
	opIncr
	opDecr
	opGetMulti
	opLease
	opInvalidate
	opStats
	opFlushAll
	opNoop
)

// Request states: a request is pending until its reply is read (done) or
// its caller gives up (abandoned). Whoever moves it out of pending second
// cleans up: the reader recycles an abandoned request.
const (
	reqPending uint32 = iota
	reqDone
	reqAbandoned
)

// request is one command on a connection and, once answered, its result.
// Requests are pooled; a request is owned by its caller until sent, then
// shared with the connection's reader until done or abandoned.
type request struct {
	op     opcode
	key    string
	keys   []string // opGetMulti
	cursor int      // opGetMulti: keys before it have been answered
	item   *Item    // store ops
	exp    int64    // expiration sent to the server
	delta  uint64   // opIncr, opDecr
	lease  LeaseOptions
	args   []string // opStats

	// results, written by the reader before done
	resItem  *Item
	resItems []*Item
	resLease Lease
	num      uint64
	stats    map[string]string
	err      error

	sentAt int64  // unix nanos when written
	seen   uint64 // replies the connection had read when this was written
	weight int64  // cost() when written, for connection load
	state  atomic.Uint32
	done   chan struct{} // capacity 1; signalled once per use
	timer  *time.Timer
}

// cost estimates the bytes a request and its reply keep in flight.
func (r *request) cost() int64 {
	n := int64(64)
	if r.item != nil {
		n += int64(len(r.item.Value))
	}
	return n + 64*int64(len(r.keys))
}

var requestPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &request{done: make(chan struct{}, 1), timer: t}
}}

func getRequest(op opcode) *request {
	r := requestPool.Get().(*request)
	r.op = op
	r.state.Store(reqPending)
	return r
}

// putRequest returns r to the pool. The caller must own r.
func putRequest(r *request) {
	done, timer := r.done, r.timer
	*r = request{done: done, timer: timer}
	requestPool.Put(r)
}

// complete hands the result to the waiting caller, or recycles the request
// if the caller has given up. Called once, by the connection's reader or
// its failure path.
func (r *request) complete() {
	if r.state.CompareAndSwap(reqPending, reqDone) {
		r.done <- struct{}{}
		return
	}
	putRequest(r) // abandoned: nobody else refers to it
}

// abandon gives r up after err (a timeout or cancellation): the reader
// that later reads its reply recycles it. If the reply raced in, r is the
// caller's after all and abandon reports success.
func (r *request) abandon(err error) (abandoned bool, _ error) {
	if r.state.CompareAndSwap(reqPending, reqAbandoned) {
		return true, err
	}
	<-r.done
	return false, nil
}

// deadlineError is the error for a wait that reached deadline: the
// context's own error when deadline is the context's (our timer may fire a
// moment before ctx.Done), else a timeoutError for Config.Timeout.
func deadlineError(ctx context.Context, deadline time.Time, addr string) error {
	if dl, ok := ctx.Deadline(); ok && !dl.After(deadline) {
		return ctxError(addr, context.DeadlineExceeded)
	}
	return &timeoutError{addr: addr}
}

// timeoutError is returned when Config.Timeout expires before the reply.
// It matches context.DeadlineExceeded and reports Timeout() true.
type timeoutError struct{ addr string }

func (e *timeoutError) Error() string {
	return "memclient: " + e.addr + ": timeout waiting for the server"
}
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }
func (e *timeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded
}
