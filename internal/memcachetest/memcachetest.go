// Package memcachetest starts real memcached processes on free loopback ports
// for tests: plain, TLS (with a certificate generated in the test), ASCII auth,
// and with chosen memory and item sizes. It never talks to a daemon that
// happens to run on 11211.
//
// A server started with Start is stopped by t.Cleanup, and is killed by the
// kernel (PR_SET_PDEATHSIG) if the test binary dies first, so no process
// outlives the tests. Stop, Kill, Freeze (SIGSTOP), Resume (SIGCONT) and
// Restart exist for fault tests.
//
// When the memcached binary is missing the test is skipped with a hint on
// how to install it, unless CI=true, where it fails.
package memcachetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
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
	tls  bool
	dir  string // temporary files (certificate, auth file)

	mu   sync.Mutex    // protects cmd and done
	cmd  *exec.Cmd     // the running process, nil when stopped
	done chan struct{} // closed when cmd has been reaped
}

// Binary returns the path of the memcached binary, or skips the test (fails
// it when CI=true) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := findBinary()
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err)
	return ""
}

func findBinary() (string, error) {
	if path, err := exec.LookPath("memcached"); err == nil {
		return path, nil
	}
	for _, p := range []string{"/usr/bin/memcached", "/usr/local/bin/memcached", "/usr/sbin/memcached"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNoBinary
}

// ErrNoBinary is returned by Launch when memcached is not installed.
var ErrNoBinary = errors.New("memcachetest: memcached not found: run `make deps` (or `apt-get install memcached`)")

// Start starts a memcached process and waits until it accepts connections.
// The process is killed when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if _, err := findBinary(); err != nil {
		Binary(t) // skips, or fails under CI=true
	}
	s, err := Launch(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Launch starts a memcached process without a testing.TB, for TestMain and
// example tests. The caller must call Close. It returns ErrNoBinary when
// memcached is not installed.
func Launch(opts Options) (*Server, error) {
	bin, err := findBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "memcachetest")
	if err != nil {
		return nil, err
	}
	s := &Server{tls: opts.TLS, dir: dir}
	mem := opts.MemoryMB
	if mem == 0 {
		mem = 64
	}
	base := []string{"-l", "127.0.0.1", "-U", "0", "-m", strconv.Itoa(mem), "-t", "2", "-c", "1024"}
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
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	// Pdeathsig fires when the starting OS thread exits; keep it for the
	// duration of the start so the runtime cannot retire it mid-call.
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
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
			return fmt.Errorf("memcached exited: %v: %s", err, stderr.String())
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
	return errors.New("memcached did not accept connections within 10s: " + stderr.String())
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

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
}

// Freeze stops the process with SIGSTOP: connections stay open but nothing
// is answered, like a server that hangs. It returns once every thread of
// the process has stopped, so no request sent afterwards is answered.
func (s *Server) Freeze() {
	s.signal(syscall.SIGSTOP)
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	for i := 0; i < 1000 && !allStopped(cmd.Process.Pid); i++ {
		time.Sleep(time.Millisecond)
	}
}

// allStopped reports whether every thread of pid is in state T (stopped).
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return true // no procfs: nothing to wait on
	}
	for _, task := range tasks {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			continue
		}
		// The state follows the parenthesised command name.
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 || i+2 >= len(stat) || (stat[i+2] != 'T' && stat[i+2] != 't') {
			return false
		}
	}
	return true
}

// Resume continues a frozen process (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

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

// writeCert writes a fresh self-signed ECDSA certificate for 127.0.0.1.
func writeCert(dir string) (certFile, keyFile string, pool *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "memkit test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", "", nil, err
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool, nil
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
