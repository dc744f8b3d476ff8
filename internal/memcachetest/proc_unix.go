//go:build unix && !linux

package memcachetest

import (
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StartTied starts cmd in a process group of its own. Outside Linux there
// is no parent-death signal: the caller must kill it on exit (Close does),
// and a process killed with SIGKILL leaves it behind.
func StartTied(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.Start()
}

func (s *Server) freeze() {
	p := s.process()
	if p == nil {
		return
	}
	_ = p.Signal(syscall.SIGSTOP)
	// Best effort without /proc: wait until ps reports the process
	// stopped (state T), for up to a second.
	for i := 0; i < 200; i++ {
		out, err := exec.Command("ps", "-o", "stat=", "-p", strconv.Itoa(p.Pid)).Output()
		if err != nil || strings.HasPrefix(strings.TrimSpace(string(out)), "T") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *Server) resume() {
	if p := s.process(); p != nil {
		_ = p.Signal(syscall.SIGCONT)
	}
}
