//go:build !linux

package devserver

import "syscall"

// serverProcAttr: elsewhere the server shares ripple dev's process group, so a Ctrl-C reaches
// both (the server shuts itself down).
func serverProcAttr() *syscall.SysProcAttr { return nil }
