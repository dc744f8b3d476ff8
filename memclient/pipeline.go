package memclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// A conn is one pipelined connection to a server. Callers read replies
// themselves; the only goroutine of its own, the flusher, starts when
// writes first overlap and ends when the connection does.
//
// # Who owns what
//
// Writing. A caller appends its encoded requests to wbuf under wlock,
// and its requests to the queue in the same hold (under mu too), so queue
// order is wire order; then it leaves. One writer at a time (writing)
// takes wbuf and writes it, holding no lock meanwhile, so that callers
// keep appending while a write(2) is under way and the next write takes
// them all: a lone caller writes its own request at once; with others
// active, the connection's flusher goroutine writes, a moment later, what
// has gathered, and goes on while there is more. A write blocked on a
// server that stopped reading ends at the latest deadline of the callers
// whose bytes it carries, and fails the connection; the callers wait on
// their own deadlines meanwhile, and wbuf is bounded (maxBacklog).
//
// Reading. At most one caller holds the read role (reading, under mu); it
// owns br and the read deadline, pops replies' requests off the queue in
// order, decodes each reply into its request, checks that the reply
// belongs to it (meta: the O token; text: the key and the kind of reply),
// and completes it. It reads until its own request is complete, then hands
// the role to the oldest caller parked in await, or frees it.
//
// Requests. Each request has one owner at a time:
//
//   - its caller, from getRequest until send queues it;
//   - the connection, while it is queued (stSent, stWaiting, stReading):
//     the reader that pops it is the only one to write its results, and
//     its caller may only change its state, under mu;
//   - its caller again once it is stDone and the caller has taken the
//     token that says so from sig;
//   - the connection for good once its caller abandons it (stAbandoned):
//     whoever next completes it (the reader, or fail) recycles it. A
//     caller keeps its own copy of whatever it needs after giving up (the
//     keys of a batch, to name them in an error).
//
// One token goes to sig for each move from stSent or stWaiting to stDone
// and from stWaiting to stReading (the read role handed over); none for
// stReading to stDone, which the role holder does itself or sees when it
// wakes. So sig never holds more than one token, and sending never blocks.
//
// Failing. fail closes the socket, marks the connection closed, stops the
// flusher and completes every queued request with the reason; the reader,
// if any, finds its read broken and completes the request it had popped.
type conn struct {
	srv  *server
	nc   net.Conn
	meta bool // the wire format: meta or text
	rx   rxCounter

	wlock    sync.Mutex    // protects wbuf, flushBy, writing, flushing, opaque
	wbuf     []byte        // encoded requests waiting to be written
	flushBy  int64         // the latest deadline of the callers whose bytes are in wbuf
	writing  bool          // a writer holds wout: it will take wbuf too
	flushing bool          // the flusher goroutine runs
	opaque   uint32        // the last O token sent
	kick     chan struct{} // capacity 1: wakes the flusher
	quit     chan struct{} // closed by fail: stops the flusher

	// Owned by the writer.
	wout []byte // the batch being written
	wdl  int64  // write deadline set, unix nanos; 0: none

	// Guarded by the read role.
	br  *bufio.Reader
	rdl int64 // read deadline set, unix nanos; 0: none
	rd  replyReader

	mu    sync.Mutex // protects queue, head, held, reading, and the state of their requests
	queue []*request // queued requests, oldest first, from head
	head  int
	// held are requests whose replies, which carry no token, were decoded
	// but wait for the next token-carrying reply to show the stream was in
	// step. Only the reader adds to them; the reader or fail completes them.
	held    []*request
	reading bool // a caller holds the read role

	closed   atomic.Pointer[connError] // why it closed; nil while open
	lastSend atomic.Int64              // unix nanos of the last request queued
	answered atomic.Bool               // a reply was read and checked
	weight   atomic.Int64              // sum of the cost of queued requests
}

// cutError is a read that reached the reader's deadline inside a reply:
// the connection is lost, but the server did nothing wrong.
type cutError struct{ err error }

