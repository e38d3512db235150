//go:build unix

package ps

import "golang.org/x/sys/unix"

// defaultMaxConnections is DefaultMaxConnections, or half the process'
// limit of open files when that is smaller, so that the connections alone
// can never exhaust the descriptors the server needs for its own files.
func defaultMaxConnections() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY {
		return DefaultMaxConnections
	}
	return int(max(16, min(uint64(DefaultMaxConnections), rl.Cur/2)))
}
