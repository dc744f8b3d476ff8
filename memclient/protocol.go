package memclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// protocol encodes requests and decodes their replies. decode returns an
// error only when the stream can no longer be trusted (I/O error, a reply
// that cannot be delimited or does not fit the request); the connection is
// then closed. The request's own outcome goes in r.err.
type protocol interface {
	encode(w *bufio.Writer, r *request) error
	decode(br *bufio.Reader, r *request, addr string) error
}

func protocolFor(p Protocol) protocol {
	if p == ProtocolText {
		return textProtocol{}
	}
	return metaProtocol{}
}

var (
	errBadReply = errors.New("malformed reply")
	// errResync closes the connection after an error reply that may have
	// left the server reading our data as commands.
	errResync = errors.New("error reply; reconnecting to stay in sync")
)

// maxValueLen bounds the value length a reply may announce, so a hostile
// or corrupted stream cannot make us allocate without limit.
const maxValueLen = 1 << 30

// --- shared helpers ---

// writeUint and writeInt format into the writer's free buffer space, the
// allocation-free idiom (a stack array passed to Write would escape).
func writeUint(w *bufio.Writer, n uint64) {
	w.Write(strconv.AppendUint(w.AvailableBuffer(), n, 10))
}

func writeInt(w *bufio.Writer, n int64) {
	w.Write(strconv.AppendInt(w.AvailableBuffer(), n, 10))
}

// readLine returns the next line without CRLF. The slice is valid until the
// next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
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

// readValue reads n bytes of data and the CRLF after them into a new slice.
func readValue(br *bufio.Reader, n uint64) ([]byte, error) {
	if n > maxValueLen {
		return nil, fmt.Errorf("%w: value length %d", errBadReply, n)
	}
	var buf []byte
	if n <= 1<<20 {
		buf = make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return nil, err
		}
	} else {
		// Grow with the data actually received, so a reply announcing a
		// huge length costs memory only as its bytes arrive.
		var b bytes.Buffer
		b.Grow(1 << 20)
		if _, err := io.CopyN(&b, br, int64(n+2)); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf = b.Bytes()
	}
	if buf[n] != '\r' || buf[n+1] != '\n' {
		return nil, fmt.Errorf("%w: value not ended by CRLF", errBadReply)
	}
	return buf[:n:n], nil
}

// errorReply maps an error line to an error, or returns nil if line is not
// an error line. resync tells whether the stream may be out of step.
func errorReply(line []byte, addr string) (err error, resync bool) {
	switch {
	case bytes.Equal(line, []byte("ERROR")):
		return &ServerError{Addr: addr, Message: "ERROR"}, true
	case bytes.HasPrefix(line, []byte("CLIENT_ERROR")), bytes.HasPrefix(line, []byte("SERVER_ERROR")):
		msg := string(line)
		if bytes.Contains(line, []byte("too large")) {
			return fmt.Errorf("%w: %s: %s", ErrValueTooLarge, addr, msg), false
		}
		return &ServerError{Addr: addr, Message: msg}, line[0] == 'C'
	}
	return nil, false
}

func metaMode(op opcode) string {
	switch op {
	case opAdd:
		return " ME"
	case opReplace:
		return " MR"
	case opAppend:
		return " MA"
	case opPrepend:
		return " MP"
	}
	return ""
}

func ttlSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// --- meta protocol ---

type metaProtocol struct{}

