package hostile

import (
	"bufio"
	"net"
	"strings"
	"time"
)

// drainLimit bounds how long Reset waits for the client to acknowledge
// what was written before it.
const drainLimit = time.Second

// Reply is how a Handler answers one request. Writes are buffered and sent
// when the handler returns, or at Flush. A Reply is valid only during the
// handler call and is not safe for concurrent use.
type Reply struct {
	c   *serverConn
	bw  *bufio.Writer
	req Request

	ended   bool // Close or Reset: the connection is gone
	hang    bool
	endless bool
}

// Write buffers b to be sent to the client.
func (w *Reply) Write(b []byte) (int, error) {
	if w.ended {
		return 0, net.ErrClosed
	}
	return w.bw.Write(b)
}

// WriteString buffers s to be sent to the client.
func (w *Reply) WriteString(s string) (int, error) {
	if w.ended {
		return 0, net.ErrClosed
	}
	return w.bw.WriteString(s)
}

// WriteCorrect writes the request's correct reply, and for quit closes the
// connection, as memcached does.
func (w *Reply) WriteCorrect() {
	_, _ = w.Write(w.req.Correct)
	if strings.TrimSpace(w.req.Line) == "quit" {
		w.Close()
	}
}

// Flush sends what was written so far, so that a reply can arrive in
// pieces.
func (w *Reply) Flush() error {
	if w.ended {
		return net.ErrClosed
	}
	return w.bw.Flush()
}

// Close sends what was written and closes the connection now (a FIN: the
// client reads EOF).
func (w *Reply) Close() {
	if w.ended {
		return
	}
	_ = w.bw.Flush()
	w.ended = true
	w.c.close(false)
}

// Reset sends what was written and resets the connection (SO_LINGER 0,
// an RST: the client reads ECONNRESET). On Linux it first waits, up to a
// second, until the client's kernel has acknowledged what was sent, so that
// the reset cannot overtake it.
func (w *Reply) Reset() {
	if w.ended {
		return
	}
	_ = w.bw.Flush()
	w.ended = true
	if tc, ok := w.c.nc.(*net.TCPConn); ok {
		drain(tc, w.Done())
	}
	w.c.close(true)
}

// Hang makes the server answer nothing more on this connection, after
// what was written, and keep it open: later requests are still read, and
// recorded by Server.Requests, but the handler is not called for them.
func (w *Reply) Hang() { w.hang = true }

// Endless makes the server, once the handler returns, send what was
// written and then junk without end (no "\r" or "\n", so a line never
// ends) until the client closes the connection or the server closes.
func (w *Reply) Endless() { w.endless = true }

// Done returns a channel that is closed when the server is closing; a
// handler that waits for something must also wait on it.
func (w *Reply) Done() <-chan struct{} { return w.c.s.done }

// drain waits, up to drainLimit, until the peer has acknowledged every byte
// written to c, or done is closed.
func drain(c *net.TCPConn, done <-chan struct{}) {
	deadline := time.Now().Add(drainLimit)
	for {
		n, ok := unsent(c)
		if !ok || n == 0 || time.Now().After(deadline) {
			return
		}
		t := time.NewTimer(time.Millisecond)
		select {
		case <-t.C:
		case <-done:
			t.Stop()
			return
		}
	}
}
