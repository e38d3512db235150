package driver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/parent"
	"github.com/gophas/gophas/protocol"
	"github.com/gophas/gophas/ps"
)

// Config configures the driver process.
type Config struct {
	// Host is the address to bind (the Spark driver's host); the port is
	// chosen by the system. Required.
	Host string
	// TLS serves TLS with a certificate made for this job; the ready line
	// carries its fingerprint.
	TLS bool
	// Mode is synchronous, asynchronous or hogwild. Default asynchronous.
	Mode string
	// Frequency is the workers' push cadence, epoch or batch. Default epoch.
	Frequency string
	// Workers is how many workers the job runs (synchronous rounds wait for
	// that many). Default 0: whoever registers.
	Workers int
	// Scale makes asynchronous and hogwild deltas count 1/Workers.
	Scale bool
	// RoundTimeout bounds a synchronous round. Default 5 minutes.
	RoundTimeout time.Duration
	// DrainTimeout bounds how long calls in flight may finish at shutdown.
	// Default 10 seconds.
	DrainTimeout time.Duration
	// Token is the job's token (hex); empty makes a random 256-bit one.
	Token string
	// Optimizer is a Keras optimizer config (JSON) kept on the server so that
	// workers may push gradients; the control channel's save and load write
	// and read its state as optimizer.safetensors. Default none.
	Optimizer []byte
	// DieWithParent makes the process end when its parent process does.
	DieWithParent bool
}

// Run serves the parameter server and model store on cfg.Host until ctx
// ends, stdin reaches EOF, or a client calls Shutdown; then it drains calls in
// flight for up to cfg.DrainTimeout and returns. Its stdout output is the
// Ready line, then one answer line per command line read on stdin (see
// control.go: load, save, epoch, stats, forget); logs go to stderr.
func Run(ctx context.Context, cfg Config, stdin io.Reader, stdout, stderr io.Writer) error {
	if cfg.Host == "" {
		return errors.New("driver: driver: --host is required (the address executors reach the driver at)")
	}
	if cfg.Mode == "" {
		cfg.Mode = string(ps.Asynchronous)
	}
	if cfg.Frequency == "" {
		cfg.Frequency = string(ps.Epoch)
	}
	if cfg.RoundTimeout == 0 {
		cfg.RoundTimeout = 5 * time.Minute
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 10 * time.Second
	}
	if cfg.DieWithParent {
		parent.DieWith("driver")
	}
	mode, err := ps.ParseMode(cfg.Mode)
	if err != nil {
		return fmt.Errorf("driver: driver: %w", err)
	}
	freq, err := ps.ParseFrequency(cfg.Frequency)
	if err != nil {
		return fmt.Errorf("driver: driver: %w", err)
	}
	opts := []ps.Option{ps.WithMode(mode), ps.WithFrequency(freq), ps.WithWorkers(cfg.Workers), ps.WithScale(cfg.Scale), ps.WithRoundTimeout(cfg.RoundTimeout)}
	if len(cfg.Optimizer) > 0 {
		opt, err := gokernel.NewOptimizer(cfg.Optimizer)
		if err != nil {
			return fmt.Errorf("driver: driver: %w", err)
		}
		opts = append(opts, ps.WithOptimizer(opt))
	}
	params, err := ps.NewParams(opts...)
	if err != nil {
		return fmt.Errorf("driver: driver: %w", err)
	}
	token := cfg.Token
	if token == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("driver: driver: token: %w", err)
		}
		token = hex.EncodeToString(b)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	sopts := []ps.ServerOption{ps.WithLogger(logger), ps.WithShutdown(cancel)}
	fingerprint := ""
	if cfg.TLS {
		cert, fp, err := ps.NewCertificate(cfg.Host, 30*24*time.Hour)
		if err != nil {
			return fmt.Errorf("driver: driver: %w", err)
		}
		sopts = append(sopts, ps.WithCertificate(cert))
		fingerprint = fp
	}
	srv, err := ps.NewServer(params, token, sopts...)
	if err != nil {
		return fmt.Errorf("driver: driver: %w", err)
	}
	lis, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, "0"))
	if err != nil {
		return fmt.Errorf("driver: driver: cannot listen on %s (is it an address of this host?): %w", cfg.Host, err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()

	line, _ := json.Marshal(protocol.Ready{Address: lis.Addr().String(), Protocol: protocol.ProtocolVersion, Token: token, TLSFingerprint: fingerprint})
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		srv.Stop(0)
		return fmt.Errorf("driver: driver: writing the ready line: %w", err)
	}
	if f, ok := stdout.(*os.File); ok {
		_ = f.Sync()
	}
	logger.Info("gophas driver serving", "address", lis.Addr().String(), "mode", mode, "tls", cfg.TLS)

	if stdin != nil {
		ctl := &control{params: params, store: srv.Store(), log: logger, optimizer: cfg.Optimizer}
		go func() {
			if err := ctl.serve(stdin, stdout); err != nil {
				logger.Warn("gophas driver: control channel", "error", err)
			}
			logger.Info("gophas driver: stdin closed; shutting down")
			cancel()
		}()
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("driver: driver: serving: %w", err)
	}
	srv.Stop(cfg.DrainTimeout)
	logger.Info("gophas driver stopped")
	return nil
}
