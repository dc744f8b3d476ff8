// Package memcachetest starts real memcached processes on free loopback ports
// for tests: plain, TLS (with a certificate generated in the test), ASCII auth,
// and with chosen memory and item sizes; and twemproxy (nutcracker) in front
// of them (StartProxy). It never talks to a daemon that happens to run on
// 11211, nor to a system nutcracker on its default ports.
//
// A server started with Start is stopped by t.Cleanup. On Linux it is also
// killed by the kernel (PR_SET_PDEATHSIG) if the process that started it
// dies first, so no process outlives the tests even when the test binary is
// killed; elsewhere it is killed on every normal exit. Stop, Kill, Freeze
// (SIGSTOP), Resume (SIGCONT) and Restart exist for fault tests; on Windows,
// which has no SIGSTOP, Freeze skips the test.
//
// # When memcached is missing
//
// The binary is the memcached on PATH (or Options.Binary). When there is
// none, each test that calls Start (or Binary) is skipped with a hint on how
// to install it, and Main skips the package's examples, so that `go test -v`
// says what did not run; with CI=true both fail instead.
package memcachetest

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Options select the variant of memcached to start. The zero value is a
// plain server with 64 MB of memory and memcached's default 1 MB item size.
type Options struct {
	// TLS starts the server with -Z and a certificate generated for
	// 127.0.0.1; Server.TLSConfig trusts it.
	TLS bool
	// Username and Password, when set, enable ASCII auth (-Y authfile).
	Username, Password string
	// MemoryMB is the cache size (-m). 0 means 64.
	MemoryMB int
	// MaxItemSize is the -I argument, such as "2m". Empty means the default.
	MaxItemSize string
	// Connections is the connection limit (-c). 0 means 1024.
	Connections int
	// Binary is the memcached binary. Empty means memcached on PATH.
	Binary string
	// Args are extra command-line arguments.
	Args []string
}

// Server is one memcached process. Its methods are safe for concurrent use.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// TLSConfig is a client configuration that trusts the server's
	// certificate; nil unless Options.TLS.
	TLSConfig *tls.Config

	args []string
	prog string // the program's name for messages: memcached or nutcracker
	tls  bool
	dir  string     // temporary files (certificate, auth file, proxy configuration)
	tb   testing.TB // the test that started the server; nil after Launch

	mu   sync.Mutex    // protects cmd and done
	cmd  *exec.Cmd     // the running process, nil when stopped
	done chan struct{} // closed when cmd has been reaped
}

// Binary returns the path of the memcached binary on PATH, or skips the
// test (fails it when CI=true) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := Lookup(Options{})
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err)
	return ""
}

// Lookup returns the memcached binary that Launch would run for opts:
// opts.Binary if set, else memcached on PATH. It returns ErrNoBinary when
// there is none.
func Lookup(opts Options) (string, error) {
	name := opts.Binary
	if name == "" {
		name = "memcached"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w (%v)", ErrNoBinary, err)
	}
	return path, nil
}

// ErrNoBinary is returned by Launch and Lookup when memcached is not
// installed.
var ErrNoBinary = errors.New("memcachetest: memcached not found: run `make deps` (or `apt-get install memcached`)")

// Main runs the tests and examples of a package whose examples need
// memcached, for its TestMain: os.Exit(memcachetest.Main(m, launch)).
// launch starts the servers the examples use and returns what stops them.
//
// When memcached is missing outside CI, Main does not call launch: it
// skips the examples (they cannot skip themselves), says so on stderr, and
// runs the tests, each of which skips itself through Start. With CI=true a
// missing memcached fails the run.
func Main(m *testing.M, launch func() (stop func(), err error)) int {
	flag.Parse()
	if _, err := Lookup(Options{}); err != nil {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "SKIP examples:", err)
		skip := "^Example"
		if f := flag.Lookup("test.skip"); f != nil && f.Value.String() != "" {
			skip = f.Value.String() + "|" + skip
		}
		if err := flag.Set("test.skip", skip); err != nil {
			fmt.Fprintln(os.Stderr, "memcachetest:", err)
			return 1
		}
		return m.Run()
	}
	stop, err := launch()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	return m.Run()
}

// Start starts a memcached process and waits until it accepts connections.
// The process is killed when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := Lookup(opts); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	s, err := Launch(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	s.tb = t
	t.Cleanup(s.Close)
	return s
}

