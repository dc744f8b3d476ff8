//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// killGroup kills cmd's process group (StartTied gave it one of its own),
// so that what it started dies with it: the compiler under go build.
func killGroup(cmd *exec.Cmd) error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
