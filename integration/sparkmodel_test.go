//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/mnist"
)

// Rows of the MNIST subsets the scenarios use (SparkModelScenarios in Scala).
const (
	scenarioTestRows = 2000
	subsetAccuracy   = 0.83 // SparkModelScenarios.SubsetAccuracy
)

// run submits class from jars with args and returns its stdout lines; each
// line also goes to onLine as it arrives (nil: ignored).
func (s spark) run(t *testing.T, timeout time.Duration, master string, conf map[string]string, class string, jars []string, args []string, onLine func(string)) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmdArgs := []string{"--master", master, "--driver-memory", "3g", "--class", class, "--conf", "spark.ui.enabled=false"}
	if len(jars) > 1 {
		cmdArgs = append(cmdArgs, "--jars", strings.Join(jars[1:], ","))
	}
	for k, v := range conf {
		cmdArgs = append(cmdArgs, "--conf", k+"="+v)
	}
	cmdArgs = append(cmdArgs, jars[0])
	cmdArgs = append(cmdArgs, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(s.home, "bin", "spark-submit"), cmdArgs...)
	cmd.Dir = s.repo
	cmd.Env = append(os.Environ(), "GOPHAS_REPO="+s.repo)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if onLine != nil {
			onLine(sc.Text())
		}
	}
	_, _ = io.Copy(io.Discard, out)
	err = cmd.Wait()
	if err != nil {
		err = fmt.Errorf("spark-submit %s %s: %w\nstdout (tail):\n%s\nstderr (tail):\n%s", class, strings.Join(args, " "), err,
			tail(strings.Join(lines, "\n"), 20), tail(stderr.String(), 40))
	}
	return lines, err
}

// scenario returns the JSON of the SCENARIO line named name.
func scenario(t *testing.T, lines []string, name string) map[string]any {
	t.Helper()
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "SCENARIO "+name+" "); ok {
			var m map[string]any
			if err := json.Unmarshal([]byte(rest), &m); err != nil {
				t.Fatalf("scenario %s: %v in %q", name, err, rest)
			}
			return m
		}
	}
	t.Fatalf("scenario %s printed no result; stdout:\n%s", name, tail(strings.Join(lines, "\n"), 30))
	return nil
}

func mnistTest(t *testing.T, rows int) (x, y *tensor.Dense, labels []int) {
	t.Helper()
	dir, err := fixture.MNISTDir()
	if err != nil {
		t.Fatal(err)
	}
	_, test, err := mnist.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := test.Slice(0, rows)
	x = tensor.New(tensor.WithShape(rows, mnist.Width), tensor.WithBacking(append([]float32(nil), s.Images...)))
	y = tensor.New(tensor.WithShape(rows, mnist.Classes), tensor.WithBacking(s.OneHot()))
	for _, l := range s.Labels {
		labels = append(labels, int(l))
	}
	return x, y, labels
}