func (e *cutError) Error() string { return "reply cut off by the deadline: " + e.err.Error() }
func (e *cutError) Unwrap() error { return e.err }

// connError is the reason a connection closed: err is what its requests
// fail with, cause what closed it.
type connError struct{ err, cause error }

// rxCounter counts the bytes received on a connection, so that silence
// can be told from a reader that has not looked (a paused process).
type rxCounter struct {
	nc net.Conn
	n  atomic.Uint64
}

func (r *rxCounter) Read(p []byte) (int, error) {
	n, err := r.nc.Read(p)
	if n > 0 {
		r.n.Add(uint64(n))
	}
	return n, err
}

func newConn(s *server, nc net.Conn) *conn {
	c := &conn{
		srv:  s,
		nc:   nc,
		meta: s.cfg.Protocol == ProtocolMeta,
		kick: make(chan struct{}, 1),
		quit: make(chan struct{}),
	}
	c.rx.nc = nc
	c.br = bufio.NewReaderSize(&c.rx, 16<<10)
	c.rd = replyReader{br: c.br, addr: s.addr, maxItem: s.cfg.maxItemSize(), valueSize: &s.valueSize}
	c.lastSend.Store(time.Now().UnixNano())
	return c
}

// cancelPoll is how often a reader blocked for a cancellable context
// checks whether it was cancelled.
const cancelPoll = 20 * time.Millisecond

// idleCheckAfter is how long a connection may sit unused before it is
// checked for a close by the server (a restart, idle_timeout) before use.
const idleCheckAfter = time.Second

var (
	errConnClosed = errors.New("connection closed")
	errIdleClosed = errors.New("idle connection closed by the server")
)

// sent is what a caller may know of its requests once they are queued:
// when they went, and how many bytes the connection had received then.
type sent struct {
	at int64
	rx uint64
}

// errBacklog fails a request when the connection's unwritten requests
// pass maxBacklog: the server has stopped reading.
var errBacklog = errors.New("write backlog full: the server is not reading")

// maxBacklog bounds the bytes waiting to be written on one connection.
func (c *conn) maxBacklog() int {
	return max(32<<20, 8*c.srv.cfg.maxItemSize())
}

// send queues reqs and hands them to the writer. It returns an error,
// having queued none of them, if the connection is closed or its backlog
// is full; once queued, a write error fails the connection and so the
// requests, whose callers learn it from await.
func (c *conn) send(ctx context.Context, now, deadline time.Time, reqs ...*request) (sent, error) {
	s := sent{at: now.UnixNano(), rx: c.rx.n.Load()}
	var w int64
	c.wlock.Lock()
	if len(c.wbuf) > c.maxBacklog() {
		c.wlock.Unlock()
		return sent{}, fmt.Errorf("memclient: %s: %w", c.srv.addr, errBacklog)
	}
	c.mu.Lock()
	if ce := c.closed.Load(); ce != nil {
		c.mu.Unlock()
		c.wlock.Unlock()
		return sent{}, ce.err
	}
	busy := c.head < len(c.queue) || c.reading
	needSync := false
	valueSize := c.srv.valueSize.Load()
	for _, r := range reqs {
		if c.meta {
			if r.usesOpaque() {
				c.opaque++
				r.opaque = c.opaque
			}
			needSync = needSync || r.needsSync()
		}
		r.sentAt, r.rx, r.state = s.at, s.rx, stSent
		r.weight = r.cost(valueSize)
		w += r.weight
		c.queue = append(c.queue, r)
	}
	if needSync {
		// Replies without a token (a multi-key gets, stats) are
		// confirmed by the sync's reply after them.
		c.queueSyncLocked(s.at)
	}
	c.mu.Unlock()
	var err error
	for _, r := range reqs {
		if c.wbuf, err = c.encode(c.wbuf, r); err != nil {
			break
		}
	}
	if needSync {
		c.wbuf = appendSync(c.wbuf)
	}
	c.flushBy = max(c.flushBy, deadline.UnixNano())
	c.weight.Add(w)
	c.lastSend.Store(s.at)
	if err != nil {
		c.wlock.Unlock()
		c.fail(err) // a request that cannot be encoded: nothing can follow it
		return s, nil
	}
	c.handToWriter(busy)
	return s, nil
}

