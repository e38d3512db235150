// Command gophas is the one Gophas binary. Its subcommands:
//
//	gophas version   print the version and protocol version as JSON
//
// main only parses the command line and calls a package; run is what the
// tests call.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gophas/gophas/bridge"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: gophas <command> [flags]

commands:
  version   print the version and protocol version as JSON
`

// run executes one subcommand and returns the process exit status. A failing
// command's last stderr line starts with bridge.ErrorPrefix.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return bridge.ExitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "version":
		err = version(stdout)
	default:
		_ = rest
		fmt.Fprintf(stderr, "%sunknown command %q\n%s", bridge.ErrorPrefix, cmd, usage)
		return bridge.ExitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s%v\n", bridge.ErrorPrefix, err)
		return bridge.ExitError
	}
	return bridge.ExitOK
}

func version(w io.Writer) error {
	return json.NewEncoder(w).Encode(struct {
		Version  string `json:"version"`
		Protocol int    `json:"protocol"`
	}{bridge.Version, bridge.ProtocolVersion})
}
