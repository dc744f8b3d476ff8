package memclient

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzDecode feeds arbitrary server bytes to both protocols' reply parsers
// for every kind of request: they must return (an error or a result)
// without panicking, hanging, or allocating past the bytes they were given.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		"VA 5 f1 c2 t-1 W O0\r\nhello\r\n",
		"VA 3 f0 c9 k key O0\r\nabc\r\nMN\r\n",
		"EN O0\r\n", "HD O0\r\nHD O1\r\n", "NS O0\r\n", "EX O0\r\n", "NF O0\r\n", "MN\r\n",
		"EN O1\r\n", "VA 2 O0\r\n10\r\n", "VA 4294967296 O0\r\n",
		"VALUE k 0 5 7\r\nhello\r\nEND\r\n",
		"VALUE k 0 99999999999\r\nx\r\nEND\r\n",
		"STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n",
		"SERVER_ERROR object too large for cache\r\n",
		"CLIENT_ERROR bad command line format\r\n",
		"ERROR\r\n", "STORED\r\n", "EXISTS\r\n", "NOT_FOUND\r\n", "DELETED\r\n",
		"TOUCHED\r\n", "42\r\n", "VA 2\r\n10\r\n", "OK\r\n", "VERSION 1.6.18\r\n",
		"VA 18446744073709551615\r\n", "\r\n", "VA", "VA 1 f4294967296\r\nx\r\n",
	}
	for _, s := range seeds {
		for op := opGet; op <= opNoop; op++ {
			f.Add([]byte(s), uint8(op), false)
			f.Add([]byte(s), uint8(op), true)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, op uint8, text bool) {
		if opcode(op) > opNoop {
			return
		}
		rr := replyReader{br: bufio.NewReaderSize(bytes.NewReader(data), 64), addr: "fuzz", maxItem: 1 << 20}
		for i := 0; i < 8; i++ { // several replies from one stream
			r := &request{op: opcode(op), key: "k", keys: []string{"k", "key"}, opaque: uint32(i)}
			var err error
			if text {
				err = rr.decodeText(r)
			} else {
				_, err = rr.decodeMeta(r)
			}
			if err != nil {
				return
			}
			if r.resItem != nil && len(r.resItem.Value) > len(data) {
				t.Fatalf("value of %d bytes from %d bytes of input", len(r.resItem.Value), len(data))
			}
		}
	})
}

// FuzzCheckKey: a key that passes checkKey can never carry protocol.
func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{"k", "a b", "k\r\nflush_all", "ключ", "\x7f", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if checkKey(key) != nil {
			return
		}
		if len(key) == 0 || len(key) > 250 || bytes.ContainsAny([]byte(key), " \r\n\t\x00\x7f") {
			t.Fatalf("checkKey accepted %q", key)
		}
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		r := &request{op: opGet, key: key, opaque: 7}
		enc, err := appendMeta(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(enc)
		w.Flush()
		if bytes.Count(buf.Bytes(), []byte("\r\n")) != 1 || bytes.Count(buf.Bytes(), []byte(" ")) != 5 {
			t.Fatalf("key %q produced %q", key, buf.Bytes())
		}
	})
}
