package framework

import "syscall"

// sysProcAttr puts a child in its own process group and kills it when the
// thread that started it (and so this program) dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
