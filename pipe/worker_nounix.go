//go:build !unix

package pipe

import "os"

// pollable is a no-op where Go's poller does not serve pipes; Work then
// bounds waits with a watchdog.
func pollable(*os.File) (*os.File, func()) { return nil, nil }
