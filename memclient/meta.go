package memclient

import (
	"fmt"
	"strconv"
	"time"
)

// The meta protocol (memcached >= 1.6.10): mg, ms, md, ma, mn. Every
// meta command but mn carries an opaque token, O<n>, that its reply echoes
// (memcached 1.6.18 echoes it on VA, HD, EN, NS, EX and NF), and a reply is
// checked against its request: one out of step is a protocol error, never
// another key's value. Replies with no token (error lines, and the replies
// of the commands shared with the text protocol: gets for GetMulti, stats,
// flush_all) are positional: the reader holds them until a reply after
// them shows the stream in step, one with a token or the MN of an mn, which
// no other command gets. An mn that nobody waits for (a sync) follows every
// batch of such commands so that one always comes; it touches no counter
// of the server's, so its stats stay the application's.

func appendMeta(dst []byte, r *request) ([]byte, error) {
	switch r.op {
	case opGet:
		dst = append(dst, "mg "...)
		dst = append(dst, r.key...)
		dst = append(dst, " v f c"...)
	case opGAT:
		dst = append(dst, "mg "...)
		dst = append(dst, r.key...)
		dst = append(dst, " v f c T"...)
		dst = strconv.AppendInt(dst, r.exp, 10)
	case opTouch:
		dst = append(dst, "mg "...)
		dst = append(dst, r.key...)
		dst = append(dst, " T"...)
		dst = strconv.AppendInt(dst, r.exp, 10)
	case opLease:
		dst = append(dst, "mg "...)
		dst = append(dst, r.key...)
		dst = append(dst, " v f c t"...)
		if r.lease.VivifyTTL > 0 {
			dst = append(dst, " N"...)
			dst = strconv.AppendInt(dst, min(ceilSeconds(r.lease.VivifyTTL), maxRelativeTTL), 10)
		}
		if r.lease.RecacheTTL > 0 {
			dst = append(dst, " R"...)
			dst = strconv.AppendInt(dst, min(ceilSeconds(r.lease.RecacheTTL), maxRelativeTTL), 10)
		}
		if r.lease.Touch {
			dst = append(dst, " T"...)
			dst = strconv.AppendInt(dst, r.exp, 10)
		}
	case opSet, opAdd, opReplace, opAppend, opPrepend, opCAS:
		dst = append(dst, "ms "...)
		dst = append(dst, r.key...)
		dst = append(dst, ' ')
		dst = strconv.AppendUint(dst, uint64(len(r.item.Value)), 10)
		if r.op != opAppend && r.op != opPrepend {
			dst = append(dst, " F"...)
			dst = strconv.AppendUint(dst, uint64(r.item.Flags), 10)
			dst = append(dst, " T"...)
			dst = strconv.AppendInt(dst, r.exp, 10)
		}
		if r.op == opCAS {
			dst = append(dst, " C"...)
			dst = strconv.AppendUint(dst, r.item.CAS, 10)
		}
		dst = append(dst, metaMode(r.op)...)
	case opDelete:
		dst = append(dst, "md "...)
		dst = append(dst, r.key...)
	case opInvalidate:
		dst = append(dst, "md "...)
		dst = append(dst, r.key...)
		dst = append(dst, " I"...)
		if r.exp != 0 {
			dst = append(dst, " T"...)
			dst = strconv.AppendInt(dst, r.exp, 10)
		}
	case opIncr, opDecr:
		dst = append(dst, "ma "...)
		dst = append(dst, r.key...)
		dst = append(dst, " v"...)
		if r.op == opDecr {
			dst = append(dst, " MD"...)
		}
		dst = append(dst, " D"...)
		dst = strconv.AppendUint(dst, r.delta, 10)
	case opGetMulti:
		// A classic "gets k1 k2 ..." line: memcached answers it about
		// twice as fast as the same keys as quiet mg commands ended by mn
		// (measured on memcached 1.6.18), and every server that speaks
		// meta speaks it. Its reply is checked by key (see decodeText).
		return appendText(dst, r)
	case opNoop:
		dst = append(dst, "mn\r\n"...)
		return dst, nil
	default:
		return appendCommon(dst, r)
	}
	dst = append(dst, " O"...)
	dst = strconv.AppendUint(dst, uint64(r.opaque), 10)
	dst = append(dst, "\r\n"...)
	if r.item != nil {
		dst = append(dst, r.item.Value...)
		dst = append(dst, "\r\n"...)
	}
	return dst, nil
}