func (metaProtocol) encode(w *bufio.Writer, r *request) error {
	switch r.op {
	case opGet:
		w.WriteString("mg ")
		w.WriteString(r.key)
		w.WriteString(" v f c\r\n")
	case opGAT:
		w.WriteString("mg ")
		w.WriteString(r.key)
		w.WriteString(" v f c T")
		writeInt(w, r.exp)
		w.WriteString("\r\n")
	case opTouch:
		w.WriteString("mg ")
		w.WriteString(r.key)
		w.WriteString(" T")
		writeInt(w, r.exp)
		w.WriteString("\r\n")
	case opLease:
		w.WriteString("mg ")
		w.WriteString(r.key)
		w.WriteString(" v f c t")
		if r.lease.VivifyTTL > 0 {
			w.WriteString(" N")
			writeInt(w, ttlSeconds(r.lease.VivifyTTL))
		}
		if r.lease.RecacheTTL > 0 {
			w.WriteString(" R")
			writeInt(w, ttlSeconds(r.lease.RecacheTTL))
		}
		w.WriteString("\r\n")
	case opSet, opAdd, opReplace, opAppend, opPrepend, opCAS:
		w.WriteString("ms ")
		w.WriteString(r.key)
		w.WriteByte(' ')
		writeUint(w, uint64(len(r.item.Value)))
		if r.op != opAppend && r.op != opPrepend {
			w.WriteString(" F")
			writeUint(w, uint64(r.item.Flags))
			w.WriteString(" T")
			writeInt(w, r.exp)
		}
		if r.op == opCAS {
			w.WriteString(" C")
			writeUint(w, r.item.CAS)
		}
		w.WriteString(metaMode(r.op))
		w.WriteString("\r\n")
		w.Write(r.item.Value)
		w.WriteString("\r\n")
	case opDelete:
		w.WriteString("md ")
		w.WriteString(r.key)
		w.WriteString("\r\n")
	case opInvalidate:
		w.WriteString("md ")
		w.WriteString(r.key)
		w.WriteString(" I")
		if r.exp != 0 {
			w.WriteString(" T")
			writeInt(w, r.exp)
		}
		w.WriteString("\r\n")
	case opIncr, opDecr:
		w.WriteString("ma ")
		w.WriteString(r.key)
		w.WriteString(" v")
		if r.op == opDecr {
			w.WriteString(" MD")
		}
		w.WriteString(" D")
		writeUint(w, r.delta)
		w.WriteString("\r\n")
	case opGetMulti:
		// A classic "gets k1 k2 ..." line: memcached answers it about
		// twice as fast as the same keys as quiet mg commands ended by mn
		// (measured on memcached 1.6.18), and every server that speaks
		// meta speaks it.
		return textProtocol{}.encode(w, r)
	case opNoop:
		w.WriteString("mn\r\n")
	default:
		return encodeCommon(w, r)
	}
	return nil
}

func encodeCommon(w *bufio.Writer, r *request) error {
	switch r.op {
	case opStats:
		w.WriteString("stats")
		for _, a := range r.args {
			w.WriteByte(' ')
			w.WriteString(a)
		}
		w.WriteString("\r\n")
	case opFlushAll:
		w.WriteString("flush_all\r\n")
	default:
		return fmt.Errorf("memclient: op %d not supported by this protocol", r.op)
	}
	return nil
}

// metaFlags holds the return flags of a meta reply header.
type metaFlags struct {
	flags         uint32
	cas           uint64
	ttl           int64
	key           []byte
	win, stale, z bool
}

// cutToken splits b at its first space.
func cutToken(b []byte) (tok, rest []byte) {
	tok, rest, _ = bytes.Cut(b, []byte{' '})
	return tok, rest
}

func parseMetaFlags(tokens []byte) (metaFlags, error) {
	var f metaFlags
	for len(tokens) > 0 {
		var tok []byte
		tok, tokens = cutToken(tokens)
		if len(tok) == 0 {
			continue
		}
		arg := tok[1:]
		var ok = true
		switch tok[0] {
		case 'f':
			var n uint64
			n, ok = parseUint(arg)
			ok = ok && n <= 1<<32-1
			f.flags = uint32(n)
		case 'c':
			f.cas, ok = parseUint(arg)
		case 't':
			f.ttl, ok = parseInt(arg)
		case 'k':
			f.key = arg
		case 'W':
			f.win = true
		case 'X':
			f.stale = true
		case 'Z':
			f.z = true
		}
		if !ok {
			return f, fmt.Errorf("%w: flag %q", errBadReply, tok)
		}
	}
	return f, nil
}