func (c *conn) encode(dst []byte, r *request) ([]byte, error) {
	if c.meta {
		return appendMeta(dst, r)
	}
	return appendText(dst, r)
}

// handToWriter sees that wbuf gets written. A writer at work takes it
// with its next write. Otherwise, a lone caller (busy false: nothing in
// flight) writes at once; with others active, the flusher writes a moment
// later, with what they add meanwhile: on the 2-core bench, letting
// runnable callers queue theirs first took writes per Get at 64
// goroutines from 0.8 to about 0.1, and memcached's CPU per Get from
// 4.6µs to 1.5µs. The caller holds wlock; it is released.
func (c *conn) handToWriter(busy bool) {
	if c.writing {
		c.wlock.Unlock()
		return
	}
	c.writing = true
	if busy {
		c.wakeFlusherLocked()
		c.wlock.Unlock()
		return
	}
	c.wlock.Unlock()
	if c.writeBatch() {
		c.wlock.Lock()
		c.wakeFlusherLocked() // more came meanwhile: the flusher takes over
		c.wlock.Unlock()
	}
}

// wakeFlusherLocked wakes the flusher, starting it if it does not run.
// The caller holds wlock and has set writing: the flusher now owns it.
func (c *conn) wakeFlusherLocked() {
	if !c.flushing {
		c.flushing = c.srv.client.goBackground(c.flushLoop)
		if !c.flushing {
			c.writing = false // the client is closing: so is the connection
			return
		}
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// flushLoop is the connection's flusher: woken, it lets the callers that
// are runnable add their requests, then writes until nothing is left.
func (c *conn) flushLoop() {
	for {
		select {
		case <-c.kick:
		case <-c.quit:
			return
		}
		runtime.Gosched()
		for c.writeBatch() {
		}
	}
}

// writeBatch writes what wbuf holds, if anything, and reports whether
// more is left to write; if not, it lets go of writing. The caller holds
// writing.
func (c *conn) writeBatch() (more bool) {
	c.wlock.Lock()
	if len(c.wbuf) == 0 || c.isClosed() {
		c.writing = false
		c.wlock.Unlock()
		return false
	}
	c.wbuf, c.wout = c.wout[:0], c.wbuf
	flushBy := c.flushBy
	c.flushBy = 0
	c.wlock.Unlock()

	// The write goes under the latest deadline of the callers whose bytes
	// it carries (or a moment, if they have all given up).
	now := time.Now().UnixNano()
	dl := flushBy
	if dl <= now {
		dl = now + int64(stuckAfter)
	}
	if !nearDeadline(c.wdl, time.Unix(0, dl)) {
		_ = c.nc.SetWriteDeadline(time.Unix(0, dl))
		c.wdl = dl
	}
	_, err := c.nc.Write(c.wout)
	if cap(c.wout) > 1<<20 {
		c.wout = nil // do not keep a big value's buffer
	}
	if err != nil {
		c.fail(err)
		c.wlock.Lock()
		c.writing = false
		c.wbuf = nil
		c.wlock.Unlock()
		return false
	}
	c.wlock.Lock()
	more = len(c.wbuf) > 0 && !c.isClosed()
	if !more {
		c.writing = false
	}
	c.wlock.Unlock()
	return more
}

// await waits for r's reply until ctx ends or deadline: as the reader if
// the read role is free, else parked until the reader completes r or hands
// it the role. On timeout or cancellation it abandons r and reports
// abandoned, with the error; otherwise r is the caller's, its outcome in
// r.err.
func (c *conn) await(ctx context.Context, deadline time.Time, r *request) (abandoned bool, err error) {
	c.mu.Lock()
	if r.state == stDone {
		c.mu.Unlock()
		<-r.sig
		return false, nil
	}
	if !c.reading {
		c.reading = true
		r.state = stReading
		c.mu.Unlock()
		return c.lead(ctx, deadline, r)
	}
	r.state = stWaiting
	c.mu.Unlock()

	r.timer.Reset(time.Until(deadline))
	select {
	case <-r.sig:
		r.timer.Stop()
		c.mu.Lock()
		st := r.state
		c.mu.Unlock()
		if st == stDone {
			return false, nil
		}
		return c.lead(ctx, deadline, r) // handed the read role
	case <-ctx.Done():
		err = ctxError(c.srv.addr, ctx.Err())
	case <-r.timer.C:
		err = deadlineError(ctx, deadline, c.srv.addr)
	}
	r.timer.Stop()
	c.mu.Lock()
	if r.state == stWaiting && !r.pinned {
		r.state = stAbandoned
		c.mu.Unlock()
		return true, err
	}
	if r.state == stWaiting {
		// The reader is reading this reply into the caller's Item
		// (GetInto): it must not go on once the caller has left. Cut its
		// read short; the connection fails, and r with it, at once.
		c.mu.Unlock()
		_ = c.nc.SetReadDeadline(time.Now())
		<-r.sig
		return false, err
	}
	c.mu.Unlock()
	<-r.sig // a token raced our giving up: the reply, or the read role
	c.mu.Lock()
	if r.state == stDone {
		c.mu.Unlock()
		return false, nil
	}
	r.state = stAbandoned
	w := c.handOffLocked()
	c.mu.Unlock()
	if w != nil {
		w.sig <- struct{}{}
	}
	return true, err
}

// lead reads replies as the holder of the read role until r is complete
// or the caller's wait ends, then passes the role on.
func (c *conn) lead(ctx context.Context, deadline time.Time, r *request) (abandoned bool, err error) {
	err = c.readUntil(ctx, deadline, r)
	c.mu.Lock()
	done := r.state == stDone
	if !done {
		// The wait ended with r still queued and nothing of its reply read.
		r.state = stAbandoned
	}
	w := c.handOffLocked()
	c.mu.Unlock()
	if w != nil {
		w.sig <- struct{}{}
	}
	if done {
		return false, nil
	}
	return true, err
}

// handOffLocked passes the read role to the oldest caller parked in
// await, or frees it. The oldest's reply comes first, often already in
// the buffer: it reads what has arrived rather than blocking early in
// read(2) for a reply just sent, so each read(2) brings more replies. It
// returns the caller to wake once mu is released (nil: none). The caller
// holds the role and mu.
func (c *conn) handOffLocked() (wake *request) {
	for _, w := range c.held {
		if w.state == stWaiting {
			w.state = stReading
			return w
		}
	}
	for _, w := range c.queue[c.head:] {
		if w.state == stWaiting {
			w.state = stReading
			return w
		}
	}
	c.reading = false
	return nil
}

// handOff is handOffLocked for a caller that does not hold mu.
func (c *conn) handOff() {
	c.mu.Lock()
	w := c.handOffLocked()
	c.mu.Unlock()
	if w != nil {
		w.sig <- struct{}{}
	}
}

// completeLocked marks a decoded (or failed) request done. It returns
// what is left to do once mu is released: recycle it (its caller is
// gone) or wake its caller. The caller holds mu.
func completeLocked(r *request) (after completion) {
	switch r.state {
	case stAbandoned:
		return completion{r: r, recycle: true}
	case stReading:
		r.state = stDone // its caller is the reader: no token
		return completion{}
	default:
		r.state = stDone
		return completion{r: r}
	}
}

// completion is what completeLocked leaves to do outside mu.
type completion struct {
	r       *request
	recycle bool
}

// finish recycles or wakes, as completeLocked said.
func (a completion) finish() {
	switch {
	case a.r == nil:
	case a.recycle:
		putRequest(a.r)
	default:
		a.r.sig <- struct{}{}
	}
}

// readUntil reads, decodes and completes replies until r is complete. It
// returns an error only when the caller's wait ended (timeout,
// cancellation) with the stream intact: no byte of a reply consumed. Any
// other failure fails the connection, which completes r.
func (c *conn) readUntil(ctx context.Context, deadline time.Time, r *request) error {
	cancellable := ctx.Done() != nil
	c.keepReadDeadline(deadline)
	sliced := false // the read deadline is a cancelPoll slice, not deadline
	var h *request  // popped with the last reply's completion: its reply has begun
	for {
		if h != nil {
			goto decode
		}
		if cancellable && c.br.Buffered() == 0 {
			// About to block in read(2), which a cancelled context cannot
			// interrupt without an allocation per read (context.AfterFunc):
			// wake every cancelPoll to look at it instead.
			if d := time.Now().Add(cancelPoll); d.Before(deadline) {
				c.setReadDeadline(d)
				sliced = true
			}
		}
		// Wait for the first byte of the next reply before taking its
		// request, so a timeout here consumes nothing.
		if _, err := c.br.Peek(1); err != nil {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				c.fail(err)
				return nil
			}
			if err := ctx.Err(); err != nil {
				return ctxError(c.srv.addr, err)
			}
			if !time.Now().Before(deadline) {
				return deadlineError(ctx, deadline, c.srv.addr)
			}
			if !sliced {
				c.setReadDeadline(deadline) // the one set was a little early
			}
			continue
		}
		if sliced {
			// A reply has begun: read it whole under the real deadline.
			c.setReadDeadline(deadline)
			sliced = false
		}

		c.mu.Lock()
		h = c.popLocked()
		c.mu.Unlock()
		if h == nil {
			c.fail(fmt.Errorf("%w: unsolicited data from the server", ErrProtocol))
			return nil
		}

	decode:
		var positional bool
		var err error
		if c.meta {
			positional, err = c.rd.decodeMeta(h)
		} else {
			err = c.rd.decodeText(h) // nothing to confirm a reply with
		}
		if err != nil {
			// The reply cannot be delimited, does not belong to h, or was
			// cut midway: the stream is lost.
			if h.err == nil {
				h.err = fmt.Errorf("memclient: %s: %w", c.srv.addr, err)
			}
			var ne net.Error
			cut := errors.As(err, &ne) && ne.Timeout()
			if cut {
				// Our deadline ended inside a reply (a big value, a slow
				// link): the caller's deadline, not the server's failure.
				err = &cutError{err}
			}
			c.fail(err)
			c.mu.Lock()
			after := completeLocked(h)
			c.mu.Unlock()
			after.finish()
			if cut && !time.Now().Before(deadline) {
				r.err = deadlineError(ctx, deadline, c.srv.addr) // r is done, and ours
			}
			return nil
		}
		c.srv.noteSuccess()
		if !c.answered.Load() {
			c.answered.Store(true)
		}
		if positional {
			// A reply that carries no token is held, its request popped
			// but not complete, until a reply that does shows the stream
			// in step; a request must follow it for that.
			c.mu.Lock()
			c.held = append(c.held, h)
			c.mu.Unlock()
			h = nil
			if err := c.ensureSuccessor(deadline); err != nil {
				return err
			}
			continue
		}
		// h's reply is verified, and with it every reply held before it.
		c.mu.Lock()
		var held []completion
		if len(c.held) > 0 {
			held = make([]completion, len(c.held))
			for i, x := range c.held {
				held[i] = completeLocked(x)
				c.held[i] = nil
			}
			c.held = c.held[:0]
		}
		after := completeLocked(h)
		done := r.state == stDone
		h = nil
		if !done && c.br.Buffered() > 0 {
			h = c.popLocked() // its reply has begun: no need to peek
		}
		c.mu.Unlock()
		for _, a := range held {
			a.finish()
		}
		after.finish()
		if done {
			return nil
		}
		if h == nil && c.br.Buffered() > 0 {
			c.fail(fmt.Errorf("%w: unsolicited data from the server", ErrProtocol))
			return nil
		}
	}
}

// popLocked takes the oldest queued request, whose reply comes next, or
// returns nil when none is queued. The caller holds mu and the read role.
func (c *conn) popLocked() *request {
	if c.head == len(c.queue) {
		return nil
	}
	h := c.queue[c.head]
	c.queue[c.head] = nil
	c.head++
	if c.head == len(c.queue) {
		c.head = 0
		c.queue = c.queue[:0]
	}
	c.weight.Add(-h.weight)
	if h.into != nil {
		if h.state == stAbandoned {
			h.into = nil // its caller's Item is the caller's again
		} else {
			h.pinned = true // the reader writes into the caller's Item
		}
	}
	return h
}

// ensureSuccessor makes sure a request follows the held replies in the
// queue, so that its reply can confirm them: if none does, it queues a
// sync. The caller holds the read role.
func (c *conn) ensureSuccessor(deadline time.Time) error {
	c.wlock.Lock()
	c.mu.Lock()
	if c.head < len(c.queue) || c.isClosed() {
		c.mu.Unlock()
		c.wlock.Unlock()
		return nil
	}
	c.queueSyncLocked(time.Now().UnixNano())
	c.mu.Unlock()
	c.wbuf = appendSync(c.wbuf)
	c.flushBy = max(c.flushBy, deadline.UnixNano())
	c.handToWriter(true)
	return nil
}

// queueSyncLocked queues a sync that nobody waits for: a no-op whose reply
// confirms the replies before it. The caller holds the write slot and mu,
// and writes it with encodeSync: once mu is released the request is the
// connection's, and may be recycled at any time.
func (c *conn) queueSyncLocked(now int64) {
	n := getRequest(opNoop)
	n.sentAt, n.rx, n.state = now, c.rx.n.Load(), stAbandoned // recycled when answered
	c.queue = append(c.queue, n)
}

// fail closes the connection and completes every queued request with
// err. The first call wins; later ones do nothing.
func (c *conn) fail(cause error) {
	err := cause
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		// Report it as the network error it is, with the peer's address.
		err = &net.OpError{Op: "read", Net: "tcp", Addr: c.nc.RemoteAddr(), Err: errConnClosed}
	}
	if errors.Is(cause, ErrProtocol) {
		err = fmt.Errorf("connection closed after a protocol error: %w", err)
	}
	if c.meta && !c.answered.Load() && (errors.Is(cause, io.EOF) || errors.Is(cause, syscall.ECONNRESET) || errors.Is(cause, errResync)) {
		// Not a byte back, ever, for a meta command: the server does not
		// speak the meta protocol. Say so, not just "connection closed".
		err = fmt.Errorf("%w (%w)", err, errNoMeta)
	}
	ce := &connError{err: fmt.Errorf("memclient: %s: %w", c.srv.addr, err), cause: cause}

	var after []completion
	c.mu.Lock()
	if c.closed.Load() != nil {
		c.mu.Unlock()
		return
	}
	c.closed.Store(ce)
	close(c.quit)
	pending := len(c.queue) - c.head + len(c.held)
	for _, r := range c.held {
		r.err = ce.err // an error reply never confirmed
		after = append(after, completeLocked(r))
	}
	for _, r := range c.queue[c.head:] {
		r.err = ce.err
		after = append(after, completeLocked(r))
	}
	c.queue, c.head, c.held = nil, 0, nil
	c.mu.Unlock()

	c.nc.Close()
	for _, a := range after {
		a.finish()
	}
	// An idle connection the server closed (idle_timeout, a restart we
	// will notice on the next dial) cost no request: not a failure.
	if errors.Is(cause, errConnClosed) && pending == 0 {
		cause = errIdleClosed
	}
	c.srv.dropConn(c, cause)
}

