package memcachetest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// StartTied starts cmd in a process group of its own, tied to the life of
// this process: on Linux the kernel sends it SIGKILL when the thread that
// started it exits (PR_SET_PDEATHSIG), so it dies with this process even
// when this process is killed with SIGKILL. Elsewhere it only gets its own
// process group; the caller must kill it on exit. It replaces
// cmd.SysProcAttr.
func StartTied(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	// Pdeathsig fires when the starting OS thread exits; this thread stays
	// locked, and so alive, for the duration of the start, after which
	// the signal is armed in the child.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Start()
}

func (s *Server) freeze() {
	p := s.process()
	if p == nil {
		return
	}
	_ = p.Signal(syscall.SIGSTOP)
	for i := 0; i < 1000 && !allStopped(p.Pid); i++ {
		time.Sleep(time.Millisecond)
	}
}

func (s *Server) resume() {
	if p := s.process(); p != nil {
		_ = p.Signal(syscall.SIGCONT)
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
