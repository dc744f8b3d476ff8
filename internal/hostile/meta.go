package hostile

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// metaAllowed are the flags each meta command takes in memcached 1.6.18;
// any other is "CLIENT_ERROR invalid flag".
var metaAllowed = map[string]string{
	"mg": "bcfhklNOqRstTuv",
	"ms": "bcCFIkMNOqT",
	"md": "bCIkOqTx",
	"ma": "bcCDJkMNOqtTv",
	"me": "b",
}

// metaReq is a parsed meta command.
type metaReq struct {
	cmd    string
	key    string // as sent: base64 when b is set
	flags  []metaFlag
	tokens map[byte]string // flag -> token
}

type metaFlag struct {
	c   byte
	tok string
}

func (m *metaReq) has(c byte) bool {
	_, ok := m.tokens[c]
	return ok
}

// num returns the numeric token of flag c, or def when the flag is absent.
func (m *metaReq) num(c byte, def int64) int64 {
	if tok, ok := m.tokens[c]; ok {
		n, _ := strconv.ParseInt(tok, 10, 64) // checked by parseMeta
		return n
	}
	return def
}

func (m *metaReq) unum(c byte, def uint64) uint64 {
	if tok, ok := m.tokens[c]; ok {
		n, _ := strconv.ParseUint(tok, 10, 64) // checked by parseMeta
		return n
	}
	return def
}

// parseMeta parses the key and flags of a meta command; the error is the
// reply memcached gives to a bad one.
func parseMeta(cmd, key string, flags []string) (*metaReq, string) {
	m := &metaReq{cmd: cmd, key: key, tokens: make(map[byte]string)}
	if len(key) > maxKey {
		return nil, "CLIENT_ERROR bad command line format"
	}
	allowed := metaAllowed[cmd]
	for _, f := range flags {
		c, tok := f[0], f[1:]
		if strings.IndexByte(allowed, c) < 0 {
			return nil, "CLIENT_ERROR invalid flag"
		}
		if m.has(c) {
			return nil, "CLIENT_ERROR duplicate flag"
		}
		switch c {
		case 'O':
			if len(tok) > 32 {
				return nil, "CLIENT_ERROR opaque token too long"
			}
		case 'N', 'R', 'T':
			if _, err := strconv.ParseInt(tok, 10, 32); err != nil {
				return nil, "CLIENT_ERROR bad token in command line format"
			}
		case 'F':
			if _, ok := parseFlags(tok); !ok {
				return nil, "CLIENT_ERROR bad command line format"
			}
		case 'C', 'J', 'D':
			if _, err := strconv.ParseUint(tok, 10, 64); err != nil {
				if cmd == "ma" {
					return nil, "CLIENT_ERROR invalid or duplicate flag"
				}
				return nil, "CLIENT_ERROR bad token in command line format"
			}
		case 'M':
			if len(tok) != 1 {
				return nil, "CLIENT_ERROR incorrect length for M token"
			}
			modes := map[string]string{"ms": "SEAPRseapr", "ma": "IiDd+-"}[cmd]
			if !strings.Contains(modes, tok) {
				return nil, "CLIENT_ERROR invalid mode for " + cmd + " M token"
			}
		}
		m.flags = append(m.flags, metaFlag{c, tok})
		m.tokens[c] = tok
	}
	if m.has('b') {
		k, err := base64.StdEncoding.DecodeString(key)
		if err != nil {
			return nil, "CLIENT_ERROR error decoding key"
		}
		m.key = string(k)
	}
	return m, ""
}