// isClosed reports whether the connection has failed or been closed.
func (c *conn) isClosed() bool { return c.closed.Load() != nil }

// usable reports whether c can take a request. A connection idle for a
// while is checked without blocking: with no reader of its own, a close
// by the server would otherwise surface only as the failure of the next
// request.
func (c *conn) usable(now int64) bool {
	if c.isClosed() {
		return false
	}
	if now-c.lastSend.Load() < int64(idleCheckAfter) {
		return true
	}
	// Hold the write lock and the read role: nobody may queue a request
	// (whose reply could be mistaken for a close) or read while we look.
	if !c.wlock.TryLock() {
		return true // someone is queuing: it is in use
	}
	if c.writing || len(c.wbuf) > 0 {
		c.wlock.Unlock()
		return true
	}
	c.mu.Lock()
	idle := c.head == len(c.queue) && len(c.held) == 0 && !c.reading
	if idle {
		c.reading = true
	}
	c.mu.Unlock()
	ok := true
	if idle {
		// The last reader's deadline may have passed; an expired deadline
		// would fail the peek before it looks.
		c.setReadDeadline(time.Time{})
		if c.br.Buffered() == 0 && !unreadOrClosed(c.nc) {
			c.lastSend.Store(now) // alive; check again after another idle spell
		} else {
			ok = false // EOF, or bytes nobody asked for (TLS: a close alert)
		}
		c.mu.Lock()
		c.reading = false // nobody queued meanwhile: we hold the write lock
		c.mu.Unlock()
	}
	c.wlock.Unlock()
	if !ok {
		c.fail(errIdleClosed)
	}
	return ok
}

