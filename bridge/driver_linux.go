//go:build linux

package bridge

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// driverDieWithParent asks Linux to SIGKILL the driver when the thread that
// started it exits (the shim's JVM dying), and fails if that already
// happened. Stdin EOF covers an orderly parent.
func driverDieWithParent() error {
	ppid := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("bridge: driver: setting the parent-death signal: %w", err)
	}
	if os.Getppid() != ppid {
		return fmt.Errorf("bridge: driver: the parent process %d exited before the driver started", ppid)
	}
	return nil
}
