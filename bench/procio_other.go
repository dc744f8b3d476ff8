//go:build !linux

package main

import "time"

// Outside Linux the system call and CPU counters are not measured.

func syscalls() (reads, writes uint64, ok bool) { return 0, 0, false }

func selfCPU() (time.Duration, bool) { return 0, false }

func processCPU(pid int) (time.Duration, bool) { return 0, false }
