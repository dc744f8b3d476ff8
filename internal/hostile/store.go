package hostile

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Version is the version the server claims to be.
const Version = "1.6.18"

const (
	maxKey = 250
	// maxRelative is memcached's limit between a relative TTL and a Unix time.
	maxRelative = 30 * 24 * 60 * 60
)

// item is one stored value.
type item struct {
	value   []byte
	flags   uint32
	cas     uint64
	exp     int64 // Unix seconds; 0: never
	stale   bool  // invalidated (md I)
	won     bool  // a recache token (W) was handed out
	fetched bool
	access  int64 // Unix seconds of the last access
}

// store is the server's memory and the answers memcached 1.6.18 gives to
// what it is sent. It covers the commands clients use, in the text and
// meta protocols; it does not evict, and it ignores flush_all's delay.
// It is not safe for concurrent use (Server.mu guards it).
type store struct {
	items map[string]*item
	cas   uint64
	now   func() time.Time // clock seam
	start int64

	conns, totalConns int // for stats; set by the server
}

func newStore() *store {
	st := &store{items: make(map[string]*item), now: time.Now}
	st.start = st.unix()
	return st
}

func (st *store) unix() int64 { return st.now().Unix() }

// lookup returns the live item under key, or nil; it forgets expired items.
func (st *store) lookup(key string) *item {
	it := st.items[key]
	if it != nil && it.exp != 0 && it.exp <= st.unix() {
		delete(st.items, key)
		return nil
	}
	return it
}

func (st *store) nextCAS() uint64 {
	st.cas++
	return st.cas
}

// expiry turns a TTL as the protocol sends it into Unix seconds: 0 is never,
// a negative TTL has already expired, more than 30 days is a Unix time.
func (st *store) expiry(ttl int64) int64 {
	switch {
	case ttl == 0:
		return 0
	case ttl < 0:
		return st.unix() - 1
	case ttl > maxRelative:
		return ttl
	}
	return st.unix() + ttl
}

// ttl is what the "t" flag reports: seconds left, or -1 for never.
func (st *store) ttl(it *item) int64 {
	if it.exp == 0 {
		return -1
	}
	return it.exp - st.unix()
}

// exec runs one request and returns memcached's reply. problem is the
// error the request's data block got while it was read.
func (st *store) exec(line string, data []byte, problem string) []byte {
	f := strings.Fields(line)
	if len(f) == 0 {
		return []byte("ERROR\r\n")
	}
	var out bytes.Buffer
	if len(f) > 1 && len(f[1]) > maxKey && f[0] != "gat" && f[0] != "gats" {
		return []byte("CLIENT_ERROR bad command line format\r\n")
	}
	switch f[0] {
	case "get", "gets":
		st.get(&out, f[0] == "gets", f[1:], nil)
	case "gat", "gats":
		if len(f) < 2 {
			return []byte("ERROR\r\n")
		}
		ttl, err := strconv.ParseInt(f[1], 10, 32)
		if err != nil {
			return []byte("CLIENT_ERROR invalid exptime argument\r\n")
		}
		st.get(&out, f[0] == "gats", f[2:], &ttl)
	case "set", "add", "replace", "append", "prepend", "cas":
		st.update(&out, f, data, problem)
	case "delete":
		st.delete(&out, f)
	case "incr", "decr":
		st.incr(&out, f)
	case "touch":
		st.touch(&out, f)
	case "flush_all":
		if len(f) > 1 && f[1] != "noreply" {
			if _, err := strconv.ParseInt(f[1], 10, 32); err != nil {
				return []byte("CLIENT_ERROR bad command line format\r\n")
			}
		}
		clear(st.items)
		reply(&out, f, "OK")
	case "version":
		out.WriteString("VERSION " + Version + "\r\n")
	case "verbosity":
		if len(f) < 2 {
			return []byte("ERROR\r\n")
		}
		reply(&out, f, "OK")
	case "stats":
		st.stats(&out, f[1:])
	case "quit":
	case "mn":
		out.WriteString("MN\r\n")
	case "mg", "ms", "md", "ma", "me":
		if len(f) < 2 {
			return []byte("ERROR\r\n")
		}
		st.meta(&out, f, data, problem)
	default:
		out.WriteString("ERROR\r\n")
	}
	return out.Bytes()
}

// reply writes a text reply line unless the command ends with noreply.
func reply(out *bytes.Buffer, f []string, s string) {
	if f[len(f)-1] != "noreply" {
		out.WriteString(s + "\r\n")
	}
}

// get answers get, gets, gat and gats; ttl is set for the last two.
func (st *store) get(out *bytes.Buffer, withCAS bool, keys []string, ttl *int64) {
	if len(keys) == 0 && ttl == nil {
		out.WriteString("ERROR\r\n")
		return
	}
	for _, key := range keys {
		if len(key) > maxKey {
			out.Reset()
			out.WriteString("CLIENT_ERROR bad command line format\r\n")
			return
		}
		it := st.lookup(key)
		if it == nil {
			continue
		}
		if ttl != nil {
			it.exp = st.expiry(*ttl)
		}
		it.fetched, it.access = true, st.unix()
		fmt.Fprintf(out, "VALUE %s %d %d", key, it.flags, len(it.value))
		if withCAS {
			fmt.Fprintf(out, " %d", it.cas)
		}
		out.WriteString("\r\n")
		out.Write(it.value)
		out.WriteString("\r\n")
	}
	out.WriteString("END\r\n")
}

