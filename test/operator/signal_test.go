package operator_test

import "syscall"

func syscallHUP(pid int) error { return syscall.Kill(pid, syscall.SIGHUP) }
