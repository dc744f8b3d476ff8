//go:build !unix

package main

import "os/exec"

// killGroup kills cmd; outside Unix there is no process group to kill.
func killGroup(cmd *exec.Cmd) error { return cmd.Process.Kill() }