// update answers set, add, replace, append, prepend and cas.
func (st *store) update(out *bytes.Buffer, f []string, data []byte, problem string) {
	if _, ok := dataSize(strings.Join(f, " ")); !ok {
		out.WriteString("CLIENT_ERROR bad command line format\r\n")
		return
	}
	if problem != "" {
		reply(out, f, problem)
		return
	}
	flags, _ := parseFlags(f[2])
	ttl, _ := strconv.ParseInt(f[3], 10, 32)
	key := f[1]
	old := st.lookup(key)
	var status string
	switch f[0] {
	case "set":
		status = "STORED"
	case "add":
		status = cond(old == nil, "STORED", "NOT_STORED")
	case "replace", "append", "prepend":
		status = cond(old != nil, "STORED", "NOT_STORED")
	case "cas":
		want, _ := strconv.ParseUint(f[5], 10, 64)
		switch {
		case old == nil:
			status = "NOT_FOUND"
		case old.cas != want:
			status = "EXISTS"
		default:
			status = "STORED"
		}
	}
	if status == "STORED" {
		switch f[0] {
		case "append":
			st.items[key] = &item{value: concat(old.value, data), flags: old.flags, exp: old.exp, cas: st.nextCAS()}
		case "prepend":
			st.items[key] = &item{value: concat(data, old.value), flags: old.flags, exp: old.exp, cas: st.nextCAS()}
		default:
			st.items[key] = &item{value: bytes.Clone(data), flags: flags, exp: st.expiry(ttl), cas: st.nextCAS()}
		}
	}
	reply(out, f, status)
}

func (st *store) delete(out *bytes.Buffer, f []string) {
	args := f[1:]
	if len(args) > 0 && args[len(args)-1] == "noreply" {
		args = args[:len(args)-1]
	}
	if len(args) == 0 {
		out.WriteString("ERROR\r\n")
		return
	}
	if len(args) > 2 || (len(args) == 2 && args[1] != "0") {
		out.WriteString("CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n")
		return
	}
	if st.lookup(args[0]) == nil {
		reply(out, f, "NOT_FOUND")
		return
	}
	delete(st.items, args[0])
	reply(out, f, "DELETED")
}

func (st *store) incr(out *bytes.Buffer, f []string) {
	if len(f) < 3 {
		out.WriteString("ERROR\r\n")
		return
	}
	delta, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		out.WriteString("CLIENT_ERROR invalid numeric delta argument\r\n")
		return
	}
	it := st.lookup(f[1])
	if it == nil {
		reply(out, f, "NOT_FOUND")
		return
	}
	n, ok := st.addDelta(it, f[0] == "incr", delta)
	if !ok {
		out.WriteString("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
		return
	}
	reply(out, f, strconv.FormatUint(n, 10))
}

// addDelta adds delta to (or takes it from, stopping at 0) the number it
// holds, as memcached does: a result shorter than the old value is padded
// with spaces in place. It reports false when the value is not a number.
func (st *store) addDelta(it *item, incr bool, delta uint64) (uint64, bool) {
	n, err := strconv.ParseUint(strings.TrimRight(string(it.value), " \r\n\t"), 10, 64)
	if err != nil || len(it.value) == 0 {
		return 0, false
	}
	switch {
	case incr:
		n += delta // wraps at 2^64, as memcached's does
	case delta > n:
		n = 0
	default:
		n -= delta
	}
	s := strconv.FormatUint(n, 10)
	if len(s) < len(it.value) {
		s += strings.Repeat(" ", len(it.value)-len(s))
	}
	it.value = []byte(s)
	it.cas = st.nextCAS()
	return n, true
}

func (st *store) touch(out *bytes.Buffer, f []string) {
	if len(f) < 3 {
		out.WriteString("ERROR\r\n")
		return
	}
	ttl, err := strconv.ParseInt(f[2], 10, 32)
	if err != nil {
		out.WriteString("CLIENT_ERROR invalid exptime argument\r\n")
		return
	}
	it := st.lookup(f[1])
	if it == nil {
		reply(out, f, "NOT_FOUND")
		return
	}
	it.exp = st.expiry(ttl)
	reply(out, f, "TOUCHED")
}

func (st *store) stats(out *bytes.Buffer, args []string) {
	if len(args) > 0 {
		switch args[0] {
		case "settings", "items", "slabs", "sizes", "conns":
			out.WriteString("END\r\n")
		case "reset":
			out.WriteString("RESET\r\n")
		default:
			out.WriteString("ERROR\r\n")
		}
		return
	}
	now := st.unix()
	for _, kv := range [][2]string{
		{"pid", strconv.Itoa(os.Getpid())},
		{"uptime", strconv.FormatInt(now-st.start, 10)},
		{"time", strconv.FormatInt(now, 10)},
		{"version", Version},
		{"curr_connections", strconv.Itoa(st.conns)},
		{"total_connections", strconv.Itoa(st.totalConns)},
		{"curr_items", strconv.Itoa(len(st.items))},
	} {
		out.WriteString("STAT " + kv[0] + " " + kv[1] + "\r\n")
	}
	out.WriteString("END\r\n")
}

// parseFlags parses client flags as memcached does: any unsigned number,
// kept to 32 bits.
func parseFlags(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}

func concat(a, b []byte) []byte {
	return append(append(make([]byte, 0, len(a)+len(b)), a...), b...)
}

func cond(c bool, yes, no string) string {
	if c {
		return yes
	}
	return no
}
