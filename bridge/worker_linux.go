//go:build linux

package bridge

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// dieWithParent asks Linux to SIGKILL this process when the thread that
// started it exits, and fails if the parent is already gone.
func dieWithParent() error {
	ppid := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("bridge: setting the parent-death signal: %w", err)
	}
	if os.Getppid() != ppid {
		return fmt.Errorf("bridge: the parent process %d exited before the worker started", ppid)
	}
	return nil
}

// growPipe makes a pipe's buffer 1 MiB (when the system allows it), which
// halves the context switches of the IPC stream.
func growPipe(fd int) {
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, 1<<20)
}