// meta answers mg, ms, md, ma and me; f is the request line's fields.
func (st *store) meta(out *bytes.Buffer, f []string, data []byte, problem string) {
	rest := f[2:]
	if f[0] == "ms" {
		if len(f) < 3 {
			out.WriteString("CLIENT_ERROR bad command line format\r\n")
			return
		}
		if _, ok := parseLen(f[2]); !ok {
			out.WriteString("CLIENT_ERROR bad command line format\r\n")
			return
		}
		rest = f[3:]
	}
	m, bad := parseMeta(f[0], f[1], rest)
	if bad != "" {
		out.WriteString(bad + "\r\n")
		return
	}
	switch f[0] {
	case "mg":
		st.mg(out, m)
	case "ms":
		if problem != "" {
			out.WriteString(problem + "\r\n")
			return
		}
		st.ms(out, m, data)
	case "md":
		st.md(out, m)
	case "ma":
		st.ma(out, m)
	case "me":
		st.me(out, m)
	}
}

// ret writes the return flags memcached echoes, in the order they were
// asked for; it is nil for a miss or a failure, which echo only O and k.
func (st *store) ret(out *bytes.Buffer, m *metaReq, it *item) {
	for _, fl := range m.flags {
		switch {
		case fl.c == 'O':
			out.WriteString(" O" + fl.tok)
		case fl.c == 'k':
			out.WriteString(" k" + m.rawKey())
		case it == nil:
		case fl.c == 'c':
			fmt.Fprintf(out, " c%d", it.cas)
		case fl.c == 'f' && m.cmd == "mg":
			fmt.Fprintf(out, " f%d", it.flags)
		case fl.c == 's' && m.cmd == "mg":
			fmt.Fprintf(out, " s%d", len(it.value))
		case fl.c == 't':
			fmt.Fprintf(out, " t%d", st.ttl(it))
		case fl.c == 'h' && m.cmd == "mg":
			out.WriteString(cond(it.fetched, " h1", " h0"))
		case fl.c == 'l' && m.cmd == "mg":
			fmt.Fprintf(out, " l%d", st.unix()-it.access)
		}
	}
	if m.has('b') && m.has('k') {
		out.WriteString(" b")
	}
}

func (m *metaReq) rawKey() string {
	if m.has('b') {
		return base64.StdEncoding.EncodeToString([]byte(m.key))
	}
	return m.key
}

func (st *store) mg(out *bytes.Buffer, m *metaReq) {
	it := st.lookup(m.key)
	if it == nil && m.has('N') {
		// Vivify on miss: the caller wins the right to fill the item.
		// memcached 1.6.18 reports t-1 in this reply, whatever N was.
		it = &item{exp: st.expiry(m.num('N', 0)), cas: st.nextCAS(), won: true, access: st.unix()}
		st.items[m.key] = it
		shown := *it
		shown.exp = 0
		st.header(out, m, &shown)
		out.WriteString(" W\r\n")
		if m.has('v') {
			out.WriteString("\r\n")
		}
		return
	}
	if it == nil {
		if !m.has('q') {
			out.WriteString("EN")
			st.ret(out, m, nil)
			out.WriteString("\r\n")
		}
		return
	}
	if m.has('T') {
		it.exp = st.expiry(m.num('T', 0))
	}
	win := it.stale && !it.won
	if m.has('R') && it.exp != 0 && st.ttl(it) < m.num('R', 0) && !it.won {
		win = true
	}
	st.header(out, m, it)
	if it.won {
		out.WriteString(" Z")
	}
	if it.stale {
		out.WriteString(" X")
	}
	if win {
		out.WriteString(" W")
		it.won = true
	}
	out.WriteString("\r\n")
	if m.has('v') {
		out.Write(it.value)
		out.WriteString("\r\n")
	}
	it.fetched, it.access = true, st.unix()
}

// header writes "VA <size>" or "HD" and the return flags of a hit.
func (st *store) header(out *bytes.Buffer, m *metaReq, it *item) {
	if m.has('v') {
		fmt.Fprintf(out, "VA %d", len(it.value))
	} else {
		out.WriteString("HD")
	}
	st.ret(out, m, it)
}

