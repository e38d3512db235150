//go:build !unix

package ps

import "context"

// lockFile does nothing where flock is missing: concurrent tasks may then
// download a blob twice, and the atomic rename keeps the cache whole.
func lockFile(context.Context, string) (func(), error) { return func() {}, nil }
