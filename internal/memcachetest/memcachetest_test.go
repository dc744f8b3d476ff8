package memcachetest_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/memkit/memkit/internal/memcachetest"
)

func roundTrip(t *testing.T, conn net.Conn, cmd string) string {
	t.Helper()
	require.NoError(t, conn.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := conn.Write([]byte(cmd))
	require.NoError(t, err)
	line, err := bufio.NewReader(conn).ReadString('\n')
	require.NoError(t, err)
	return strings.TrimSpace(line)
}

func TestPlain(t *testing.T) {
	s := memcachetest.Start(t, memcachetest.Options{})
	conn, err := net.Dial("tcp", s.Addr)
	require.NoError(t, err)
	defer conn.Close()
	require.Equal(t, "STORED", roundTrip(t, conn, "set k 0 0 1\r\nv\r\n"))
	require.True(t, strings.HasPrefix(s.Addr, "127.0.0.1:"))
}

func TestTLS(t *testing.T) {
	s := memcachetest.Start(t, memcachetest.Options{TLS: true})
	conn, err := tls.Dial("tcp", s.Addr, s.TLSConfig)
	require.NoError(t, err)
	defer conn.Close()
	require.Equal(t, "MN", roundTrip(t, conn, "mn\r\n"))
}

func TestAuth(t *testing.T) {
	s := memcachetest.Start(t, memcachetest.Options{Username: "alice", Password: "s3cret"})
	conn, err := net.Dial("tcp", s.Addr)
	require.NoError(t, err)
	defer conn.Close()
	require.Equal(t, "STORED", roundTrip(t, conn, "set auth 0 0 12\r\nalice s3cret\r\n"))
	require.Equal(t, "MN", roundTrip(t, conn, "mn\r\n"))

	bad, err := net.Dial("tcp", s.Addr)
	require.NoError(t, err)
	defer bad.Close()
	require.Contains(t, roundTrip(t, bad, "set auth 0 0 9\r\nalice bad\r\n"), "CLIENT_ERROR")
}

func TestFreezeKillRestart(t *testing.T) {
	s := memcachetest.Start(t, memcachetest.Options{})
	conn, err := net.Dial("tcp", s.Addr)
	require.NoError(t, err)
	defer conn.Close()
	s.Freeze()
	require.NoError(t, conn.SetDeadline(time.Now().Add(100*time.Millisecond)))
	_, _ = conn.Write([]byte("mn\r\n"))
	_, err = bufio.NewReader(conn).ReadString('\n')
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "a frozen server must not answer")
	s.Resume()

	s.Kill()
	_, err = net.DialTimeout("tcp", s.Addr, time.Second)
	require.Error(t, err, "a killed server must refuse connections")
	require.NoError(t, s.Restart())
	conn2, err := net.Dial("tcp", s.Addr)
	require.NoError(t, err)
	defer conn2.Close()
	require.Equal(t, "MN", roundTrip(t, conn2, "mn\r\n"))
}

// TestProxy starts nutcracker in front of two servers, named and weighted,
// and stores through it: the value lands on exactly one of them.
func TestProxy(t *testing.T) {
	srvs := memcachetest.StartN(t, 2, memcachetest.Options{})
	p := memcachetest.StartProxy(t, memcachetest.ProxyOptions{
		Servers: []memcachetest.ProxyServer{
			{Addr: srvs[0].Addr, Weight: 1, Name: "one"},
			{Addr: srvs[1].Addr, Weight: 2, Name: "two"},
		},
		Distribution: "ketama",
		Hash:         "md5",
		Settings:     []string{"timeout: 2000"},
	})
	require.True(t, strings.HasPrefix(p.Addr, "127.0.0.1:"))
	require.Contains(t, p.Config, "   - "+srvs[1].Addr+":2 two\n")
	require.Contains(t, p.Config, "  hash: md5\n")
	require.Contains(t, p.Config, "  timeout: 2000\n")

	conn, err := net.Dial("tcp", p.Addr)
	require.NoError(t, err)
	defer conn.Close()
	require.Equal(t, "STORED", roundTrip(t, conn, "set k 0 0 1\r\nv\r\n"))
	held := 0
	for _, s := range srvs {
		c, err := net.Dial("tcp", s.Addr)
		require.NoError(t, err)
		if roundTrip(t, c, "mg k v\r\n") == "VA 1" {
			held++
		}
		c.Close()
	}
	require.Equal(t, 1, held, "the key is on exactly one server behind the proxy")

	p.Kill()
	_, err = net.DialTimeout("tcp", p.Addr, time.Second)
	require.Error(t, err, "a killed proxy must refuse connections")
	require.NoError(t, p.Restart())
	conn2, err := net.Dial("tcp", p.Addr)
	require.NoError(t, err)
	defer conn2.Close()
	require.Equal(t, "STORED", roundTrip(t, conn2, "set k 0 0 1\r\nw\r\n"))
}

func TestProxyMissing(t *testing.T) {
	_, err := memcachetest.LookupProxy(memcachetest.ProxyOptions{Binary: "no-such-nutcracker"})
	require.ErrorIs(t, err, memcachetest.ErrNoProxy)
	require.Contains(t, err.Error(), "apt-get install nutcracker")
}
