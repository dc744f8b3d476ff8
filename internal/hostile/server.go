// Package hostile is a fake memcached server for tests, for the faults a
// real memcached cannot be made to produce: garbage, truncated, oversized,
// endless, missing, extra or late replies, silence, and resets.
//
// A Server listens on a free 127.0.0.1 port and accepts any number of
// connections. It reads requests one at a time (a line, and the data block
// of a storage command), applies each to a tiny in-memory store, and then
// calls the test's Handler, which writes whatever it likes through a Reply.
// Request.Correct holds the reply memcached would have given, so a handler
// can mix good and bad replies:
//
//	s := hostile.Start(t, func(req hostile.Request, w *hostile.Reply) {
//		w.WriteCorrect()
//		if req.Conn == 0 && req.N == 4 {
//			w.WriteCorrect() // the fifth reply comes twice
//		}
//	})
//
// Each connection costs one goroutine, and the server one more to accept;
// Close ends them all before it returns.
//
// For a connect that hangs, ListenFull returns an address whose accept
// queue is full.
package hostile

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	// MaxLine is the longest request line kept; the rest of a longer line
	// is read and dropped.
	MaxLine = 64 << 10
	// MaxValue is the largest value stored, memcached's default item size
	// (-I 1m; memcached's own limit is a little lower, as it counts the
	// item header). A larger data block is read and dropped and answered
	// with "SERVER_ERROR object too large for cache".
	MaxValue = 1 << 20
)

// Request is one request a Server read.
type Request struct {
	// Line is the request line without its "\r\n".
	Line string
	// Data is the data block of a storage command (set, add, replace,
	// append, prepend, cas, ms) without its "\r\n"; nil for other commands,
	// and for a block over MaxValue.
	Data []byte
	// Conn is the index of the connection, from 0, in the order the server
	// accepted them.
	Conn int
	// N is the index of the request on its connection, from 0.
	N int
	// Correct is the reply a memcached 1.6.18 holding what this server
	// was sent so far would give: a value set on this server comes back,
	// CAS values count up, "O" and "k" are echoed as memcached echoes them.
	// It is empty when memcached would say nothing (noreply, q) or close
	// the connection (quit).
	//
	// The server applies every request to its store when it reads it,
	// before the handler runs and whatever the handler answers, like a
	// server that did the work and then lost or garbled the reply. The
	// store keeps TTLs in whole seconds, never evicts, flushes at once
	// whatever flush_all's delay, and answers me (debug) only roughly.
	Correct []byte
}

// Handler answers one request by writing to w. It runs on the goroutine of
// the request's connection: the next request on that connection is read
// only when it returns. A handler that blocks must return once w.Done() is
// closed.
type Handler func(req Request, w *Reply)

// Correctly is a Handler that answers every request as memcached would.
func Correctly(_ Request, w *Reply) { w.WriteCorrect() }

// Server is a fake memcached server. Its methods are safe for concurrent
// use; the Handler is called concurrently for different connections.
type Server struct {
	ln   net.Listener
	h    Handler
	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	mu sync.Mutex // protects the fields below
	// conns are the open connections.
	conns    map[*serverConn]struct{}
	accepted int
	closed   bool
	reqs     []Request
	store    *store
}

// Start starts a server that answers with h; it is closed when the test
// ends.
func Start(t testing.TB, h Handler) *Server {
	t.Helper()
	s, err := New(h)
	if err != nil {
		t.Fatalf("hostile: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a server that answers with h, for TestMain and examples. The
// caller must Close it.
func New(h Handler) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		ln:    ln,
		h:     h,
		done:  make(chan struct{}),
		conns: make(map[*serverConn]struct{}),
		store: newStore(),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr returns the "127.0.0.1:port" the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: it closes the listener and every connection,
// closes the channel Reply.Done returns, and waits until every goroutine
// of the server, handlers included, has returned. Calling it again does
// nothing.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := make([]*serverConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	close(s.done)
	_ = s.ln.Close()
	for _, c := range conns {
		_ = c.nc.Close()
	}
	s.wg.Wait()
}

// Requests returns a copy of every request received so far, in the order
// the server read them.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		r.Data = bytes.Clone(r.Data)
		r.Correct = bytes.Clone(r.Correct)
		out[i] = r
	}
	return out
}

