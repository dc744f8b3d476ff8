package memclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
)

// What both wire formats share: reading lines, numbers and values, error
// lines, and the commands whose replies are the same in both.

var (
	errBadReply = fmt.Errorf("%w: malformed reply", ErrProtocol)
	// errResync closes the connection after an error reply that may have
	// left the server reading our data as commands.
	errResync = errors.New("error reply; reconnecting to stay in sync")
)

// replyReader decodes replies from a connection's read buffer. Its user
// holds the connection's read role.
type replyReader struct {
	br      *bufio.Reader
	addr    string
	maxItem int // Config.MaxItemSize: larger values are not kept
	// valueSize, when set, is the server's running estimate of the size
	// of the values its Gets return (see server.valueSize).
	valueSize *atomic.Int64
}

// noteValue moves the running estimate of value sizes an eighth of the
// way towards n. Values of one size leave it unchanged, unwritten.
func (rr *replyReader) noteValue(n uint64) {
	if rr.valueSize == nil {
		return
	}
	old := rr.valueSize.Load()
	if est := old + (int64(n)-old)/8; est != old {
		rr.valueSize.Store(est) // a lost update between readers is no matter: it is an estimate
	}
}

// discardCap is the largest value a reply may announce and still be read
// past (and dropped) to keep the connection: another client may store
// items bigger than our MaxItemSize on a server started with a larger -I.
// Above it the announcement is taken as a broken stream.
func (rr *replyReader) discardCap() uint64 {
	return uint64(max(16<<20, 4*rr.maxItem))
}

// value reads a value of n bytes and the CRLF after it. A value larger
// than maxItem is read through the buffer and dropped, and tooBig says so:
// only its request fails. err means the stream is lost.
func (rr *replyReader) value(n uint64) (v []byte, tooBig, err error) {
	if n > uint64(rr.maxItem) {
		if n > rr.discardCap() {
			return nil, nil, fmt.Errorf("%w: the server announced a value of %d bytes, over %d (MaxItemSize %d)", ErrValueTooLarge, n, rr.discardCap(), rr.maxItem)
		}
		if _, err := rr.br.Discard(int(n)); err != nil {
			return nil, nil, noEOF(err)
		}
		if err := rr.crlf(); err != nil {
			return nil, nil, err
		}
		return nil, fmt.Errorf("%w: %s: a value of %d bytes (MaxItemSize %d)", ErrValueTooLarge, rr.addr, n, rr.maxItem), nil
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(rr.br, buf); err != nil {
		return nil, nil, noEOF(err)
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return nil, nil, fmt.Errorf("%w: value not ended by CRLF", errBadReply)
	}
	return buf[:n:n], nil, nil
}

func (rr *replyReader) crlf() error {
	b, err := rr.br.Peek(2) // a local array passed to io.ReadFull would escape
	if err != nil {
		return noEOF(err)
	}
	if b[0] != '\r' || b[1] != '\n' {
		return fmt.Errorf("%w: value not ended by CRLF", errBadReply)
	}
	_, _ = rr.br.Discard(2)
	return nil
}

// noEOF reports a stream that ended inside a reply as such.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// line returns the next line without CRLF. The slice is valid until the
// next read.
func (rr *replyReader) line() ([]byte, error) {
	line, err := rr.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line too long", errBadReply)
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: line not ended by CRLF", errBadReply)
	}
	return line[:len(line)-2], nil
}

// errorReply maps an error line to an error, or returns nil if line is not
// an error line. resync tells whether the stream may be out of step.
func (rr *replyReader) errorReply(line []byte) (err error, resync bool) {
	switch {
	case bytes.Equal(line, []byte("ERROR")):
		return &ServerError{Addr: rr.addr, Message: "ERROR"}, true
	case bytes.HasPrefix(line, []byte("CLIENT_ERROR")), bytes.HasPrefix(line, []byte("SERVER_ERROR")):
		msg := string(line)
		if bytes.Contains(line, []byte("too large")) {
			return fmt.Errorf("%w: %s: %s", ErrValueTooLarge, rr.addr, msg), false
		}
		return &ServerError{Addr: rr.addr, Message: msg}, line[0] == 'C'
	}
	return nil, false
}

// decodeCommon reads the replies of commands both formats share (stats,
// flush_all), whose first line is line.
func (rr *replyReader) decodeCommon(line []byte, r *request) error {
	if e, resync := rr.errorReply(line); e != nil {
		r.err = e
		if resync {
			return errResync
		}
		return nil
	}
	switch r.op {
	case opFlushAll:
		if bytes.Equal(line, []byte("OK")) {
			return nil
		}
	case opStats:
		r.stats = make(map[string]string)
		for {
			if bytes.Equal(line, []byte("END")) {
				return nil
			}
			if !bytes.HasPrefix(line, []byte("STAT ")) {
				break
			}
			kv := line[5:]
			if i := bytes.IndexByte(kv, ' '); i > 0 {
				r.stats[string(kv[:i])] = string(kv[i+1:])
			} else {
				r.stats[string(kv)] = ""
			}
			var err error
			if line, err = rr.line(); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("%w: %s", errBadReply, shape(line))
}

func appendCommon(dst []byte, r *request) ([]byte, error) {
	switch r.op {
	case opStats:
		dst = append(dst, "stats"...)
		for _, a := range r.args {
			dst = append(dst, ' ')
			dst = append(dst, a...)
		}
		dst = append(dst, "\r\n"...)
	case opFlushAll:
		dst = append(dst, "flush_all\r\n"...)
	default:
		return dst, fmt.Errorf("memclient: op %d not supported by this protocol", r.op)
	}
	return dst, nil
}

// parseUint parses a decimal uint64 without allocating.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	n, ok := parseUint(b)
	if !ok || n > 1<<63 {
		return 0, false
	}
	if neg {
		return -int64(n), true
	}
	if n == 1<<63 {
		return 0, false
	}
	return int64(n), true
}

// cutToken splits b at its first space.
func cutToken(b []byte) (tok, rest []byte) {
	tok, rest, _ = bytes.Cut(b, []byte{' '})
	return tok, rest
}

func trimCRLF(b []byte) string {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return string(b)
}

// shape describes a reply line for an error message without quoting all
// of it: a line may hold a key (a VALUE line does), and keys can hold
// emails or user IDs, which must not reach logs. Its first token, cut
// short, and its length tell what went wrong.
func shape(line []byte) string {
	tok, _ := cutToken(line)
	if len(tok) > 16 {
		tok = tok[:16]
	}
	return strconv.Quote(string(tok)) + " (a line of " + strconv.Itoa(len(line)) + " bytes)"
}
