//go:build unix

package pipe

import (
	"os"

	"golang.org/x/sys/unix"
)

// pollable returns a duplicate of the pipe or socket f in non-blocking mode,
// which Go's poller serves, so that read and write deadlines work (os.Stdin
// and os.Stdout of a blocking pipe do not support them). It returns nil for
// other files (a terminal keeps its mode). restore closes the duplicate and
// puts the blocking mode back.
func pollable(f *os.File) (_ *os.File, restore func()) {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) == 0 {
		return nil, nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, nil
	}
	dup, flags := -1, 0
	rc.Control(func(fd uintptr) {
		if flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0); err != nil {
			return
		}
		if dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0); err != nil {
			dup = -1
		}
	})
	if dup < 0 {
		return nil, nil
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, nil
	}
	if fi.Mode()&os.ModeNamedPipe != 0 {
		growPipe(dup)
	}
	p := os.NewFile(uintptr(dup), f.Name())
	return p, func() {
		if flags&unix.O_NONBLOCK == 0 {
			if rc, err := p.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) { unix.SetNonblock(int(fd), false) })
			}
		}
		p.Close()
	}
}