// appendSync appends the meta no-op, mn, as appendMeta does an opNoop
// request.
func appendSync(dst []byte) []byte {
	return append(dst, "mn\r\n"...)
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

// metaFlags holds the return flags of a meta reply header.
type metaFlags struct {
	flags         uint32
	cas           uint64
	ttl           int64
	opaque        uint64
	hasOpaque     bool
	win, stale, z bool
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
		case 'O':
			f.opaque, ok = parseUint(arg)
			f.hasOpaque = true
		case 'W':
			f.win = true
		case 'X':
			f.stale = true
		case 'Z':
			f.z = true
		}
		if !ok {
			return f, fmt.Errorf("%w: flag %s", errBadReply, shape(tok))
		}
	}
	return f, nil
}

// decodeMeta reads r's reply. err means the stream can no longer be
// trusted (an I/O error, a reply that cannot be delimited, one that echoes
// another request's token or is of the wrong kind). positional means the
// reply carries no token to check against r (an error line, or the reply
// of a command shared with the text protocol: gets, stats, flush_all):
// the reader holds it until a reply that does shows the stream in step.
// r's own outcome goes in r.err.
func (rr *replyReader) decodeMeta(r *request) (positional bool, err error) {
	switch r.op {
	case opGetMulti, opStats, opFlushAll:
		if err := rr.decodeText(r); err != nil {
			return false, err
		}
		return true, nil
	}
	line, err := rr.line()
	if err != nil {
		return false, err
	}
	if e, resync := rr.errorReply(line); e != nil {
		r.err = e
		if resync && r.op != opIncr && r.op != opDecr {
			return false, errResync
		}
		return true, nil
	}
	if r.op == opNoop {
		// MN carries no token, and needs none: no other command gets it,
		// so it confirms the replies before it as well as one would.
		if string(line) != "MN" {
			return false, fmt.Errorf("%w: %s to mn", errBadReply, shape(line))
		}
		return false, nil
	}
	if len(line) < 2 {
		return false, fmt.Errorf("%w: %s", errBadReply, shape(line))
	}
	code, rest := line[:2], line[2:]
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return false, fmt.Errorf("%w: %s", errBadReply, shape(line))
		}
		rest = rest[1:]
	}
	var size uint64
	if string(code) == "VA" {
		var sizeTok []byte
		sizeTok, rest = cutToken(rest)
		var ok bool
		if size, ok = parseUint(sizeTok); !ok {
			return false, fmt.Errorf("%w: %s", errBadReply, shape(line))
		}
	}
	f, err := parseMetaFlags(rest)
	if err != nil {
		return false, err
	}
	if !f.hasOpaque || f.opaque != uint64(r.opaque) {
		// Another request's reply: one was lost or repeated upstream. The
		// line may hold a key; name only the tokens.
		got := "none"
		if f.hasOpaque {
			got = fmt.Sprint(f.opaque)
		}
		return false, fmt.Errorf("%w: a %s reply with token %s answered request token %d; the stream is out of step", ErrProtocol, code, got, r.opaque)
	}
	switch r.op {
	case opGet, opGAT, opLease:
		switch string(code) {
		case "EN":
			r.err = ErrCacheMiss
			return false, nil
		case "VA":
			item, tooBig, err := rr.readItem(size, r.into)
			if err != nil {
				return false, err
			}
			if tooBig != nil {
				r.err = tooBig
				return false, nil
			}
			item.Key, item.Flags, item.CAS = r.key, f.flags, f.cas
			if r.op == opLease {
				r.resLease = Lease{Item: item, Won: f.win, Stale: f.stale, Pending: f.z, TTL: time.Duration(f.ttl) * time.Second}
				if f.ttl < 0 {
					r.resLease.TTL = -1
				}
			} else {
				r.resItem = item
			}
			return false, nil
		}
	case opTouch:
		switch string(code) {
		case "HD":
			return false, nil
		case "EN":
			r.err = ErrCacheMiss
			return false, nil
		}
	case opSet, opAdd, opReplace, opAppend, opPrepend, opCAS:
		switch string(code) {
		case "HD":
			return false, nil
		case "NS":
			r.err = ErrNotStored
			return false, nil
		case "EX":
			r.err = ErrCASConflict
			return false, nil
		case "NF":
			r.err = ErrCacheMiss
			return false, nil
		}
	case opDelete, opInvalidate:
		switch string(code) {
		case "HD":
			return false, nil
		case "NF":
			r.err = ErrCacheMiss
			return false, nil
		}
	case opIncr, opDecr:
		switch string(code) {
		case "VA":
			if size > 20 {
				return false, fmt.Errorf("%w: counter of %d bytes", errBadReply, size)
			}
			value, _, err := rr.value(size)
			if err != nil {
				return false, err
			}
			var ok bool
			if r.num, ok = parseUint(value); !ok {
				return false, fmt.Errorf("%w: counter %s", errBadReply, shape(value))
			}
			return false, nil
		case "NF":
			r.err = ErrCacheMiss
			return false, nil
		}
	}
	return false, fmt.Errorf("%w: a %s reply to %s", errBadReply, code, r.op)
}
