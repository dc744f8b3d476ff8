package hostile_test

import (
	"bufio"
	"fmt"
	"net"

	"github.com/memkit/memkit/internal/hostile"
)

// A server that answers correctly, except that its second reply on each
// connection comes twice.
func Example() {
	s, err := hostile.New(func(req hostile.Request, w *hostile.Reply) {
		w.WriteCorrect()
		if req.N == 1 {
			w.WriteCorrect()
		}
	})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "ms greeting 5\r\nhello\r\nmg greeting v\r\nmn\r\n")
	r := bufio.NewReader(conn)
	for line := ""; line != "MN\r\n"; {
		if line, err = r.ReadString('\n'); err != nil {
			panic(err)
		}
		fmt.Printf("%q\n", line)
	}
	// Output:
	// "HD\r\n"
	// "VA 5\r\n"
	// "hello\r\n"
	// "VA 5\r\n"
	// "hello\r\n"
	// "MN\r\n"
}