// Conns returns the number of open connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-s.done:
				return
			case <-time.After(5 * time.Millisecond): // out of descriptors and the like
			}
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		c := &serverConn{s: s, nc: nc, index: s.accepted}
		s.accepted++
		s.conns[c] = struct{}{}
		s.store.conns, s.store.totalConns = len(s.conns), s.accepted
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// serverConn is one client connection; serve owns it.
type serverConn struct {
	s     *Server
	nc    net.Conn
	index int
}

// serve reads requests and calls the handler until the connection ends.
func (c *serverConn) serve() {
	defer c.s.wg.Done()
	defer c.close(false)
	r := bufio.NewReaderSize(c.nc, 64<<10)
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	hung := false
	for n := 0; ; n++ {
		line, data, problem, err := readRequest(r)
		if err != nil {
			return
		}
		req := c.s.record(Request{Line: line, Data: data, Conn: c.index, N: n}, problem)
		if hung {
			continue // keep reading, so the connection ends when the client's does
		}
		w := &Reply{c: c, bw: bw, req: req}
		c.s.h(req, w)
		if w.ended {
			return
		}
		_ = bw.Flush()
		switch {
		case w.endless:
			c.endless()
			return
		case w.hang:
			hung = true
		}
	}
}

// record applies req to the store, fills req.Correct, and logs req.
func (s *Server) record(req Request, problem string) Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	req.Correct = s.store.exec(req.Line, req.Data, problem)
	s.reqs = append(s.reqs, req)
	req.Data = bytes.Clone(req.Data) // the handler's copy, which it may change
	req.Correct = bytes.Clone(req.Correct)
	return req
}

// close closes the connection, with a reset when rst is set.
func (c *serverConn) close(rst bool) {
	if tc, ok := c.nc.(*net.TCPConn); ok && rst {
		_ = tc.SetLinger(0)
	}
	_ = c.nc.Close()
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.store.conns = len(c.s.conns)
	c.s.mu.Unlock()
}

// junk is what Endless streams: no "\r" or "\n", so it never ends a line.
var junk = bytes.Repeat([]byte("endless-junk-"), 2520)

// endless writes junk until a write fails: the client closed, or the
// server did.
func (c *serverConn) endless() {
	for {
		if _, err := c.nc.Write(junk); err != nil {
			return
		}
	}
}

// readRequest reads one request: a line and, for a storage command whose
// line memcached would accept, its data block. problem is the error
// memcached gives for a bad block ("" when it is fine).
func readRequest(r *bufio.Reader) (line string, data []byte, problem string, err error) {
	line, err = readLine(r)
	if err != nil {
		return "", nil, "", err
	}
	size, ok := dataSize(line)
	if !ok {
		return line, nil, "", nil
	}
	if size > MaxValue {
		if _, err := io.CopyN(io.Discard, r, size+2); err != nil {
			return "", nil, "", err
		}
		return line, nil, "SERVER_ERROR object too large for cache", nil
	}
	block := make([]byte, size+2)
	if _, err := io.ReadFull(r, block); err != nil {
		return "", nil, "", err
	}
	if !bytes.HasSuffix(block, []byte("\r\n")) {
		problem = "CLIENT_ERROR bad data chunk"
	}
	return line, block[:size], problem, nil
}

// readLine reads a line up to "\n", keeping at most MaxLine bytes of it,
// and returns it without "\r\n".
func readLine(r *bufio.Reader) (string, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if room := MaxLine - len(line); room > 0 {
			line = append(line, chunk[:min(len(chunk), room)]...)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	s := strings.TrimSuffix(string(line), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// dataSize returns the size of the data block that follows a storage
// command line, and false when memcached would not read one (another
// command, or a line it rejects before reading the block).
func dataSize(line string) (int64, bool) {
	f := strings.Fields(line)
	if len(f) == 0 || (len(f) > 1 && len(f[1]) > maxKey) {
		return 0, false
	}
	switch f[0] {
	case "set", "add", "replace", "append", "prepend", "cas":
		if len(f) < 5 || (f[0] == "cas" && len(f) < 6) {
			return 0, false
		}
		if _, ok := parseFlags(f[2]); !ok {
			return 0, false
		}
		if _, err := strconv.ParseInt(f[3], 10, 32); err != nil {
			return 0, false
		}
		if f[0] == "cas" {
			if _, err := strconv.ParseUint(f[5], 10, 64); err != nil {
				return 0, false
			}
		}
		return parseLen(f[4])
	case "ms":
		if len(f) < 3 {
			return 0, false
		}
		return parseLen(f[2])
	}
	return 0, false
}

func parseLen(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
