package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gophas/gophas/driver"
	"github.com/gophas/gophas/protocol"
)

// driverFlags parses the flags of `gophas driver` into a
// driver.Config; getenv supplies the token from protocol.TokenEnv.
func driverFlags(args []string, stderr io.Writer, getenv func(string) string) (driver.Config, error) {
	c := driver.Config{DieWithParent: true}
	fs := flag.NewFlagSet("driver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Host, "host", "", "address to bind, reachable from the executors (required)")
	fs.BoolVar(&c.TLS, "tls", false, "serve TLS with a certificate made for this job")
	fs.StringVar(&c.Mode, "mode", "asynchronous", "synchronous, asynchronous or hogwild")
	fs.StringVar(&c.Frequency, "frequency", "epoch", "workers push every epoch or batch")
	fs.IntVar(&c.Workers, "workers", 0, "number of workers (synchronous rounds wait for them)")
	fs.BoolVar(&c.Scale, "scale", false, "scale asynchronous and hogwild deltas by 1/workers")
	fs.DurationVar(&c.RoundTimeout, "round-timeout", 0, "how long a synchronous round may stay open (default 5m)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 0, "how long calls in flight may finish at shutdown (default 10s)")
	optimizer := fs.String("optimizer", "", "file with a Keras optimizer config (JSON) for gradient pushes")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("driver: unexpected arguments %q", fs.Args())
	}
	if *optimizer != "" {
		b, err := os.ReadFile(*optimizer)
		if err != nil {
			return c, fmt.Errorf("driver: %w", err)
		}
		c.Optimizer = b
	}
	c.Token = getenv(protocol.TokenEnv)
	return c, nil
}
