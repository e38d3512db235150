package pipe

import (
	"context"
	"io"
	"os"

	"github.com/gophas/gophas/internal/parent"
)

// Worker is the `gophas worker` subcommand: it makes the worker die with its
// parent process (package parent), makes stdin and stdout pollable
// when they are pipes or sockets so that every wait on them has a deadline,
// and runs one task with Work.
func Worker(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, opts ...Option) error {
	parent.DieWith("worker")
	if f, ok := stdin.(*os.File); ok {
		if p, restore := pollable(f); p != nil {
			defer restore()
			stdin = p
		}
	}
	if f, ok := stdout.(*os.File); ok {
		if p, restore := pollable(f); p != nil {
			defer restore()
			stdout = p
		}
	}
	return Work(ctx, stdin, stdout, stderr, opts...)
}
