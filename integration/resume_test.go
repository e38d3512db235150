//go:build integration

package integration

import (
	"bufio"
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestResumeAfterDriverKilled runs the resume scenario (a synchronous fit of
// 6 epochs checkpointing every epoch) three times: uninterrupted; killed
// with SIGKILL (the driver JVM, the test's spark-submit process) in the
// middle of epoch 3; and started again with the same checkpoint directory.
// The third run continues after epoch 2: it ends with a history of 6
// epochs, removes the checkpoint, counts the same global steps and reaches
// the accuracy of the uninterrupted run within 0.5 points.
func TestResumeAfterDriverKilled(t *testing.T) {
	s := setup(t)
	conf := map[string]string{"spark.gophas.unpackDir": t.TempDir()}
	args := func(dir string) []string { return []string{"resume", dir, "6"} }
	jars := []string{s.testsJar, s.jar}

	straight, err := s.run(t, 15*time.Minute, "local[2]", conf, "io.gophas.spark.SparkModelScenariosMain", jars, args(filepath.Join(t.TempDir(), "a")), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := scenario(t, straight, "resume")

	dir := filepath.Join(t.TempDir(), "b")
	killed := s.killMidEpoch(t, conf, jars, args(dir), 2)
	t.Logf("killed the driver JVM in epoch 3: %v", killed)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("the checkpoint directory after the kill: %v", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Contains(names, "epoch-000002") || slices.Contains(names, "epoch-000003") {
		t.Fatalf("checkpoint directory holds %v after a kill in epoch 3; want epoch-000002 (and no epoch 3)", names)
	}

	resumed, err := s.run(t, 15*time.Minute, "local[2]", conf, "io.gophas.spark.SparkModelScenariosMain", jars, args(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := scenario(t, resumed, "resume")
	var begun []string
	for _, l := range resumed {
		if e, ok := strings.CutPrefix(l, "EPOCH_BEGIN "); ok {
			begun = append(begun, e)
		}
	}
	if strings.Join(begun, ",") != "2,3,4,5" {
		t.Errorf("the resumed fit began epochs %v; want 2,3,4,5 (from 0: after the 2 checkpointed)", begun)
	}
	if h := got["epoch"].([]any); len(h) != 6 || len(got["loss"].([]any)) != 6 {
		t.Errorf("resumed history: epochs %v, loss %v; want 6 of each", got["epoch"], got["loss"])
	}
	if got["steps"] != want["steps"] {
		t.Errorf("global steps %v after resuming; %v uninterrupted", got["steps"], want["steps"])
	}
	if got["checkpointLeft"] != false {
		t.Errorf("the checkpoint directory is still there after the fit completed")
	}
	a, b := got["accuracy"].(float64), want["accuracy"].(float64)
	t.Logf("test accuracy: resumed %.4f, uninterrupted %.4f", a, b)
	if math.Abs(a-b) > 0.005 {
		t.Errorf("resumed accuracy %.4f is more than 0.5 points from the uninterrupted %.4f", a, b)
	}
}

// killMidEpoch submits the scenario and, once it prints EPOCH_BEGIN epoch,
// waits about half as long as the previous epoch took and kills the
// spark-submit process (the driver JVM: spark-submit execs it) with
// SIGKILL; it returns how long after the epoch began it killed.
func (s spark) killMidEpoch(t *testing.T, conf map[string]string, jars, args []string, epoch int) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmdArgs := []string{"--master", "local[2]", "--driver-memory", "3g", "--class", "io.gophas.spark.SparkModelScenariosMain",
		"--conf", "spark.ui.enabled=false", "--jars", strings.Join(jars[1:], ",")}
	for k, v := range conf {
		cmdArgs = append(cmdArgs, "--conf", k+"="+v)
	}
	cmdArgs = append(cmdArgs, jars[0])
	cmdArgs = append(cmdArgs, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(s.home, "bin", "spark-submit"), cmdArgs...)
	cmd.Dir = s.repo
	cmd.Env = append(os.Environ(), "GOPHAS_REPO="+s.repo)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var prev time.Time
	var after time.Duration
	target := "EPOCH_BEGIN " + strconv.Itoa(epoch)
	before := "EPOCH_BEGIN " + strconv.Itoa(epoch-1)
	for sc.Scan() {
		switch sc.Text() {
		case before:
			prev = time.Now()
		case target:
			began := time.Now()
			after = began.Sub(prev) / 2
			time.Sleep(after)
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	if after == 0 {
		t.Fatalf("the scenario ended (%v) before epoch %d began", err, epoch+1)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("spark-submit ended with %v; want killed by SIGKILL (is it still the JVM?)", cmd.ProcessState)
	}
	return after
}
