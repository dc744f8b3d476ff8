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

// A conn is one pipelined connection to a server. It has no goroutine of
// its own: callers write their requests and read replies themselves.
//
// # Who owns what
//
// Writing. The write slot (wmu) admits one writer at a time; it owns bw,
// the write deadline and the opaque counter. Under the slot a writer
// appends its requests to the queue (under mu) and encodes them, so queue
// order is wire order. A writer that knows others are about to write
// leaves the flush to the last of them (writers counts callers in send;
// one waiting for the slot always gets it, so the flush never goes
// undone). A writer waiting for the slot while the holder is blocked in
// write(2) (a server that stopped reading) brings the socket's write
// deadline forward to its own, so that it waits no longer than that: the
// write fails, and the connection with it.
//
// Reading. At most one caller holds the read role (reading, under mu); it
// owns br and the read deadline, pops replies' requests off the queue in
// order, decodes each reply into its request, checks that the reply
// belongs to it (meta: the O token; text: the key and the kind of reply),
// and completes it. It reads until its own request is complete, then hands
// the role to the newest caller parked in await, or frees it.
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
// Failing. fail closes the socket, marks the connection closed and
// completes every queued request with the reason; the reader, if any,
// finds its read broken and completes the request it had popped.
type conn struct {
	srv  *server
	nc   net.Conn
	meta bool // the wire format: meta or text
	rx   rxCounter

	// Guarded by the write slot.
	wmu     sync.Mutex   // the write slot
	writers atomic.Int32 // callers in send, holding the slot or about to
	// wdlMin is the earliest write deadline a waiter asked for, unix nanos
	// (0: none): the socket's write deadline is no later than it.
	wdlMin  atomic.Int64
	bw      *bufio.Writer
	wdl     int64  // write deadline set, unix nanos; 0: none
	flushBy int64  // the latest deadline of callers whose bytes are in bw
	opaque  uint32 // the last O token sent

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
		bw:   bufio.NewWriterSize(nc, 16<<10),
	}
	c.rx.nc = nc
	c.br = bufio.NewReaderSize(&c.rx, 16<<10)
	c.rd = replyReader{br: c.br, addr: s.addr, maxItem: s.cfg.maxItemSize()}
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

// send queues reqs and writes them. It returns an error, having queued
// none of them, if the write slot is not obtained in time or the
// connection is closed. Once queued, a write error fails the connection
// and so the requests; their callers learn it from await.
func (c *conn) send(ctx context.Context, now, deadline time.Time, reqs ...*request) (sent, error) {
	c.writers.Add(1)
	if !c.wmu.TryLock() {
		c.waitWriteSlot(deadline)
		if err := ctx.Err(); err != nil || !time.Now().Before(deadline) {
			c.writers.Add(-1)
			c.releaseWrite() // the flush may have been left to us
			if err != nil {
				return sent{}, ctxError(c.srv.addr, err)
			}
			return sent{}, deadlineError(ctx, deadline, c.srv.addr)
		}
	}

	s := sent{at: now.UnixNano(), rx: c.rx.n.Load()}
	var w int64
	c.mu.Lock()
	if ce := c.closed.Load(); ce != nil {
		c.mu.Unlock()
		c.writers.Add(-1)
		c.releaseWrite()
		return sent{}, ce.err
	}
	busy := c.head < len(c.queue) || c.reading
	needSync := false
	for _, r := range reqs {
		if c.meta {
			if r.usesOpaque() {
				c.opaque++
				r.opaque = c.opaque
			}
			needSync = needSync || r.needsSync()
		}
		r.sentAt, r.rx, r.state = s.at, s.rx, stSent
		r.weight = r.cost()
		w += r.weight
		c.queue = append(c.queue, r)
	}
	if needSync {
		// Replies without a token (a multi-key gets, stats) are
		// confirmed by the sync's reply after them.
		c.queueSyncLocked(s.at)
	}
	c.mu.Unlock()
	c.weight.Add(w)
	c.lastSend.Store(s.at)

	// The flush goes under the latest deadline of the callers whose bytes
	// it carries; a waiter for the slot may bring it forward.
	c.flushBy = max(c.flushBy, deadline.UnixNano())
	var err error
	for _, r := range reqs {
		if err = c.encode(r); err != nil {
			break
		}
	}
	if needSync && err == nil {
		encodeSync(c.bw)
	}
	if busy && err == nil {
		// Others are active on this connection: let the runnable ones
		// queue theirs behind ours, and the last of them flush the lot in
		// one write(2). On the 2-core bench this took writes per Get at 64
		// goroutines from 0.8 to 0.1 and memcached's CPU per Get from
		// 4.6µs to 1.5µs. A lone caller flushes at once.
		runtime.Gosched()
	}
	c.writers.Add(-1)
	if err != nil {
		c.fail(err) // bw keeps the error: the connection cannot be written again
	}
	c.releaseWrite()
	return s, nil
}

