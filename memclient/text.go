package memclient

import (
	"bytes"
	"fmt"
	"strconv"
)

// The classic text protocol, for proxies and older servers. Its replies
// carry no token, so a reply is checked by what it can show: a VALUE must
// name a key its request asked for, in the order asked, and every reply
// must be of a kind its command can get. What that cannot catch is a
// reply of the right kind shifted onto the wrong request: an extra or
// missing STORED, DELETED, TOUCHED, NOT_FOUND or number, or an END alone
// (a multi-key get that found nothing). Such a shift goes unnoticed until
// a reply of another kind, or a VALUE for a key not asked for, turns up;
// it can report a wrong outcome, but never returns a value under another
// key. The meta protocol, the default, checks every reply.

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

func appendText(dst []byte, r *request) ([]byte, error) {
	switch r.op {
	case opGet:
		dst = append(dst, "gets "...)
		dst = append(dst, r.key...)
		dst = append(dst, "\r\n"...)
	case opGAT:
		dst = append(dst, "gats "...)
		dst = strconv.AppendInt(dst, r.exp, 10)
		dst = append(dst, ' ')
		dst = append(dst, r.key...)
		dst = append(dst, "\r\n"...)
	case opTouch:
		dst = append(dst, "touch "...)
		dst = append(dst, r.key...)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, r.exp, 10)
		dst = append(dst, "\r\n"...)
	case opSet, opAdd, opReplace, opAppend, opPrepend, opCAS:
		dst = append(dst, textStoreVerb(r.op)...)
		dst = append(dst, r.key...)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(r.item.Flags), 10)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, r.exp, 10)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(len(r.item.Value)), 10)
		if r.op == opCAS {
			dst = append(dst, ' ')
			dst = strconv.AppendUint(dst, r.item.CAS, 10)
		}
		dst = append(dst, "\r\n"...)
		dst = append(dst, r.item.Value...)
		dst = append(dst, "\r\n"...)
	case opDelete:
		dst = append(dst, "delete "...)
		dst = append(dst, r.key...)
		dst = append(dst, "\r\n"...)
	case opIncr, opDecr:
		if r.op == opIncr {
			dst = append(dst, "incr "...)
		} else {
			dst = append(dst, "decr "...)
		}
		dst = append(dst, r.key...)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, r.delta, 10)
		dst = append(dst, "\r\n"...)
	case opGetMulti:
		dst = append(dst, "gets"...)
		for _, k := range r.keys {
			dst = append(dst, ' ')
			dst = append(dst, k...)
		}
		dst = append(dst, "\r\n"...)
	case opNoop:
		dst = append(dst, "version\r\n"...)
	default:
		return appendCommon(dst, r)
	}
	return dst, nil
}

// decodeText reads r's reply. err means the stream can no longer be
// trusted; r's own outcome goes in r.err.
func (rr *replyReader) decodeText(r *request) error {
	line, err := rr.line()
	if err != nil {
		return err
	}
	switch r.op {
	case opStats, opFlushAll:
		return rr.decodeCommon(line, r)
	}
	if e, resync := rr.errorReply(line); e != nil {
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
				if r.op != opGetMulti && r.resItem == nil && r.err == nil {
					r.err = ErrCacheMiss
				}
				return nil
			}
			if err := rr.textValue(r, line); err != nil {
				return err
			}
			if line, err = rr.line(); err != nil {
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
		if n, ok := parseUint(bytes.TrimRight(line, " ")); ok {
			r.num = n
			return nil
		}
	case opNoop:
		if bytes.HasPrefix(line, []byte("VERSION ")) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s to %s", errBadReply, shape(line), r.op)
}

// textValue parses "VALUE key flags bytes [cas]", checks that the key is
// one r asked for, next in order, and reads the data into r's results.
func (rr *replyReader) textValue(r *request, line []byte) error {
	var fields [6][]byte
	n := 0
	for rest := line; len(rest) > 0 && n < len(fields); n++ {
		fields[n], rest = cutToken(rest)
	}
	if n < 4 || n > 5 || !bytes.Equal(fields[0], []byte("VALUE")) {
		return fmt.Errorf("%w: %s", errBadReply, shape(line))
	}
	flags, ok1 := parseUint(fields[2])
	size, ok2 := parseUint(fields[3])
	var cas uint64
	ok3 := true
	if n == 5 {
		cas, ok3 = parseUint(fields[4])
	}
	if !ok1 || !ok2 || !ok3 || flags > 1<<32-1 {
		return fmt.Errorf("%w: %s", errBadReply, shape(line))
	}
	key, ok := r.nextKey(fields[1])
	if !ok {
		return fmt.Errorf("%w: a VALUE for a key its request did not ask for (or out of order); the stream is out of step", ErrProtocol)
	}
	var into *Item
	if r.op != opGetMulti {
		into = r.into
	}
	item, tooBig, err := rr.readItem(size, into)
	if err != nil {
		return err
	}
	if tooBig != nil {
		if r.op != opGetMulti {
			r.err = tooBig
			return nil
		}
		if r.keyErrs == nil {
			r.keyErrs = make(map[string]error)
		}
		r.keyErrs[key] = tooBig
		return nil
	}
	item.Key, item.Flags, item.CAS = key, uint32(flags), cas
	if r.op == opGetMulti {
		r.resItems = append(r.resItems, item)
	} else {
		r.resItem = item
	}
	return nil
}

// nextKey returns the requested key equal to k, without allocating, if it
// is the next one a reply may name: servers answer in request order,
// skipping misses, so a cursor moves over the request's keys.
func (r *request) nextKey(k []byte) (string, bool) {
	if r.op != opGetMulti {
		if r.cursor == 0 && string(k) == r.key {
			r.cursor = 1
			return r.key, true
		}
		return "", false
	}
	for i := r.cursor; i < len(r.keys); i++ {
		if r.keys[i] == string(k) {
			r.cursor = i + 1
			return r.keys[i], true
		}
	}
	return "", false
}
