package parent

import (
	"fmt"
	"os"
	"time"
)

// PollInterval is how often DieWith's goroutine looks at the parent
// process id: about the longest an orphan outlives its parent.
const PollInterval = 500 * time.Millisecond

// DieWith makes this process (the named role: worker or driver) exit with
// status 1, saying so on stderr, within about PollInterval of its parent
// process exiting, whichever of the parent's threads started it. A parent
// that exited before DieWith runs cannot be told from a reaper that started
// the process (pid 1 may be the JVM in a container); the parent's end of
// stdin closing ends the process then.
func DieWith(role string) {
	watch(os.Getppid(), PollInterval, os.Getppid, func() {
		fmt.Fprintf(os.Stderr, "gophas %s: the parent process exited; exiting\n", role)
		os.Exit(1)
	})
}

// watch starts the goroutine that calls exit once getppid differs from
// ppid, looking every interval.
func watch(ppid int, interval time.Duration, getppid func() int, exit func()) {
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for range t.C {
			if getppid() != ppid {
				exit()
				return
			}
		}
	}()
}
