package faultproxy_test

import (
	"bufio"
	"fmt"
	"net"

	"github.com/memkit/memkit/internal/faultproxy"
	"github.com/memkit/memkit/internal/hostile"
)

// A proxy that swallows one whole reply: a text get of two keys is one
// reply, so both values go, and the next reply comes as usual.
func Example() {
	server, err := hostile.New(hostile.Correctly) // a real memcached in tests
	if err != nil {
		panic(err)
	}
	defer server.Close()
	p, err := faultproxy.New(server.Addr())
	if err != nil {
		panic(err)
	}
	defer p.Close()

	conn, err := net.Dial("tcp", p.Addr())
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	fmt.Fprint(conn, "set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\n")
	for i := 0; i < 2; i++ {
		if _, err := r.ReadString('\n'); err != nil {
			panic(err)
		}
	}

	p.DropReply()
	fmt.Fprint(conn, "get a b\r\nversion\r\n")
	line, err := r.ReadString('\n')
	if err != nil {
		panic(err)
	}
	fmt.Printf("%q\n", line)
	fmt.Printf("%+v\n", p.Stats())
	// Output:
	// "VERSION 1.6.18\r\n"
	// {Accepted:1 Forwarded:3 Dropped:1 Duplicated:0 Cut:0 Resets:0}
}
