package memclient

import (
	"sync"
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

var opNames = [...]string{
	opGet: "get", opGAT: "gat", opTouch: "touch", opSet: "set", opAdd: "add",
	opReplace: "replace", opAppend: "append", opPrepend: "prepend", opCAS: "cas",
	opDelete: "delete", opIncr: "incr", opDecr: "decr", opGetMulti: "get_multi",
	opLease: "lease", opInvalidate: "invalidate", opStats: "stats",
	opFlushAll: "flush_all", opNoop: "noop",
}

// String names the operation as metrics and errors do.
func (op opcode) String() string {
	if int(op) < len(opNames) {
		return opNames[op]
	}
	return "op" + itoa(int(op))
}

// Wait states of a request on a connection. They change only under the
// connection's mu; see pipeline.go for who may move a request from one to
// another and what each means for ownership.
const (
	stSent      uint8 = iota // queued; its caller is not waiting yet
	stWaiting                // queued; its caller is parked on sig
	stReading                // its caller holds the connection's read role
	stDone                   // answered or failed; the result is the caller's
	stAbandoned              // its caller gave up; the connection recycles it
)

// request is one command on a connection and, once answered, its result.
// Requests are pooled. pipeline.go states who owns a request when.
type request struct {
	op     opcode
	key    string
	keys   []string      // opGetMulti
	cursor int           // opGetMulti: index of the next key a VALUE may name
	item   *Item         // store ops
	into   *Item         // GetInto: the caller's item, to read the value into
	exp    int64         // expiration sent to the server
	ttl    time.Duration // the TTL exp came from (touches, invalidations), for the gutter's clamp
	delta  uint64        // opIncr, opDecr
	lease  LeaseOptions
	args   []string // opStats

	// Results, written by the reader that decodes the reply.
	resItem  *Item
	resItems []*Item
	keyErrs  map[string]error // opGetMulti: keys that failed alone (a value too large)
	resLease Lease
	num      uint64
	stats    map[string]string
	err      error

	// Pipeline bookkeeping, written under the write slot when sent.
	opaque uint32 // meta protocol: the O token the reply must echo
	sentAt int64  // unix nanos when queued
	rx     uint64 // bytes the connection had received when this was queued
	weight int64  // cost(valueSize) when queued, for connection load

	state  uint8         // stSent..stAbandoned; guarded by the connection's mu
	pinned bool          // GetInto: the reader is writing into the caller's Item; guarded by mu
	sig    chan struct{} // capacity 1: one token per hand-over to the caller
	timer  *time.Timer   // the caller's wait timer, stopped when idle
}

// cost estimates the bytes a request and its reply keep in flight; a
// reply with a value is counted at valueSize, the server's running
// estimate, so that big values spread over connections as they come.
func (r *request) cost(valueSize int64) int64 {
	n := int64(64)
	if r.item != nil {
		n += int64(len(r.item.Value))
	}
	switch r.op {
	case opGet, opGAT, opLease:
		n += valueSize
	case opGetMulti:
		n += valueSize * int64(len(r.keys))
	}
	return n + 64*int64(len(r.keys))
}

// usesOpaque reports whether the meta encoding of r carries an O token:
// every command but mn, and those shared with the text protocol (gets,
// stats, flush_all), whose replies a sync after them confirms.
func (r *request) usesOpaque() bool {
	switch r.op {
	case opGetMulti, opStats, opFlushAll, opNoop:
		return false
	}
	return true
}

// needsSync reports whether r's meta reply is positional and must be
// confirmed by a reply after it.
func (r *request) needsSync() bool {
	switch r.op {
	case opGetMulti, opStats, opFlushAll:
		return true
	}
	return false
}

var requestPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &request{sig: make(chan struct{}, 1), timer: t}
}}

func getRequest(op opcode) *request {
	r := requestPool.Get().(*request)
	r.op = op
	return r
}

// reset clears r's results and pipeline bookkeeping, so that the caller
// can send it again (to another server). The caller must own r.
func (r *request) reset() {
	r.resItem, r.resItems, r.keyErrs, r.resLease = nil, nil, nil, Lease{}
	r.num, r.stats, r.err, r.cursor = 0, nil, nil, 0
	r.opaque, r.sentAt, r.rx, r.weight, r.state, r.pinned = 0, 0, 0, 0, stSent, false
}

// takeResults moves x's results into r. The caller owns both.
func (r *request) takeResults(x *request) {
	r.resItem, r.resItems, r.keyErrs, r.resLease = x.resItem, x.resItems, x.keyErrs, x.resLease
	r.num, r.stats, r.err = x.num, x.stats, x.err
}

// clone returns a new request for the same command as r.
func (r *request) clone() *request {
	x := getRequest(r.op)
	x.key, x.keys, x.item, x.exp, x.ttl, x.into = r.key, r.keys, r.item, r.exp, r.ttl, r.into
	x.delta, x.lease, x.args = r.delta, r.lease, r.args
	return x
}

// putRequest returns r to the pool. The caller must own r, and r's sig
// must hold no token.
func putRequest(r *request) {
	sig, timer := r.sig, r.timer
	*r = request{sig: sig, timer: timer}
	requestPool.Put(r)
}
