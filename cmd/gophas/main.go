// Command gophas is the one Gophas binary. Its subcommands:
//
//	gophas version   print the version and protocol version as JSON
//	gophas worker    run one executor task (the pipe protocol, package pipe)
//	gophas driver    serve the parameter server and model store
//	gophas train     train a model on MNIST, a CSV or an Arrow file
//	gophas inspect   describe a model spec or directory as one JSON line
//
// main only parses the command line and calls a package; run is what the
// tests call.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gophas/gophas/driver"
	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/pipe"
	"github.com/gophas/gophas/protocol"
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
  worker    run one executor task: header + Arrow IPC on stdin, Arrow IPC on stdout
  driver    serve the parameter server and model store (driver -h)
  train     train a model on MNIST, a CSV or an Arrow file (train -h)
  inspect   describe a model as one JSON line; --out writes a model directory (inspect -h)
`

// run executes one subcommand and returns the process exit status. A failing
// command's last stderr line starts with protocol.ErrorPrefix.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return protocol.ExitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "version":
		err = version(stdout)
	case "worker":
		err = pipe.Worker(ctx, stdin, stdout, stderr)
	case "train":
		cfg, ferr := trainFlags(rest, stderr)
		if ferr != nil {
			return flagError(stderr, ferr)
		}
		err = runTrain(ctx, cfg, stdout, stderr)
	case "inspect":
		cfg, ferr := inspectFlags(rest, stderr)
		if ferr != nil {
			return flagError(stderr, ferr)
		}
		err = runInspect(cfg, stdout)
	case "driver":
		cfg, ferr := driverFlags(rest, stderr, os.Getenv)
		if ferr != nil {
			return flagError(stderr, ferr)
		}
		err = driver.Run(ctx, cfg, stdin, stdout, stderr)
	default:
		_ = rest
		fmt.Fprintf(stderr, "%sunknown command %q\n%s", protocol.ErrorPrefix, cmd, usage)
		return protocol.ExitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s%v\n", protocol.ErrorPrefix, err)
		return protocol.ExitError
	}
	return protocol.ExitOK
}

// flagError reports a command line the flag package refused: -h asked for
// the usage (already printed), anything else is a usage error.
func flagError(stderr io.Writer, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return protocol.ExitOK
	}
	fmt.Fprintf(stderr, "%s%v\n", protocol.ErrorPrefix, err)
	return protocol.ExitUsage
}

func version(w io.Writer) error {
	return json.NewEncoder(w).Encode(struct {
		Version  string `json:"version"`
		Protocol int    `json:"protocol"`
	}{protocol.Version, protocol.ProtocolVersion})
}

// trainFlags parses the flags of `gophas train` into a trainConfig.
func trainFlags(args []string, stderr io.Writer) (trainConfig, error) {
	var c trainConfig
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Model, "model", "", "model spec (Keras JSON) or model directory (required)")
	fs.StringVar(&c.Data, "data", "", "training data: mnist, a CSV file or an Arrow IPC file (required)")
	fs.StringVar(&c.Test, "test", "", "test data evaluated after training: mnist or a file")
	fs.IntVar(&c.Epochs, "epochs", 1, "number of epochs")
	fs.IntVar(&c.BatchSize, "batch-size", 32, "rows per step")
	fs.Float64Var(&c.ValidationSplit, "validation-split", 0, "fraction of the training rows held out for validation")
	fs.Int64Var(&c.Seed, "seed", 0, "seed of the initializers, Dropout and shuffle")
	fs.StringVar(&c.Out, "out", "", "directory to save the trained model to")
	fs.StringVar(&c.Features, "features", "", "feature column(s) of a file, comma-separated (default: all but the label)")
	fs.StringVar(&c.Label, "label", "", "label column of a file (default: the last)")
	fs.IntVar(&c.Threads, "threads", 0, "goroutines per matrix multiply (default: GOMAXPROCS)")
	fs.StringVar(&c.MNISTDir, "mnist-dir", "", "folder of the MNIST IDX files (default: the GoMNIST module's data/)")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("train: %w", err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("train: unexpected argument %q", fs.Arg(0))
	}
	if c.Model == "" || c.Data == "" {
		return c, errors.New("train: --model and --data are required")
	}
	return c, nil
}

// inspectFlags parses the flags of `gophas inspect` into a
// inspectConfig.
func inspectFlags(args []string, stderr io.Writer) (inspectConfig, error) {
	var c inspectConfig
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Model, "model", "", "model spec (Keras JSON) or model directory (required)")
	fs.Int64Var(&c.Seed, "seed", 0, "seed of the initializers when the model has no weights")
	fs.StringVar(&c.Out, "out", "", "directory to write the model to (model.json and model.safetensors)")
	fs.StringVar(&c.Compile.Loss, "loss", "", "compile with this Keras loss (default: the spec's)")
	fs.StringVar(&c.Compile.Optimizer, "optimizer", "", "compile with this Keras optimizer, a name or its JSON serialization (default: the spec's, else "+gokernel.DefaultOptimizer+")")
	fs.Float64Var(&c.Compile.LearningRate, "learning-rate", 0, "the optimizer's learning rate (default: the optimizer's)")
	fs.Int64Var(&c.Step, "step", 0, "report the learning rate at this (global) step: a schedule's rate there")
	metrics := fs.String("metrics", "", "compile with these Keras metrics, comma-separated (default: the spec's)")
	fs.StringVar(&c.Sums, "sums", "", "JSON file of merged evaluate/train sums ([{\"count\": n, \"sums\": {key: sum}}, ...]) to turn into results")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("inspect: %w", err)
	}
	if *metrics != "" {
		for _, m := range strings.Split(*metrics, ",") {
			c.Compile.Metrics = append(c.Compile.Metrics, strings.TrimSpace(m))
		}
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("inspect: unexpected argument %q", fs.Arg(0))
	}
	if c.Model == "" {
		return c, errors.New("inspect: --model is required")
	}
	return c, nil
}
