package hostile

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzServe reads arbitrary bytes as a client's requests and answers them
// from the store: nothing panics, lines and values stay bounded, and every
// reply is whole lines.
func FuzzServe(f *testing.F) {
	f.Add([]byte("ms k 2 T0 F5\r\nab\r\nmg k v f c t s k O1\r\nma n N0 J5 v\r\nmd k I q\r\nmg k c\r\nmn\r\n"))
	f.Add([]byte("set a 0 0 1\r\n1\r\nincr a 9\r\ngets a b\r\ncas a 0 0 1 2\r\nx\r\ndelete a\r\nstats\r\n"))
	f.Add([]byte("ms k 3\r\nabcd\r\nms k x\r\nset k 0 0 -1\r\nmg k b v k\r\nmg a2V5 b k v\r\n"))
	f.Add([]byte("ms k 99999999\r\nshort"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 16)
		st := newStore()
		for i := 0; i < 1000; i++ {
			line, data, problem, err := readRequest(r)
			if err != nil {
				return
			}
			if len(line) > MaxLine || len(data) > MaxValue {
				t.Fatalf("line of %d bytes, data of %d", len(line), len(data))
			}
			out := st.exec(line, data, problem)
			if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
				t.Fatalf("%q answered %q", line, out)
			}
		}
	})
}