func (metaProtocol) decode(br *bufio.Reader, r *request, addr string) error {
	if r.op == opGetMulti {
		return textProtocol{}.decode(br, r, addr)
	}
	line, err := readLine(br)
	if err != nil {
		return err
	}
	if r.op == opStats || r.op == opFlushAll {
		return decodeCommon(br, line, r, addr)
	}
	if e, resync := errorReply(line, addr); e != nil {
		r.err = e
		if resync && r.op != opIncr && r.op != opDecr {
			return errResync
		}
		return nil
	}
	if len(line) < 2 {
		return fmt.Errorf("%w: %q", errBadReply, line)
	}
	code, rest := line[:2], line[2:]
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return fmt.Errorf("%w: %q", errBadReply, line)
		}
		rest = rest[1:]
	}
	switch r.op {
	case opGet, opGAT, opLease:
		switch string(code) {
		case "EN":
			r.err = ErrCacheMiss
			return nil
		case "VA":
			sizeTok, rest := cutToken(rest)
			size, ok := parseUint(sizeTok)
			if !ok {
				return fmt.Errorf("%w: %q", errBadReply, line)
			}
			f, err := parseMetaFlags(rest)
			if err != nil {
				return err
			}
			value, err := readValue(br, size)
			if err != nil {
				return err
			}
			item := &Item{Key: r.key, Value: value, Flags: f.flags, CAS: f.cas}
			if r.op == opLease {
				r.resLease = Lease{Item: item, Won: f.win, Stale: f.stale, Pending: f.z, TTL: time.Duration(f.ttl) * time.Second}
				if f.ttl < 0 {
					r.resLease.TTL = -1
				}
			} else {
				r.resItem = item
			}
			return nil
		}
	case opTouch:
		switch string(code) {
		case "HD":
			return nil
		case "EN":
			r.err = ErrCacheMiss
			return nil
		}
	case opSet, opAdd, opReplace, opAppend, opPrepend, opCAS:
		switch string(code) {
		case "HD":
			return nil
		case "NS":
			r.err = ErrNotStored
			return nil
		case "EX":
			r.err = ErrCASConflict
			return nil
		case "NF":
			r.err = ErrCacheMiss
			return nil
		}
	case opDelete, opInvalidate:
		switch string(code) {
		case "HD":
			return nil
		case "NF":
			r.err = ErrCacheMiss
			return nil
		}
	case opIncr, opDecr:
		switch string(code) {
		case "VA":
			sizeTok, _ := cutToken(rest)
			size, ok := parseUint(sizeTok)
			if !ok || size > 20 {
				return fmt.Errorf("%w: %q", errBadReply, line)
			}
			value, err := readValue(br, size)
			if err != nil {
				return err
			}
			if r.num, ok = parseUint(value); !ok {
				return fmt.Errorf("%w: counter %q", errBadReply, value)
			}
			return nil
		case "NF":
			r.err = ErrCacheMiss
			return nil
		}
	case opNoop:
		if string(code) == "MN" {
			return nil
		}
	}
	return fmt.Errorf("%w: %q", errBadReply, line)
}