func (st *store) ms(out *bytes.Buffer, m *metaReq, data []byte) {
	mode := byte('S')
	if tok, ok := m.tokens['M']; ok {
		mode = strings.ToUpper(tok)[0]
	}
	old := st.lookup(m.key)
	stale := false
	status := "HD"
	switch {
	case m.has('C') && old == nil:
		status = "NF"
	case m.has('C') && m.unum('C', 0) != old.cas:
		if m.has('I') && m.unum('C', 0) < old.cas {
			stale = true // an invalidation: stored, but marked stale
		} else {
			status = "EX"
		}
	case mode == 'E' && old != nil:
		status = "NS"
	case (mode == 'R' || mode == 'A' || mode == 'P') && old == nil:
		status = "NS"
	}
	if status != "HD" {
		out.WriteString(status)
		st.ret(out, m, nil)
		out.WriteString("\r\n")
		return
	}
	var it *item
	switch mode {
	case 'A':
		it = &item{value: concat(old.value, data), flags: old.flags, exp: old.exp}
	case 'P':
		it = &item{value: concat(data, old.value), flags: old.flags, exp: old.exp}
	default:
		flags, _ := parseFlags(m.tokens['F'])
		it = &item{value: bytes.Clone(data), flags: flags, exp: st.expiry(m.num('T', 0))}
	}
	it.cas = st.nextCAS()
	if stale {
		it.stale, it.won = true, old.won
	}
	st.items[m.key] = it
	if !m.has('q') {
		out.WriteString("HD")
		st.ret(out, m, it)
		out.WriteString("\r\n")
	}
}

func (st *store) md(out *bytes.Buffer, m *metaReq) {
	it := st.lookup(m.key)
	status := "HD"
	switch {
	case it == nil:
		status = "NF"
	case m.has('C') && m.unum('C', 0) != it.cas:
		status = "EX"
	case m.has('I'):
		it.stale, it.won, it.cas = true, false, st.nextCAS()
		if m.has('T') {
			it.exp = st.expiry(m.num('T', 0))
		}
	default:
		delete(st.items, m.key)
	}
	if status == "HD" && m.has('q') {
		return
	}
	out.WriteString(status)
	st.ret(out, m, nil)
	out.WriteString("\r\n")
}

func (st *store) ma(out *bytes.Buffer, m *metaReq) {
	incr := !strings.ContainsAny(m.tokens['M'], "Dd-")
	it := st.lookup(m.key)
	var n uint64
	switch {
	case it == nil && m.has('N'):
		n = m.unum('J', 0)
		it = &item{value: []byte(strconv.FormatUint(n, 10)), exp: st.expiry(m.num('N', 0)), cas: st.nextCAS()}
		st.items[m.key] = it
	case it == nil:
		out.WriteString("NF")
		st.ret(out, m, nil)
		out.WriteString("\r\n")
		return
	case m.has('C') && m.unum('C', 0) != it.cas:
		out.WriteString("EX")
		st.ret(out, m, nil)
		out.WriteString("\r\n")
		return
	default:
		var ok bool
		if n, ok = st.addDelta(it, incr, m.unum('D', 1)); !ok {
			out.WriteString("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
			return
		}
		if m.has('T') {
			it.exp = st.expiry(m.num('T', 0))
		}
	}
	if m.has('q') {
		return // memcached 1.6.18 hides a successful ma in quiet mode, value and all
	}
	num := strconv.FormatUint(n, 10)
	if m.has('v') {
		fmt.Fprintf(out, "VA %d", len(num))
	} else {
		out.WriteString("HD")
	}
	st.ret(out, m, it)
	out.WriteString("\r\n")
	if m.has('v') {
		out.WriteString(num + "\r\n")
	}
}

// me answers the debug command roughly: memcached's size counts its item
// header, which this store has not.
func (st *store) me(out *bytes.Buffer, m *metaReq) {
	it := st.lookup(m.key)
	if it == nil {
		out.WriteString("EN\r\n")
		return
	}
	fmt.Fprintf(out, "ME %s exp=%d la=%d cas=%d fetch=%s cls=1 size=%d\r\n",
		m.rawKey(), st.ttl(it), st.unix()-it.access, it.cas, cond(it.fetched, "yes", "no"), len(m.key)+len(it.value)+48)
}