// silentSince reports whether the server has sent nothing since s: no
// byte received and none waiting in the socket. A caller that was paused
// (GC, CPU starvation) finds the replies that came meanwhile waiting, so
// its own late look does not make the server look stuck.
func (c *conn) silentSince(s sent) bool {
	if unreadOrClosed(c.nc) {
		return false
	}
	return c.rx.n.Load() == s.rx
}

func (c *conn) setReadDeadline(t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	c.rdl = unixNano(t)
}

// keepReadDeadline sets the read deadline to t unless the one set is
// already within a few milliseconds of it (see nearDeadline). The caller
// holds the read role.
func (c *conn) keepReadDeadline(t time.Time) {
	if !nearDeadline(c.rdl, t) {
		c.setReadDeadline(t)
	}
}

// nearDeadline reports whether the deadline set (unix nanos, 0 for none)
// is close enough to t to keep: callers in a burst have nearly the same
// deadline, and moving it is a runtime timer update. One a little early
// at worst wakes the reader, who sets its own and reads on; one a little
// late lets a call overrun by under a millisecond.
func nearDeadline(set int64, t time.Time) bool {
	want := unixNano(t)
	return set != 0 && want != 0 && set >= want-int64(2*time.Millisecond) && set <= want+int64(time.Millisecond)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// ping sends a no-op (meta mn, text version) and waits for its answer
// until ctx ends or deadline.
func (c *conn) ping(ctx context.Context, deadline time.Time) error {
	r := getRequest(opNoop)
	if c.srv.cfg.BehindProxy {
		// A proxy may pass neither mn nor version; every one passes a get.
		r.op, r.key = opGet, probeKey
	}
	if _, err := c.send(ctx, time.Now(), deadline, r); err != nil {
		putRequest(r)
		return err
	}
	abandoned, err := c.await(ctx, deadline, r)
	if abandoned {
		return err
	}
	err = r.err
	putRequest(r)
	if errors.Is(err, ErrCacheMiss) {
		err = nil // an answer is all a probe asks
	}
	return err
}

// probeKey is the key a probe gets behind a proxy.
const probeKey = "memkit.probe"
