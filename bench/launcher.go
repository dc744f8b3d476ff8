package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// server is one memcached process on a loopback port. It is safe for
// concurrent use; kill may be called more than once.
type server struct {
	Addr string

	mu   sync.Mutex // protects cmd
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// memcachedVersion returns the output of "memcached -V".
func memcachedVersion(bin string) string {
	out, err := exec.Command(bin, "-V").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	return strings.TrimSpace(string(out))
}

// findMemcached returns the path of the memcached binary: bin if set,
// else the one on PATH, else /usr/bin/memcached.
func findMemcached(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if p, err := exec.LookPath("memcached"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/bin/memcached"); err == nil {
		return "/usr/bin/memcached", nil
	}
	return "", errors.New("memcached not found: install it (apt-get install memcached) or pass -memcached")
}

// startServers starts n memcached processes. On error it kills the ones
// already started.
func startServers(bin string, n, memMB int) ([]*server, error) {
	var out []*server
	for i := 0; i < n; i++ {
		s, err := startServer(bin, memMB)
		if err != nil {
			killAll(out)
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func killAll(servers []*server) {
	for _, s := range servers {
		s.kill()
	}
}

// startServer starts memcached on a free loopback port, retrying with
// another port when the chosen one was taken meanwhile.
func startServer(bin string, memMB int) (*server, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0",
			"-t", "2", "-m", strconv.Itoa(memMB), "-c", "4096"}
		if os.Getuid() == 0 {
			args = append(args, "-u", "root")
		}
		s := &server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		if lastErr = s.start(bin, args); lastErr == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("starting memcached: %w", lastErr)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *server) start(bin string, args []string) error {
	cmd := exec.Command(bin, args...)
	setSysProcAttr(cmd)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	// The parent-death signal is tied to the thread that starts the
	// process: keep that thread for the duration of the start.
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
		if c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond); err == nil {
			c.Close()
			s.mu.Lock()
			s.cmd, s.done = cmd, done
			s.mu.Unlock()
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return errors.New("memcached did not accept connections within 10s")
}

// kill kills the process and waits for it to exit.
func (s *server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// pid returns the process ID, or 0 when the server is not running.
func (s *server) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// cpuProbe returns the CPU time used so far by this process and by the
// servers together; ok is false where that is not measured.
type cpuProbe func() (self, servers time.Duration, ok bool)

func newCPUProbe(servers []*server) cpuProbe {
	return func() (time.Duration, time.Duration, bool) {
		self, ok := selfCPU()
		if !ok {
			return 0, 0, false
		}
		var srv time.Duration
		for _, s := range servers {
			d, ok := processCPU(s.pid())
			if !ok {
				return 0, 0, false
			}
			srv += d
		}
		return self, srv, true
	}
}

func addrs(servers []*server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Addr
	}
	return out
}
