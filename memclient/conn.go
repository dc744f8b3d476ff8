package memclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// conn is one pipelined connection to a server. It has no goroutines of its
// own. Callers write their own requests (so nothing they pass is retained
// after the write) while holding the write slot; a caller that sees another
// writer queued behind it leaves the flush to that writer, so concurrent
// requests go out in batches. Replies come back in order, and are read by
// whichever waiting caller holds the read slot: it hands each reply to its
// request until its own arrives, then gives the slot to the next waiter. A
// lone caller thus reads its own reply with no goroutine hand-off.
type conn struct {
	srv   *server
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer // guarded by the write slot
	proto protocol

	wsem    chan struct{} // write slot, capacity 1
	writers atomic.Int32  // callers announced for the write slot or holding it
	rsem    chan struct{} // read slot, capacity 1; its holder owns br

	mu       sync.Mutex // protects inflight, head, closed, err
	inflight []*request // written, awaiting replies, in order
	head     int
	closed   bool
	err      error

	replies  atomic.Uint64 // replies read so far
	lastSend atomic.Int64  // unix nanos of the last write
	wdl      int64         // write deadline set, unix nanos; guarded by the write slot
	rdl      int64         // read deadline set, unix nanos (0: none); guarded by the read slot
	weight   atomic.Int64  // sum of the weights of requests in flight
	dead     atomic.Bool   // closed, readable without the lock
}

// cancelPoll is how often a caller blocked reading replies for a
// cancellable context checks whether it was cancelled.
const cancelPoll = 20 * time.Millisecond

// idleCheckAfter is how long a connection may sit unused before it is
// checked for a close by the server (a restart, idle_timeout) before use.
const idleCheckAfter = time.Second

// usable reports whether c can take a request. A connection idle for a
// while is checked without blocking: with no reader of its own, a close
// by the server would otherwise surface only as the failure of the next
// request.
func (c *conn) usable(now int64) bool {
	if c.dead.Load() {
		return false
	}
	if now-c.lastSend.Load() < int64(idleCheckAfter) {
		return true
	}
	// Hold both slots: nobody may write a request (whose reply could then
	// be mistaken for a close) or read while we look.
	select {
	case c.wsem <- struct{}{}:
	default:
		return true // someone is writing: it is in use
	}
	defer c.finishWrite() // flushes what a writer that gave up left to us
	select {
	case c.rsem <- struct{}{}:
	default:
		return true // someone is reading: it is in use
	}
	defer func() { <-c.rsem }()
	c.mu.Lock()
	busy := c.head < len(c.inflight)
	c.mu.Unlock()
	if busy {
		return true
	}
	// The last reader's deadline may have passed; an expired deadline
	// would fail the peek before it looks.
	c.setReadDeadline(time.Time{})
	if c.br.Buffered() == 0 && !peerClosed(c.nc) {
		c.lastSend.Store(now) // alive; check again after another idle spell
		return true
	}
	// EOF, or bytes nobody asked for (for TLS: the server's close alert).
	c.fail(errIdleClosed)
	return false
}

var (
	errConnClosed = errors.New("connection closed")
	errIdleClosed = errors.New("idle connection closed by the server")
)

// dial connects to the server, runs the TLS handshake and auth, and starts
// the reader.
func (s *server) dial(ctx context.Context) (*conn, error) {
	cfg := s.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.dialTimeout())
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		tc := cfg.TLS
		if tc.ServerName == "" {
			tc = tc.Clone()
			if host, _, ok := splitHostPort(s.addr); ok {
				tc.ServerName = host
			}
		}
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		nc = tlsConn
	}
	c := &conn{
		srv:   s,
		nc:    nc,
		br:    bufio.NewReaderSize(nc, 16<<10),
		bw:    bufio.NewWriterSize(nc, 16<<10),
		proto: protocolFor(cfg.Protocol),
		wsem:  make(chan struct{}, 1),
		rsem:  make(chan struct{}, 1),
	}
	if cfg.Username != "" {
		if err := c.auth(dctx, cfg.Username, cfg.Password); err != nil {
			nc.Close()
			return nil, err
		}
	}
	c.lastSend.Store(time.Now().UnixNano())
	return c, nil
}

// auth runs memcached's ASCII authentication: a set whose data is
// "user pass", answered STORED.
func (c *conn) auth(ctx context.Context, user, pass string) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(time.Time{})
	}
	data := user + " " + pass
	fmt.Fprintf(c.bw, "set auth 0 0 %d\r\n%s\r\n", len(data), data)
	if err := c.bw.Flush(); err != nil {
		return err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if string(line) != "STORED\r\n" {
		return fmt.Errorf("%w: %s: %s", ErrAuth, c.srv.addr, trimCRLF(line))
	}
	return nil
}