// decodeCommon reads the replies of commands both protocols share.
func decodeCommon(br *bufio.Reader, line []byte, r *request, addr string) error {
	if e, resync := errorReply(line, addr); e != nil {
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
			if line, err = readLine(br); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("%w: %q", errBadReply, line)
}

// matchKey returns the requested key equal to k without allocating:
// servers answer multi-key gets in request order, so a cursor over the
// request's keys finds it at once. Unknown keys are copied.
func (r *request) matchKey(k []byte) string {
	if r.op != opGetMulti {
		if string(k) == r.key {
			return r.key
		}
		return string(k)
	}
	for i := r.cursor; i < len(r.keys); i++ {
		if r.keys[i] == string(k) {
			r.cursor = i + 1
			return r.keys[i]
		}
	}
	return string(k)
}

// --- text protocol ---

type textProtocol struct{}

func textStoreVerb(op opcode) string {
	switch op {
	case opAdd:
		return "add "
	case opReplace:
		return "replace "
	case opAppend:
		return "append "
	case opPrepend:
		return "prepend "
	case opCAS:
		return "cas "
	}
	return "set "
}

func (textProtocol) encode(w *bufio.Writer, r *request) error {
	switch r.op {
	case opGet:
		w.WriteString("gets ")
		w.WriteString(r.key)
		w.WriteString("\r\n")
	case opGAT:
		w.WriteString("gats ")
		writeInt(w, r.exp)
		w.WriteByte(' ')
		w.WriteString(r.key)
		w.WriteString("\r\n")
	case opTouch:
		w.WriteString("touch ")
		w.WriteString(r.key)
		w.WriteByte(' ')
		writeInt(w, r.exp)
		w.WriteString("\r\n")
	case opSet, opAdd, opReplace, opAppend, opPrepend, opCAS:
		w.WriteString(textStoreVerb(r.op))
		w.WriteString(r.key)
		w.WriteByte(' ')
		writeUint(w, uint64(r.item.Flags))
		w.WriteByte(' ')
		writeInt(w, r.exp)
		w.WriteByte(' ')
		writeUint(w, uint64(len(r.item.Value)))
		if r.op == opCAS {
			w.WriteByte(' ')
			writeUint(w, r.item.CAS)
		}
		w.WriteString("\r\n")
		w.Write(r.item.Value)
		w.WriteString("\r\n")
	case opDelete:
		w.WriteString("delete ")
		w.WriteString(r.key)
		w.WriteString("\r\n")
	case opIncr, opDecr:
		if r.op == opIncr {
			w.WriteString("incr ")
		} else {
			w.WriteString("decr ")
		}
		w.WriteString(r.key)
		w.WriteByte(' ')
		writeUint(w, r.delta)
		w.WriteString("\r\n")
	case opGetMulti:
		w.WriteString("gets")
		for _, k := range r.keys {
			w.WriteByte(' ')
			w.WriteString(k)
		}
		w.WriteString("\r\n")
	case opNoop:
		w.WriteString("version\r\n")
	default:
		return encodeCommon(w, r)
	}
	return nil
}

func (textProtocol) decode(br *bufio.Reader, r *request, addr string) error {
	line, err := readLine(br)
	if err != nil {
		return err
	}
	switch r.op {
	case opStats, opFlushAll:
		return decodeCommon(br, line, r, addr)
	}
	if e, resync := errorReply(line, addr); e != nil {
		r.err = e
		if resync && r.op != opIncr && r.op != opDecr {
			return errResync
		}
		return nil
	}
	switch r.op {
	case opGet, opGAT, opGetMulti:
		for {
			if bytes.Equal(line, []byte("END")) {
				if r.op != opGetMulti && r.resItem == nil {
					r.err = ErrCacheMiss
				}
				return nil
			}
			item, err := readTextValue(br, r, line)
			if err != nil {
				return err
			}
			if r.op == opGetMulti {
				r.resItems = append(r.resItems, item)
			} else {
				if r.resItem != nil || item.Key != r.key {
					return fmt.Errorf("%w: unexpected VALUE for %q", errBadReply, item.Key)
				}
				r.resItem = item
			}
			if line, err = readLine(br); err != nil {
				return err
			}
		}
	case opTouch:
		switch string(line) {
		case "TOUCHED":
			return nil
		case "NOT_FOUND":
			r.err = ErrCacheMiss
			return nil
		}
	case opSet, opAdd, opReplace, opAppend, opPrepend, opCAS:
		switch string(line) {
		case "STORED":
			return nil
		case "NOT_STORED":
			r.err = ErrNotStored
			return nil
		case "EXISTS":
			r.err = ErrCASConflict
			return nil
		case "NOT_FOUND":
			r.err = ErrCacheMiss
			return nil
		}
	case opDelete:
		switch string(line) {
		case "DELETED":
			return nil
		case "NOT_FOUND":
			r.err = ErrCacheMiss
			return nil
		}
	case opIncr, opDecr:
		if string(line) == "NOT_FOUND" {
			r.err = ErrCacheMiss
			return nil
		}
		// memcached pads decremented numbers with spaces.
		n, ok := parseUint(bytes.TrimRight(line, " "))
		if ok {
			r.num = n
			return nil
		}
	case opNoop:
		if bytes.HasPrefix(line, []byte("VERSION ")) {
			return nil
		}
	}
	return fmt.Errorf("%w: %q", errBadReply, line)
}

// readTextValue parses "VALUE key flags bytes [cas]" and reads the data.
func readTextValue(br *bufio.Reader, r *request, line []byte) (*Item, error) {
	var fields [6][]byte
	n := 0
	for rest := line; len(rest) > 0 && n < len(fields); n++ {
		fields[n], rest = cutToken(rest)
	}
	if n < 4 || n > 5 || !bytes.Equal(fields[0], []byte("VALUE")) {
		return nil, fmt.Errorf("%w: %q", errBadReply, line)
	}
	flags, ok1 := parseUint(fields[2])
	size, ok2 := parseUint(fields[3])
	var cas uint64
	ok3 := true
	if n == 5 {
		cas, ok3 = parseUint(fields[4])
	}
	if !ok1 || !ok2 || !ok3 || flags > 1<<32-1 {
		return nil, fmt.Errorf("%w: %q", errBadReply, line)
	}
	key := r.matchKey(fields[1])
	value, err := readValue(br, size)
	if err != nil {
		return nil, err
	}
	return &Item{Key: key, Value: value, Flags: uint32(flags), CAS: cas}, nil
}
