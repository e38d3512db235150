//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// spark is what a test needs to submit a job.
type spark struct {
	home     string // SPARK_HOME
	jar      string // dist/gophas-spark-<line>_<scala>-<version>.jar of the default Spark line
	testsJar string // the shim's test classes: the scenario mains
	repo     string
}

func setup(t *testing.T) spark {
	t.Helper()
	home := os.Getenv("SPARK_HOME")
	if home == "" {
		t.Skip("SPARK_HOME is not set: these tests need a local Spark; run them with `make test-integration`")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	s := spark{home: home, jar: os.Getenv("GOPHAS_JAR"), testsJar: os.Getenv("GOPHAS_TESTS_JAR"), repo: repo}
	for _, p := range []string{filepath.Join(home, "bin", "spark-submit"), s.jar, s.testsJar} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("missing %q (GOPHAS_JAR and GOPHAS_TESTS_JAR come from `make test-integration`): %v", p, err)
		}
	}
	return s
}

// submit runs spark-submit with the scenario main and returns its scenario lines by name.
func (s spark) submit(t *testing.T, timeout time.Duration, master string, conf map[string]string, scenarios ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := []string{"--master", master, "--driver-memory", "2g", "--jars", s.jar,
		"--class", "io.gophas.spark.PipeScenariosMain",
		"--conf", "spark.ui.enabled=false"}
	for k, v := range conf {
		args = append(args, "--conf", k+"="+v)
	}
	args = append(args, s.testsJar)
	args = append(args, scenarios...)
	cmd := exec.CommandContext(ctx, filepath.Join(s.home, "bin", "spark-submit"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	got := map[string]string{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if f := strings.SplitN(sc.Text(), " ", 3); len(f) == 3 && f[0] == "SCENARIO" {
			got[f[1]] = f[2]
		}
	}
	if err != nil && len(got) == 0 {
		t.Fatalf("spark-submit %s: %v\nstderr (tail):\n%s", strings.Join(scenarios, " "), err, tail(stderr.String(), 40))
	}
	if err != nil {
		t.Logf("spark-submit exited with %v; stderr (tail):\n%s", err, tail(stderr.String(), 20))
	}
	return got
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestPipeTwoExecutors runs the pipe's scenarios (the same checks PipeSuite
// runs on local[2]) on a local cluster of two executor JVMs, the binary
// coming only from the jar: echo bit-exact, empty partitions, describe
// against Spark's aggregates, bad rows named, a crashing worker's stderr, a
// stalled worker's deadline, and a cancelled job leaving no process.
func TestPipeTwoExecutors(t *testing.T) {
	s := setup(t)
	unpack := t.TempDir()
	got := s.submit(t, 20*time.Minute, "local-cluster[2,1,1536]",
		map[string]string{
			"spark.gophas.unpackDir": unpack,
			"spark.executor.memory":  "1g",
		},
		"executors", "echo", "empty", "arrays", "describe", "null-row", "ragged-row", "crash", "stall", "cancel")

	for _, name := range []string{"executors", "echo", "empty", "arrays", "describe", "null-row", "ragged-row", "crash", "stall", "cancel"} {
		t.Run(name, func(t *testing.T) {
			line, ok := got[name]
			if !ok {
				t.Fatalf("scenario %s printed no result", name)
			}
			if !strings.HasPrefix(line, "ok") {
				t.Fatalf("scenario %s: %s", name, line)
			}
			switch name {
			case "executors":
				var n int
				fmt.Sscanf(strings.TrimPrefix(line, "ok "), "%d", &n)
				if n != 2 {
					t.Errorf("tasks ran in %d executor JVMs; want 2 (%s)", n, line)
				}
			case "echo":
				if want := "ok 200000"; line != want {
					t.Errorf("got %q; want %q", line, want)
				}
			case "crash":
				if !strings.Contains(line, "simulated crash after 100000 bytes") {
					t.Errorf("the exception lacks the worker's stderr: %s", line)
				}
			case "null-row", "ragged-row":
				if !strings.Contains(line, "features") || !strings.Contains(line, "17") {
					t.Errorf("error does not name column features and row 17: %s", line)
				}
			}
		})
	}

	// The executors unpacked the jar's binary, not one from the source tree.
	want := strings.TrimSpace(readFile(t, filepath.Join(s.repo, "target/native/io/gophas/spark/native/linux-"+runtime.GOARCH+"/gophas.sha256")))
	matches, _ := filepath.Glob(filepath.Join(unpack, "gophas-*", "*", "gophas"))
	if len(matches) != 1 {
		t.Fatalf("unpacked binaries under %s: %v; want exactly one", unpack, matches)
	}
	if got := sha256File(t, matches[0]); got != want {
		t.Errorf("unpacked binary %s has SHA-256 %s; the jar's is %s", matches[0], got, want)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