// send writes reqs in order. It returns an error, having sent nothing of
// that call's requests that the reader will answer, if the write slot is
// not obtained in time or the connection is closed. A write error closes
// the connection and fails every request in flight, reqs included.
func (c *conn) send(ctx context.Context, t, deadline time.Time, timer *time.Timer, reqs ...*request) error {
	c.writers.Add(1)
	select {
	case c.wsem <- struct{}{}:
	default:
		var timeout <-chan time.Time
		if !deadline.IsZero() {
			timer.Reset(time.Until(deadline))
			timeout = timer.C
		}
		var err error
		select {
		case c.wsem <- struct{}{}:
		case <-ctx.Done():
			err = ctxError(c.srv.addr, ctx.Err())
		case <-timeout:
			err = deadlineError(ctx, deadline, c.srv.addr)
		}
		timer.Stop()
		if err != nil {
			c.writers.Add(-1)
			// We may have been the writer others left their flush to.
			select {
			case c.wsem <- struct{}{}:
				c.finishWrite()
			default:
			}
			return err
		}
	}

	c.mu.Lock()
	if c.closed {
		err := c.err
		c.mu.Unlock()
		c.writers.Add(-1)
		c.finishWrite()
		return err
	}
	now := t.UnixNano()
	c.lastSend.Store(now)
	busy := c.head < len(c.inflight)
	seen := c.replies.Load()
	var w int64
	for _, r := range reqs {
		r.sentAt = now
		r.seen = seen
		r.weight = r.cost()
		w += r.weight
		c.inflight = append(c.inflight, r)
	}
	c.weight.Add(w)
	c.mu.Unlock()

	// A write blocked past this caller's deadline (a server that stopped
	// reading, its socket buffers full) fails the connection rather than
	// hold the caller.
	c.keepWriteDeadline(deadline)
	var err error
	for _, r := range reqs {
		if err = c.proto.encode(c.bw, r); err != nil {
			break
		}
	}
	if busy && err == nil {
		// Requests are in flight, so others are active on this
		// connection: let the runnable ones queue theirs behind ours, and
		// the last of them flush the lot in one write(2). On the 2-core
		// bench this took writes per Get at 64 goroutines from 0.8 to 0.1
		// and memcached's CPU per Get from 4.6µs to 1.5µs. A lone caller
		// (nothing in flight) flushes at once.
		runtime.Gosched()
	}
	c.writers.Add(-1)
	if ferr := c.finishWrite(); err == nil {
		err = ferr
	}
	if err != nil {
		c.fail(err)
		// The requests were failed by fail; their callers learn it from wait.
	}
	return nil
}

// finishWrite releases the write slot, flushing the buffer unless another
// writer has announced itself and so will flush it (or, if it gives up,
// take the slot back and flush). The caller must hold the slot.
func (c *conn) finishWrite() error {
	var err error
	for {
		if c.writers.Load() == 0 {
			if c.bw.Buffered() > 0 {
				err = c.bw.Flush()
			}
			<-c.wsem
			return err
		}
		<-c.wsem
		if c.writers.Load() != 0 {
			return err
		}
		// The writer we counted on gave up between our check and our
		// release: take the slot back and flush ourselves, unless a new
		// holder already has it (it will run this same check).
		select {
		case c.wsem <- struct{}{}:
		default:
			return err
		}
	}
}

// await waits for r's reply, reading replies itself whenever the read
// slot is free. On timeout or cancellation it abandons r (a later reader
// drops its reply) and reports abandoned; otherwise the caller owns r.
func (c *conn) await(ctx context.Context, deadline time.Time, r *request) (abandoned bool, err error) {
	select {
	case <-r.done:
		return false, nil
	case c.rsem <- struct{}{}:
		return c.readFor(ctx, deadline, r)
	default:
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		r.timer.Reset(time.Until(deadline))
		timeout = r.timer.C
	}
	select {
	case <-r.done:
		r.timer.Stop()
		return false, nil
	case c.rsem <- struct{}{}:
		r.timer.Stop()
		return c.readFor(ctx, deadline, r)
	case <-ctx.Done():
		err = ctxError(c.srv.addr, ctx.Err())
	case <-timeout:
		err = deadlineError(ctx, deadline, c.srv.addr)
	}
	r.timer.Stop()
	return r.abandon(err)
}

