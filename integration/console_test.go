//go:build integration

package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// submitExample runs the MNIST example application for one epoch with
// spark-submit, extra arguments before the jar, and returns its stdout and
// stderr.
func (s spark) submitExample(t *testing.T, extra ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := append([]string{"--master", "local[2]", "--driver-memory", "3g", "--class", "io.gophas.spark.examples.MnistMlp",
		"--conf", "spark.gophas.unpackDir=" + t.TempDir()}, extra...)
	args = append(args, s.jar, "--epochs", "1")
	cmd := exec.CommandContext(ctx, filepath.Join(s.home, "bin", "spark-submit"), args...)
	cmd.Dir = s.repo
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("spark-submit MnistMlp %s: %v\nstdout:\n%s\nstderr (tail):\n%s", strings.Join(extra, " "), err, out.String(), tail(errOut.String(), 40))
	}
	return out.String(), errOut.String()
}

// TestExampleConsole checks what a person sees when the example runs: with
// Spark's own logging defaults, Spark's WARN and above, its progress bar and
// Gophas' lines (the fit's start line naming mode, workers and the
// parameter server, a line per epoch, the result) on one screen; with a
// log4j2 configuration of the user's, that configuration wins.
func TestExampleConsole(t *testing.T) {
	s := setup(t)
	stdout, stderr := s.submitExample(t)
	// The progress bar redraws one line with carriage returns.
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(stdout+stderr, "\r", "\n"), "\n"), "\n")
	var shown []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(l, "[Stage ") {
			shown = append(shown, l)
		}
	}
	t.Logf("the example printed %d lines besides the progress bar:\n%s", len(shown), strings.Join(shown, "\n"))
	if len(shown) > 40 {
		t.Errorf("%d lines besides the progress bar; want one screen (at most 40)", len(shown))
	}
	if strings.Contains(stderr, " INFO ") {
		t.Errorf("Spark INFO lines on the console:\n%s", tail(stderr, 20))
	}
	if !strings.Contains(stderr, "[Stage ") {
		t.Errorf("no Spark progress bar on stderr:\n%s", tail(stderr, 20))
	}
	for _, want := range []string{"gophas fit: ", " workers, asynchronous, ", "parameter server at ", "gophas fit epoch 1/1: loss ", "test accuracy: 0."} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}

	// A user's own log4j2 configuration: everything at INFO.
	conf := filepath.Join(t.TempDir(), "log4j2.properties")
	if err := os.WriteFile(conf, []byte("rootLogger.level = info\nrootLogger.appenderRef.stderr.ref = console\n"+
		"appender.console.type = Console\nappender.console.name = console\nappender.console.target = SYSTEM_ERR\n"+
		"appender.console.layout.type = PatternLayout\nappender.console.layout.pattern = %d %p %c{1}: %m%n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr = s.submitExample(t, "--driver-java-options", "-Dlog4j2.configurationFile=file:"+conf)
	if !strings.Contains(stderr, " INFO SparkContext: ") {
		t.Errorf("with the user's log4j2 configuration at INFO, no INFO lines:\n%s", tail(stderr, 20))
	}
}
