//go:build !linux

package bridge

// dieWithParent is a no-op where there is no parent-death signal; the worker
// still ends when the parent's end of stdin closes.
func dieWithParent() error { return nil }

func growPipe(int) {}
