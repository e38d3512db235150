//go:build linux

package parent

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DieWith asks Linux to SIGKILL this process (the named role: worker
// or driver) when the thread that started it exits — the shim's JVM dying —
// and fails if the parent is already gone. Stdin EOF covers an orderly
// parent.
func DieWith(role string) error {
	ppid := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("parent: %s: setting the parent-death signal: %w", role, err)
	}
	if os.Getppid() != ppid {
		return fmt.Errorf("parent: %s: the parent process %d exited before the %s started", role, ppid, role)
	}
	return nil
}
