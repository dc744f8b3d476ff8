package main

import (
	"os/exec"
	"syscall"
)

// setSysProcAttr makes memcached die with the bench process, even when the
// bench is killed with SIGKILL.
func setSysProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
