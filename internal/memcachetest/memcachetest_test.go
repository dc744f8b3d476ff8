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
