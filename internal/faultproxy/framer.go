package faultproxy

import (
	"bytes"
	"strconv"
)

// event says where the bytes framer.next consumed leave the current reply.
type event int

const (
	evNone      event = iota // inside a reply
	evFirstLine              // the end of the first line of a reply that goes on
	evEnd                    // the end of a reply
)

// maxHead is how much of each line the framer keeps to classify it. A reply
// header is far shorter (a key is at most 250 bytes); a longer line is
// garbage, and is classified by its start.
const maxHead = 512

// maxBody bounds the size a header may announce, so that the sum with the
// trailing "\r\n" cannot overflow. Nothing real comes near it.
const maxBody = 1 << 40

// framer splits the byte stream a memcached server sends into replies, for
// both wire formats:
//
//   - meta: "VA <size> <flags>*\r\n" and a data block of size+2 bytes is one
//     reply; every other line (HD, NS, EX, NF, EN, MN, ME ...) is one reply.
//   - text: "VALUE <key> <flags> <bytes> [<cas>]\r\n" blocks up to the closing
//     "END\r\n" are one reply (a get of several keys is one reply), and so
//     are "STAT" (and "ITEM") lines up to "END"; every other line (STORED,
//     DELETED, OK, VERSION ..., a number, END alone) is one reply.
//   - ERROR, CLIENT_ERROR ..., SERVER_ERROR ... lines are one reply each,
//     and one ends a VALUE or STAT reply it interrupts.
//
// Garbage is framed too, never rejected: a line that fits no rule is a reply
// of its own. Data blocks stream through and only the first maxHead bytes of
// a line are kept, so memory stays bounded whatever the server sends.
//
// A framer is not safe for concurrent use.
type framer struct {
	head    []byte // the first maxHead bytes of the current line
	body    int64  // bytes left of the current data block, "\r\n" included
	multi   bool   // inside a VALUE or STAT reply, which END closes
	lines   int    // lines completed in the current reply
	started bool   // a reply has begun and not ended
}

// idle reports whether the next byte starts a new reply.
func (f *framer) idle() bool { return !f.started }

// next consumes a prefix of b (all of it, or up to the first event, and at
// least one byte when b is not empty) and reports its length and the event
// at its end.
func (f *framer) next(b []byte) (n int, ev event) {
	for n < len(b) {
		f.started = true
		if f.body > 0 {
			k := int64(len(b) - n)
			if k > f.body {
				k = f.body
			}
			n += int(k)
			f.body -= k
			if f.body == 0 && !f.multi {
				f.end()
				return n, evEnd
			}
			continue
		}
		i := bytes.IndexByte(b[n:], '\n')
		if i < 0 {
			f.keep(b[n:])
			return len(b), evNone
		}
		f.keep(b[n : n+i+1])
		n += i + 1
		if ev := f.line(); ev != evNone {
			return n, ev
		}
	}
	return n, evNone
}

// keep appends what fits of p to the current line's head.
func (f *framer) keep(p []byte) {
	if room := maxHead - len(f.head); room > 0 {
		if len(p) > room {
			p = p[:room]
		}
		f.head = append(f.head, p...)
	}
}

// end starts over for the next reply.
func (f *framer) end() {
	f.head = f.head[:0]
	f.body = 0
	f.multi = false
	f.lines = 0
	f.started = false
}

// line classifies the line just completed and reports the event it makes.
func (f *framer) line() event {
	line := bytes.TrimSuffix(bytes.TrimSuffix(f.head, []byte{'\n'}), []byte{'\r'})
	f.lines++
	first := f.lines == 1
	word, rest, _ := bytes.Cut(line, []byte{' '})
	var ev event
	switch {
	case f.multi && string(line) == "END":
		ev = evEnd
	case string(word) == "VALUE" && (first || f.multi):
		if size, ok := valueSize(rest); ok {
			f.multi = true
			f.body = size + 2
		} else {
			ev = evEnd // malformed: a line of its own, or the end of the reply it interrupts
		}
	case (string(word) == "STAT" || string(word) == "ITEM") && (first || f.multi):
		f.multi = true
	case string(word) == "VA" && first:
		if size, ok := parseSize(firstToken(rest)); ok {
			f.body = size + 2
		} else {
			ev = evEnd
		}
	default:
		ev = evEnd
	}
	f.head = f.head[:0]
	switch {
	case ev == evEnd:
		f.end()
	case first:
		ev = evFirstLine
	}
	return ev
}

// valueSize returns <bytes> from the rest of "VALUE <key> <flags> <bytes> [<cas>]".
func valueSize(rest []byte) (int64, bool) {
	fields := bytes.Fields(rest)
	if len(fields) < 3 {
		return 0, false
	}
	return parseSize(fields[2])
}

func firstToken(b []byte) []byte {
	tok, _, _ := bytes.Cut(b, []byte{' '})
	return tok
}

func parseSize(b []byte) (int64, bool) {
	if len(b) == 0 || b[0] < '0' || b[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n > maxBody {
		return 0, false
	}
	return n, true
}
