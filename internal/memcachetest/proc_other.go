//go:build !unix

package memcachetest

import "os/exec"

// StartTied starts cmd. Outside Unix there is no process group or
// parent-death signal to ask for: the caller must kill it on exit (Close
// does).
func StartTied(cmd *exec.Cmd) error { return cmd.Start() }

// freeze skips the test: there is no SIGSTOP to freeze a process with.
func (s *Server) freeze() {
	if s.tb == nil {
		panic("memcachetest: Freeze needs SIGSTOP, which this system lacks")
	}
	s.tb.Skip("memcachetest: Freeze needs SIGSTOP, which this system lacks")
}

func (s *Server) resume() {}
