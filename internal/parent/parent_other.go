//go:build !linux

package parent

// DieWith does nothing where there is no parent-death signal; the
// process still ends when the parent's end of its stdin closes.
func DieWith(string) error { return nil }
