package devserver

import "syscall"

// serverProcAttr puts the server in a process group of its own, so a Ctrl-C in the terminal
// reaches ripple dev alone, which then stops the server once; and has the kernel interrupt the
// server if ripple dev dies without doing so.
func serverProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
}
