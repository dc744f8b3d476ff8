package hostile_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/hostile"
	"github.com/memkit/memkit/internal/leakcheck"
)

// exchange is what a client sends and what memcached 1.6.18 answers.
type exchange struct {
	send, want string
}

// conversation is one connection's worth of requests to a fresh server and
// the replies of memcached 1.6.18, checked against the real one by
// TestConversationMemcached. CAS values count from 1, one per change.
var conversation = []exchange{
	// meta: misses, O and k echoed, q
	{"mn\r\n", "MN\r\n"},
	{"mg foo v\r\n", "EN\r\n"},
	{"mg foo v O123 k\r\n", "EN O123 kfoo\r\n"},
	{"mg foo v c f s t O1 k q\r\nmn\r\n", "MN\r\n"},
	// meta set, modes, and what a get returns
	{"ms foo 3 O9 k\r\nbar\r\n", "HD O9 kfoo\r\n"},
	{"ms foo 3 O9 k c\r\nbar\r\n", "HD O9 kfoo c2\r\n"},
	{"ms foo 3 q O9\r\nbar\r\nmn\r\n", "MN\r\n"},
	{"ms foo 3 MA O9 k\r\nbaz\r\n", "HD O9 kfoo\r\n"},
	{"ms nope 3 ME O9 k\r\nbaz\r\n", "HD O9 knope\r\n"},
	{"ms foo 3 ME O9 k\r\nbaz\r\n", "NS O9 kfoo\r\n"},
	{"ms x 2 MR\r\nab\r\n", "NS\r\n"},
	{"ms x 2 MP\r\nab\r\n", "NS\r\n"},
	{"ms none 1 C3 O2 k\r\nx\r\n", "NF O2 knone\r\n"},
	{"ms foo 1 C3 O2 k\r\nx\r\n", "EX O2 kfoo\r\n"},
	{"mg foo v f c t s k O77\r\n", "VA 6 f0 c4 t-1 s6 kfoo O77\r\nbarbaz\r\n"},
	{"mg foo O77 k h\r\n", "HD O77 kfoo h1\r\n"},
	{"mg foo q\r\nmn\r\n", "HD\r\nMN\r\n"},
	{"mg foo q v k\r\nmn\r\n", "VA 6 kfoo\r\nbarbaz\r\nMN\r\n"},
	{"ms p 1 F7 T0\r\nb\r\nms p 1 MP F9\r\na\r\nmg p v f c\r\n", "HD\r\nHD\r\nVA 2 f7 c7\r\nab\r\n"},
	// meta delete
	{"md foo O5 k\r\n", "HD O5 kfoo\r\n"},
	{"md foo O5 k\r\n", "NF O5 kfoo\r\n"},
	{"md foo q\r\nmn\r\n", "NF\r\nMN\r\n"},
	{"md nope q\r\nmn\r\n", "MN\r\n"},
	{"md p C1 O3\r\n", "EX O3\r\n"},
	// meta arithmetic
	{"ma cnt O4 k\r\n", "NF O4 kcnt\r\n"},
	{"ma cnt O4 k N0 J10 v\r\n", "VA 2 O4 kcnt\r\n10\r\n"},
	{"ma cnt v c t\r\n", "VA 2 c9 t-1\r\n11\r\n"},
	{"ma cnt MD D20 v\r\n", "VA 1\r\n0\r\n"},
	{"get cnt\r\n", "VALUE cnt 0 2\r\n0 \r\nEND\r\n"}, // decr pads in place
	{"ma cnt q\r\nma cnt q v\r\nma cnt\r\nmn\r\n", "HD\r\nMN\r\n"},
	{"ma cnt C1 v\r\n", "EX\r\n"},
	{"ma cnt M- D2 v\r\n", "VA 1\r\n1\r\n"},
	{"ms txt 2\r\nab\r\nma txt\r\n", "HD\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
	// leases: vivify, win, stale
	{"mg lk v c f t N30\r\n", "VA 0 c16 f0 t-1 W\r\n\r\n"},
	{"mg lk v c f N30\r\n", "VA 0 c16 f0 Z\r\n\r\n"},
	{"md lk I q\r\nmn\r\n", "MN\r\n"},
	{"mg lk c\r\n", "HD c17 X W\r\n"},
	{"mg lk c\r\n", "HD c17 Z X\r\n"},
	{"ms lk 3 I C1\r\nold\r\n", "HD\r\n"},
	{"mg lk v c\r\n", "VA 3 c18 Z X\r\nold\r\n"},
	{"ms lk 3 C999\r\nnew\r\n", "EX\r\n"},
	{"ms lk 3 C18 T0\r\nnew\r\n", "HD\r\n"},
	{"mg lk v c\r\n", "VA 3 c19\r\nnew\r\n"},
	// meta errors
	{"mg\r\n", "ERROR\r\n"},
	{"ms foo\r\n", "CLIENT_ERROR bad command line format\r\n"},
	{"ms foo 3 Z\r\nabc\r\n", "CLIENT_ERROR invalid flag\r\n"},
	{"ms foo 3\r\nabcd\r\n", "CLIENT_ERROR bad data chunk\r\nERROR\r\n"},
	{"mg foo v O" + strings.Repeat("9", 40) + "\r\n", "CLIENT_ERROR opaque token too long\r\n"},
	{"mg foo v k k\r\n", "CLIENT_ERROR duplicate flag\r\n"},
	{"mg foo x\r\n", "CLIENT_ERROR invalid flag\r\n"},
	{"ms y 1 M\r\n3\r\n", "CLIENT_ERROR incorrect length for M token\r\n"},
	{"ms y 1 MX\r\n3\r\n", "CLIENT_ERROR invalid mode for ms M token\r\n"},
	{"ms y 1 Tx\r\nx\r\n", "CLIENT_ERROR bad token in command line format\r\n"},
	{"ma cnt Dx\r\n", "CLIENT_ERROR invalid or duplicate flag\r\n"},
	{"mg " + strings.Repeat("k", 250) + " s\r\n", "EN\r\n"},
	{"mg " + strings.Repeat("k", 251) + " v\r\n", "CLIENT_ERROR bad command line format\r\n"},
	{"mn O5\r\n", "MN\r\n"},
	{"bogus\r\n", "ERROR\r\n"},
	{"\r\n", "ERROR\r\n"},
	// text
	{"set a 5 0 3\r\nabc\r\n", "STORED\r\n"},
	{"get a nope a\r\n", "VALUE a 5 3\r\nabc\r\nVALUE a 5 3\r\nabc\r\nEND\r\n"},
	{"gets a\r\n", "VALUE a 5 3 20\r\nabc\r\nEND\r\n"},
	{"add a 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
	{"replace nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n"},
	{"append a 0 0 2\r\nde\r\n", "STORED\r\n"},
	{"prepend a 9 0 1\r\n_\r\n", "STORED\r\n"},
	{"gets a\r\n", "VALUE a 5 6 22\r\n_abcde\r\nEND\r\n"},
	{"cas a 0 0 1 1\r\nx\r\n", "EXISTS\r\n"},
	{"cas nope 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n"},
	{"cas a 0 0 1 22\r\nx\r\n", "STORED\r\n"},
	{"set n 0 0 2\r\n10\r\n", "STORED\r\n"},
	{"incr n 5\r\n", "15\r\n"},
	{"decr n 100\r\n", "0\r\n"},
	{"get n\r\n", "VALUE n 0 2\r\n0 \r\nEND\r\n"},
	{"incr nope 1\r\n", "NOT_FOUND\r\n"},
	{"incr a 1\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
	{"incr n x\r\n", "CLIENT_ERROR invalid numeric delta argument\r\n"},
	{"touch n 0\r\n", "TOUCHED\r\n"},
	{"touch nope 0\r\n", "NOT_FOUND\r\n"},
	{"gat 0 n nope\r\n", "VALUE n 0 2\r\n0 \r\nEND\r\n"},
	{"gat 0\r\n", "END\r\n"},
	{"delete n\r\n", "DELETED\r\n"},
	{"delete n\r\n", "NOT_FOUND\r\n"},
	{"delete a 0\r\n", "DELETED\r\n"},
	{"delete a 5\r\n", "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"},
	{"set q 0 0 1 noreply\r\nq\r\nget q\r\n", "VALUE q 0 1\r\nq\r\nEND\r\n"},
	{"set x 0 -1 1\r\n1\r\nget x\r\n", "STORED\r\nEND\r\n"},
	{"set a x 0 1\r\n1\r\n", "CLIENT_ERROR bad command line format\r\nERROR\r\n"},
	{"set a 0 0 -1\r\n", "CLIENT_ERROR bad command line format\r\n"},
	{"set big 0 0 2000000\r\n" + strings.Repeat("b", 2000000) + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
	{"ms big 2000000\r\n" + strings.Repeat("b", 2000000) + "\r\n", "SERVER_ERROR object too large for cache\r\n"},
	{"version\r\n", "VERSION 1.6.18\r\n"},
	{"verbosity 1\r\n", "OK\r\n"},
	{"get\r\n", "ERROR\r\n"},
	{"flush_all\r\n", "OK\r\n"},
	{"get q\r\n", "END\r\n"},
	{"flush_all noreply\r\nmn\r\n", "MN\r\n"},
}

// converse runs the conversation against addr and checks every reply.
func converse(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	r := bufio.NewReader(conn)
	for _, x := range conversation {
		// An "mn" after each exchange marks the end of its replies.
		require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
		_, err := conn.Write([]byte(x.send + "mn\r\n"))
		require.NoError(t, err)
		marks := 1
		for _, line := range strings.Split(x.send, "\r\n") {
			if line == "mn" || strings.HasPrefix(line, "mn ") {
				marks++
			}
		}
		var got strings.Builder
		for strings.Count(got.String(), "MN\r\n") < marks {
			line, err := r.ReadString('\n')
			got.WriteString(line)
			require.NoError(t, err, "%q: got %q", x.send, got.String())
		}
		require.Equal(t, x.want, strings.TrimSuffix(got.String(), "MN\r\n"), "sent %.80q", x.send)
	}
}

func TestConversation(t *testing.T) {
	leakcheck.Check(t)
	s := hostile.Start(t, hostile.Correctly)
	converse(t, s.Addr())
}