// TestSparkModelTwoExecutors fits, predicts and evaluates on a local cluster
// of two executor JVMs with the binary from the jar, then checks Spark's
// predictions and evaluation against the Go kernel run here on the same
// saved model and rows.
func TestSparkModelTwoExecutors(t *testing.T) {
	s := setup(t)
	spec, err := os.ReadFile(filepath.Join(s.repo, "examples/mnist_mlp/model.json"))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := gokernel.ParseSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	initial, err := gokernel.NewModel(parsed, gokernel.WithSeed(5))
	if err != nil {
		t.Fatal(err)
	}
	modelDir, out := t.TempDir(), t.TempDir()
	if err := gokernel.SaveModel(modelDir, initial); err != nil {
		t.Fatal(err)
	}
	lines, err := s.run(t, 15*time.Minute, "local-cluster[2,1,1536]",
		map[string]string{"spark.gophas.unpackDir": t.TempDir(), "spark.executor.memory": "1g"},
		"io.gophas.spark.SparkModelScenariosMain", []string{s.testsJar, s.jar}, []string{"parity", modelDir, out}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res := scenario(t, lines, "parity")
	if res["executors"] != 2.0 {
		t.Errorf("ran on %v executors; want 2", res["executors"])
	}

	trained, err := gokernel.LoadModel(filepath.Join(out, "model"))
	if err != nil {
		t.Fatal(err)
	}
	x, y, _ := mnistTest(t, scenarioTestRows)
	want, err := trained.Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	wantData := want.Data().([]float32)
	files, _ := filepath.Glob(filepath.Join(out, "predictions", "part-*.json"))
	seen := map[int]bool{}
	maxDiff := 0.0
	for _, f := range files {
		sc := bufio.NewScanner(strings.NewReader(readFile(t, f)))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var row struct {
				ID         int       `json:"id"`
				Prediction []float64 `json:"prediction"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
				t.Fatal(err)
			}
			if len(row.Prediction) != mnist.Classes {
				t.Fatalf("row %d: %d predictions", row.ID, len(row.Prediction))
			}
			seen[row.ID] = true
			for j, p := range row.Prediction {
				maxDiff = math.Max(maxDiff, math.Abs(p-float64(wantData[row.ID*mnist.Classes+j])))
			}
		}
	}
	if len(seen) != scenarioTestRows {
		t.Fatalf("Spark predicted %d distinct rows; want %d", len(seen), scenarioTestRows)
	}
	t.Logf("max |Spark predict - Go predict| = %.3g over %d rows", maxDiff, len(seen))
	if maxDiff > 1e-6 {
		t.Errorf("Spark's predictions differ from the Go kernel's by up to %g; want <= 1e-6", maxDiff)
	}
	local, err := trained.Evaluate(x, y)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range local {
		got, ok := res["evaluate_"+k].(float64)
		if !ok {
			t.Errorf("Spark's evaluate has no %q: %v", k, res)
			continue
		}
		if rel := math.Abs(got-v) / math.Max(math.Abs(v), 1e-12); rel > 1e-6 {
			t.Errorf("evaluate %s: Spark %v, Go %v (relative difference %.3g > 1e-6)", k, got, v, rel)
		}
	}
}

// workerPIDs returns the processes running `gophas worker` from a binary
// under dir.
func workerPIDs(dir string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || args[1] != "worker" || !strings.HasPrefix(args[0], dir) {
			continue
		}
		// Skip a worker that has exited but is not reaped yet (state Z).
		stat, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if _, after, ok := strings.Cut(string(stat), ") "); err != nil || !ok || strings.HasPrefix(after, "Z") {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cpuTime is the CPU time process pid has used (user and system), zero when
// it cannot be read.
func cpuTime(pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	_, after, ok := strings.Cut(string(stat), ") ")
	if !ok {
		return 0
	}
	// After the command: state is field 3, utime and stime fields 14 and 15,
	// in clock ticks (100 per second on Linux).
	f := strings.Fields(after)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

// TestSparkModelSurvivesKilledWorker kills one `gophas worker` with SIGKILL
// in the middle of an asynchronous fit pushing every batch on two executor
// JVMs: Spark retries the task, the retried worker registers again and skips
// the batches already applied, the fit completes, and the accuracy holds.
func TestSparkModelSurvivesKilledWorker(t *testing.T) {
	s := setup(t)
	unpack := t.TempDir()
	const epochs = 6
	var (
		once   sync.Once
		killed = make(chan int, 1)
	)
	onLine := func(l string) {
		if !strings.HasPrefix(l, "gophas fit epoch 2/") {
			return
		}
		once.Do(func() {
			go func() {
				deadline := time.Now().Add(2 * time.Minute)
				for time.Now().Before(deadline) {
					for _, pid := range workerPIDs(unpack) {
						// Training, not just starting: a worker registers
						// before it trains, and 60 ms of CPU is past
						// that however loaded the machine (a wall-clock age
						// is not: a worker killed before it registered
						// leaves nothing for its retry to skip).
						if cpuTime(pid) > 60*time.Millisecond && syscall.Kill(pid, syscall.SIGKILL) == nil {
							killed <- pid
							return
						}
					}
					time.Sleep(20 * time.Millisecond)
				}
				close(killed)
			}()
		})
	}
	lines, err := s.run(t, 15*time.Minute, "local-cluster[2,1,1536]",
		map[string]string{"spark.gophas.unpackDir": unpack, "spark.executor.memory": "1g"},
		"io.gophas.spark.SparkModelScenariosMain", []string{s.testsJar, s.jar}, []string{"kill", strconv.Itoa(epochs)}, onLine)
	if err != nil {
		t.Fatal(err)
	}
	pid, ok := <-killed
	if !ok {
		t.Fatal("never saw a gophas worker to kill")
	}
	res := scenario(t, lines, "kill")
	t.Logf("killed worker pid %d; result %v", pid, res)
	if failed := res["failedTasks"].(float64); failed < 1 {
		t.Errorf("Spark saw no failed task: the kill did not hit a running task (%v)", res)
	}
	retried := 0
	for _, r := range res["registers"].(map[string]any) {
		if r.(float64) > epochs {
			retried++
		}
	}
	if retried == 0 {
		t.Errorf("no worker registered more than %d times: the killed task was not retried (%v)", epochs, res["registers"])
	}
	if acc := res["accuracy"].(float64); acc < subsetAccuracy {
		t.Errorf("accuracy %.4f after a killed worker; want >= %.2f", acc, subsetAccuracy)
	}
}

// TestMnistExample runs the MNIST example application (the main job) with
// spark-submit on local[2] on the full data set in synchronous and
// asynchronous mode: each must reach 97.5% test accuracy.
func TestMnistExample(t *testing.T) {
	s := setup(t)
	for _, mode := range []string{"synchronous", "asynchronous"} {
		t.Run(mode, func(t *testing.T) {
			lines, err := s.run(t, 20*time.Minute, "local[2]", map[string]string{"spark.gophas.unpackDir": t.TempDir()},
				"io.gophas.spark.examples.MnistMlp", []string{s.jar},
				[]string{"--mode", mode, "--epochs", strconv.Itoa(exampleEpochs)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			acc := -1.0
			for _, l := range lines {
				if rest, ok := strings.CutPrefix(l, "test accuracy: "); ok {
					acc, _ = strconv.ParseFloat(rest, 64)
				}
				if strings.HasPrefix(l, "time:") || strings.HasPrefix(l, "test ") || strings.HasPrefix(l, "gophas fit epoch") {
					t.Log(l)
				}
			}
			if acc < 0.975 {
				t.Errorf("%s: test accuracy %.4f; want >= 0.975", mode, acc)
			}
		})
	}
}

// exampleEpochs is what the example needs to pass 97.5% in both modes, as
// measured (README).
const exampleEpochs = 10