// readFor reads replies, holding the read slot, until r is answered or
// the deadline or ctx ends; then it releases the slot to the next waiter.
func (c *conn) readFor(ctx context.Context, deadline time.Time, r *request) (bool, error) {
	err := c.readUntil(ctx, deadline, r)
	<-c.rsem
	if err != nil {
		return r.abandon(err)
	}
	<-r.done // answered (or failed) by us or by fail
	return false, nil
}

// readUntil reads and dispatches replies until r is no longer pending. It
// returns an error only for a timeout or cancellation that left the stream
// intact (no byte of a reply consumed); any other failure closes the
// connection, which fails r.
func (c *conn) readUntil(ctx context.Context, deadline time.Time, r *request) error {
	cancellable := ctx.Done() != nil
	c.keepReadDeadline(deadline)
	sliced := false // the read deadline is a cancelPoll slice, not deadline
	for r.state.Load() == reqPending {
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
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				if err := ctx.Err(); err != nil {
					return ctxError(c.srv.addr, err)
				}
				if !time.Now().Before(deadline) {
					return deadlineError(ctx, deadline, c.srv.addr)
				}
				if !sliced {
					c.setReadDeadline(deadline)
				}
				continue
			}
			c.fail(err)
			return nil
		}
		if sliced {
			// A reply has begun: read it whole under the real deadline.
			c.setReadDeadline(deadline)
			sliced = false
		}
		c.mu.Lock()
		if c.head == len(c.inflight) {
			c.mu.Unlock()
			c.fail(errors.New("unsolicited data from server"))
			return nil
		}
		h := c.inflight[c.head]
		c.inflight[c.head] = nil
		c.head++
		if c.head == len(c.inflight) {
			c.head = 0
			c.inflight = c.inflight[:0]
		}
		c.mu.Unlock()

		if err := c.proto.decode(c.br, h, c.srv.addr); err != nil {
			// The reply cannot be delimited (or was cut by a timeout
			// midway): the stream is lost.
			if h.err == nil {
				h.err = fmt.Errorf("memclient: %s: %w", c.srv.addr, err)
			}
			h.complete()
			c.fail(err)
			return nil
		}
		c.replies.Add(1)
		c.weight.Add(-h.weight)
		c.srv.noteSuccess()
		h.complete()
	}
	return nil
}

// fail closes the connection and fails every request in flight with err.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.dead.Store(true)
	cause := err
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		// Report it as the network error it is, with the peer's address.
		err = &net.OpError{Op: "read", Net: "tcp", Addr: c.nc.RemoteAddr(), Err: errConnClosed}
	}
	c.err = fmt.Errorf("memclient: %s: %w", c.srv.addr, err)
	pending := c.inflight[c.head:]
	c.inflight, c.head = nil, 0
	c.mu.Unlock()

	c.nc.Close()
	for _, r := range pending {
		r.err = c.err
		r.complete()
	}
	// An idle connection the server closed (idle_timeout, a restart we
	// will notice on the next dial) cost no request: not a failure.
	if errors.Is(err, errConnClosed) && len(pending) == 0 {
		cause = errIdleClosed
	}
	c.srv.dropConn(c, cause)
}

// setReadDeadline sets the read deadline. The caller holds the read slot.
func (c *conn) setReadDeadline(t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	if t.IsZero() {
		c.rdl = 0
	} else {
		c.rdl = t.UnixNano()
	}
}

// keepWriteDeadline sets the write deadline to d unless the one set is
// already within a few milliseconds of it, as keepReadDeadline. The caller
// holds the write slot.
func (c *conn) keepWriteDeadline(d time.Time) {
	want := d.UnixNano()
	if c.wdl != 0 && c.wdl >= want-int64(2*time.Millisecond) && c.wdl <= want+int64(time.Millisecond) {
		return
	}
	_ = c.nc.SetWriteDeadline(d)
	c.wdl = want
}

// keepReadDeadline sets the read deadline to d unless the one set is
// already within a few milliseconds of it: readers in a burst have nearly
// the same deadline, and moving it is a runtime timer update. One a little
// early at worst wakes the reader, who sets its own and reads on; one a
// little late lets it overrun by under a millisecond. The caller holds the
// read slot.
func (c *conn) keepReadDeadline(d time.Time) {
	want := d.UnixNano()
	if c.rdl != 0 && c.rdl >= want-int64(2*time.Millisecond) && c.rdl <= want+int64(time.Millisecond) {
		return
	}
	c.setReadDeadline(d)
}

func trimCRLF(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return string(b)
}