// Launch starts a memcached process without a testing.TB, for TestMain and
// example tests. The caller must call Close. It returns ErrNoBinary when
// memcached is not installed.
func Launch(opts Options) (*Server, error) {
	bin, err := Lookup(opts)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "memcachetest")
	if err != nil {
		return nil, err
	}
	s := &Server{prog: "memcached", tls: opts.TLS, dir: dir}
	mem := opts.MemoryMB
	if mem == 0 {
		mem = 64
	}
	conns := opts.Connections
	if conns == 0 {
		conns = 1024
	}
	base := []string{"-l", "127.0.0.1", "-U", "0", "-m", strconv.Itoa(mem), "-t", "2", "-c", strconv.Itoa(conns)}
	if os.Getuid() == 0 {
		base = append(base, "-u", "root")
	}
	if opts.MaxItemSize != "" {
		base = append(base, "-I", opts.MaxItemSize)
	}
	if opts.TLS {
		certFile, keyFile, pool, err := writeCert(dir)
		if err != nil {
			s.Close()
			return nil, err
		}
		base = append(base, "-Z", "-o", "ssl_chain_cert="+certFile+",ssl_key="+keyFile)
		s.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}
	if opts.Username != "" {
		authFile := filepath.Join(dir, "auth")
		if err := os.WriteFile(authFile, []byte(opts.Username+":"+opts.Password+"\n"), 0o600); err != nil {
			s.Close()
			return nil, err
		}
		base = append(base, "-Y", authFile)
	}
	base = append(base, opts.Args...)

	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("memcachetest: free port: %w", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.args = append([]string{bin, "-p", strconv.Itoa(port)}, base...)
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	s.Close()
	return nil, fmt.Errorf("memcachetest: starting memcached: %w", lastErr)
}

// Close kills the process and removes its temporary files.
func (s *Server) Close() {
	s.Kill()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// start launches the process and waits for it to accept connections.
func (s *Server) start() error {
	cmd := exec.Command(s.args[0], s.args[1:]...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	if err := StartTied(cmd); err != nil {
		return err
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		exited <- cmd.Wait()
		close(done)
	}()

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited: %v: %s", s.prog, err, stderr.String())
		default:
		}
		if s.ready() {
			s.mu.Lock()
			s.cmd, s.done = cmd, done
			s.mu.Unlock()
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return errors.New(s.prog + " did not accept connections within 10s: " + stderr.String())
}

func (s *Server) ready() bool {
	conn, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	if s.tls {
		tc := tls.Client(conn, s.TLSConfig)
		_ = tc.SetDeadline(time.Now().Add(time.Second))
		if err := tc.Handshake(); err != nil {
			return false
		}
	}
	return true
}

// Freeze stops the process with SIGSTOP: connections stay open but nothing
// is answered, like a server that hangs. It returns once the process has
// stopped (on Linux every thread of it, read from /proc; elsewhere as far
// as ps reports), so no request sent afterwards is answered. On Windows,
// which has no SIGSTOP, it skips the test that started the server.
func (s *Server) Freeze() { s.freeze() }

// Resume continues a frozen process (SIGCONT).
func (s *Server) Resume() { s.resume() }

// Pid returns the process ID, or 0 when the server is not running.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// process returns the running process, or nil.
func (s *Server) process() *os.Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	return s.cmd.Process
}

// Kill kills the process (SIGKILL) and waits until its port is closed.
// Killing a stopped server is a no-op.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Stop is Kill; memcached keeps nothing across restarts either way.
func (s *Server) Stop() { s.Kill() }

// Restart kills the server and starts it again, empty, on the same address.
func (s *Server) Restart() error {
	s.Kill()
	var err error
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond) // the port may linger briefly
	}
	return fmt.Errorf("memcachetest: restarting %s: %w", s.Addr, err)
}

// StartN starts n plain servers.
func StartN(t testing.TB, n int, opts Options) []*Server {
	t.Helper()
	out := make([]*Server, n)
	for i := range out {
		out[i] = Start(t, opts)
	}
	return out
}

// Addrs returns the addresses of servers.
func Addrs(servers []*Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Addr
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// limitedBuffer keeps the first 4 KB written to it, for error messages.
type limitedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 4096 - len(b.buf); room > 0 {
		if len(p) > room {
			b.buf = append(b.buf, p[:room]...)
		} else {
			b.buf = append(b.buf, p...)
		}
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
