//go:build !linux

package main

import "os/exec"

// setSysProcAttr does nothing outside Linux: there memcached is killed on
// normal exit and on SIGINT, but not when the bench itself is SIGKILLed.
func setSysProcAttr(cmd *exec.Cmd) {}