func (c *conn) encode(r *request) error {
	if c.meta {
		return encodeMeta(c.bw, r)
	}
	return encodeText(c.bw, r)
}

// waitWriteSlot takes the write slot, bringing the write deadline forward
// to deadline first: a holder blocked in write(2) then fails at deadline
// rather than at its own, later one. The deadline wanted for the
// callers' bytes is restored before the next flush (flushDeadline).
func (c *conn) waitWriteSlot(deadline time.Time) {
	want := deadline.UnixNano()
	for {
		cur := c.wdlMin.Load()
		if cur != 0 && cur <= want {
			break
		}
		if c.wdlMin.CompareAndSwap(cur, want) {
			_ = c.nc.SetWriteDeadline(deadline)
			break
		}
	}
	c.wmu.Lock()
}

// releaseWrite releases the write slot, flushing the buffer unless another
// writer has announced itself and so will flush it: it is waiting for the
// slot or about to, and will get it. A failed flush fails the connection.
// The caller must hold the slot.
func (c *conn) releaseWrite() error {
	var err error
	if c.writers.Load() == 0 && c.bw.Buffered() > 0 {
		c.flushDeadline()
		if err = c.bw.Flush(); err != nil {
			c.fail(err)
		} else {
			c.flushBy = 0
		}
	}
	c.wmu.Unlock()
	return err
}

// flushDeadline sets the write deadline for a flush: the latest deadline
// of the callers whose bytes are buffered, no earlier than a moment from
// now (their callers may be gone; the bytes of others may follow), unless
// a waiter for the slot brought it forward. The caller holds the slot.
func (c *conn) flushDeadline() {
	now := time.Now().UnixNano()
	d := max(c.flushBy, now+int64(stuckAfter))
	if m := c.wdlMin.Load(); m != 0 {
		if m < d && m > now {
			return // a waiter's earlier deadline stands
		}
		if c.wdlMin.CompareAndSwap(m, 0) {
			c.wdl = 0 // a waiter moved the socket's deadline: set ours again
		}
	}
	if !nearDeadline(c.wdl, time.Unix(0, d)) {
		_ = c.nc.SetWriteDeadline(time.Unix(0, d))
		c.wdl = d
	}
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
// sync. It fails only when the caller's deadline
// passes first, leaving the held replies to the next reader. The caller
// holds the read role.
func (c *conn) ensureSuccessor(deadline time.Time) error {
	for {
		c.mu.Lock()
		has := c.head < len(c.queue)
		c.mu.Unlock()
		if has {
			return nil
		}
		if !c.wmu.TryLock() {
			// A writer holds the slot. If it has queued nothing after the
			// held reply yet, it soon will, or will let go.
			if !time.Now().Before(deadline) {
				return &timeoutError{addr: c.srv.addr}
			}
			runtime.Gosched()
			continue
		}
		c.mu.Lock()
		if c.isClosed() {
			c.mu.Unlock()
			c.releaseWrite()
			return nil // the held requests were failed with the connection
		}
		c.queueSyncLocked(time.Now().UnixNano())
		c.mu.Unlock()
		c.flushBy = max(c.flushBy, deadline.UnixNano())
		encodeSync(c.bw)
		c.releaseWrite()
		return nil
	}
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
	// Hold the write slot and the read role: nobody may queue a request
	// (whose reply could be mistaken for a close) or read while we look.
	if !c.wmu.TryLock() {
		return true // someone is writing: it is in use
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
		if c.br.Buffered() == 0 && !peerClosed(c.nc) {
			c.lastSend.Store(now) // alive; check again after another idle spell
		} else {
			ok = false // EOF, or bytes nobody asked for (TLS: a close alert)
		}
		c.mu.Lock()
		c.reading = false // nobody queued meanwhile: we hold the write slot
		c.mu.Unlock()
	}
	c.releaseWrite()
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
	if pendingBytes(c.nc) {
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
