//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// gophasPIDs returns the processes running `gophas <role>` from a binary
// under dir (any role when role is empty), exited ones left out.
func gophasPIDs(dir, role string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || (role != "" && args[1] != role) || !strings.HasPrefix(args[0], dir) {
			continue
		}
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

// signalDriver sends sig to the parameter server processes under dir and
// reports whether there was one.
func signalDriver(t *testing.T, dir string, sig syscall.Signal) bool {
	pids := gophasPIDs(dir, "driver")
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil {
			t.Errorf("kill -%d %d: %v", sig, pid, err)
		}
	}
	t.Logf("sent signal %d to parameter server(s) %v", sig, pids)
	return len(pids) > 0
}

// holdIdle keeps n TCP connections to addr open (dialling again those the
// server closes) until ctx ends; it returns how many it dialled.
func holdIdle(ctx context.Context, addr string, n int, dialled *atomic.Int64) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				dialled.Add(1)
				done := make(chan struct{})
				go func() {
					buf := make([]byte, 1024)
					for {
						if _, err := c.Read(buf); err != nil {
							close(done)
							return
						}
					}
				}()
				select {
				case <-ctx.Done():
				case <-done:
				}
				c.Close()
			}
		})
	}
	wg.Wait()
}

// mountSmallFS mounts a 1 MiB tmpfs on a new directory, or returns "" with
// the reason when it cannot (it needs root).
func mountSmallFS(t *testing.T) (string, string) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		return "", strings.TrimSpace(string(out)) + ": " + err.Error()
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir, ""
}

// TestFaultMatrix runs the fault matrix's driver-side cases on a local
// Spark (FaultScenariosMain faults), injecting the process faults as the
// cases print their progress, and checks what each case reports: the README
// table "Faults" lists them.
func TestFaultMatrix(t *testing.T) {
	s := setup(t)
	unpack := t.TempDir()
	saveDir, noSave := mountSmallFS(t)
	var (
		mu       sync.Mutex
		current  string
		stopIdle context.CancelFunc = func() {}
		idleDone                    = make(chan struct{})
		dialled  atomic.Int64
		injected = map[string]time.Time{}
	)
	close(idleDone)
	onLine := func(l string) {
		mu.Lock()
		defer mu.Unlock()
		if name, ok := strings.CutPrefix(l, "CASE "); ok {
			stopIdle()
			current = name
			return
		}
		switch {
		case current == "idle-conns" && strings.Contains(l, "parameter server at ") && injected[current].IsZero():
			addr := strings.TrimSpace(l[strings.LastIndex(l, "parameter server at ")+len("parameter server at "):])
			ctx, cancel := context.WithCancel(context.Background())
			stopIdle = cancel
			injected[current] = time.Now()
			idleDone = make(chan struct{})
			go func() { defer close(idleDone); holdIdle(ctx, addr, 500, &dialled) }()
		case ((current == "kill-ps" && l == "KILL-PS-NOW") || (current == "sigstop-ps" && strings.HasPrefix(l, "gophas fit epoch 1/"))) &&
			injected[current].IsZero():
			sig := syscall.SIGKILL
			if current == "sigstop-ps" {
				sig = syscall.SIGSTOP
			}
			if signalDriver(t, unpack, sig) {
				injected[current] = time.Now()
			}
		}
	}
	args := []string{"faults"}
	if saveDir != "" {
		args = append(args, saveDir)
	}
	start := time.Now()
	lines, err := s.run(t, 15*time.Minute, "local[2]", map[string]string{"spark.gophas.unpackDir": unpack},
		"io.gophas.spark.FaultScenariosMain", []string{s.testsJar, s.jar}, args, onLine)
	mu.Lock()
	stopIdle()
	mu.Unlock()
	<-idleDone
	t.Logf("fault scenarios took %v", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	str := func(m map[string]any, k string) string { v, _ := m[k].(string); return v }
	num := func(m map[string]any, k string) float64 { v, _ := m[k].(float64); return v }
	t.Run("500 idle connections during a fit", func(t *testing.T) {
		res := scenario(t, lines, "idle-conns")
		if injected["idle-conns"].IsZero() {
			t.Fatal("the test never saw the parameter server's address")
		}
		t.Logf("%d idle connections dialled; %v", dialled.Load(), res)
		if dialled.Load() < 500 {
			t.Errorf("only %d idle connections opened; want 500", dialled.Load())
		}
		if acc := num(res, "accuracy"); acc < subsetAccuracy {
			t.Errorf("accuracy %.4f with 500 idle connections open; want >= %.2f", acc, subsetAccuracy)
		}
	})
	t.Run("a worker whose pushes are all NaN", func(t *testing.T) {
		res := scenario(t, lines, "nan-worker")
		e := str(res, "error")
		t.Logf("nan-worker: %.300s", e)
		if !strings.Contains(e, "NaN or Inf") || !strings.Contains(e, "partition 1") || !strings.Contains(e, "InvalidArgument") {
			t.Errorf("fit error = %q; want the refused push named (NaN or Inf, partition 1, InvalidArgument)", e)
		}
		if res["unchanged"] != true {
			t.Errorf("the model's weights changed after the failed fit: %v", res)
		}
	})
	t.Run("the parameter server killed mid-fit", func(t *testing.T) {
		res := scenario(t, lines, "kill-ps")
		if injected["kill-ps"].IsZero() {
			t.Fatal("no parameter server to kill was found")
		}
		e := str(res, "error")
		if !strings.Contains(e, "the parameter server process (gophas driver") || !strings.Contains(e, "exited with status 137") {
			t.Errorf("fit error = %q; want the parameter server named, exited with status 137", e)
		}
		t.Logf("kill-ps: fit took %.1f s in all: %s", num(res, "seconds"), e)
		// The next fit with the same checkpoint directory continues after
		// epoch 1 (checkpointed before the kill): a history of epochs 0-3.
		epochs, _ := res["resumedEpochs"].([]any)
		if fmt.Sprint(epochs) != "[0 1 2 3]" {
			t.Errorf("the resumed fit's epochs %v; want [0 1 2 3] (epoch 0 from the checkpoint, 1-3 run)", epochs)
		}
		if res["checkpointRemoved"] != true {
			t.Errorf("the checkpoint directory is still there after the resumed fit completed")
		}
		if acc := num(res, "resumedAccuracy"); acc < subsetAccuracy {
			t.Errorf("accuracy %.4f after resuming; want >= %.2f", acc, subsetAccuracy)
		}
		t.Logf("kill-ps: resumed epochs %v, loss %v, accuracy %.4f", epochs, res["resumedLoss"], num(res, "resumedAccuracy"))
	})
	t.Run("the parameter server stopped (SIGSTOP) longer than the deadlines", func(t *testing.T) {
		res := scenario(t, lines, "sigstop-ps")
		if injected["sigstop-ps"].IsZero() {
			t.Fatal("no parameter server to stop was found")
		}
		e := str(res, "error")
		if !strings.Contains(e, "has not answered") || !strings.Contains(e, "stopped") {
			t.Errorf("fit error = %q; want the parameter server named as not answering, stopped", e)
		}
		t.Logf("sigstop-ps: fit took %.1f s in all: %s", num(res, "seconds"), e)
	})
	t.Run("disk full while saving a model", func(t *testing.T) {
		if saveDir == "" {
			t.Skipf("cannot mount a small filesystem to fill (%s): run as root", noSave)
		}
		res := scenario(t, lines, "save-full")
		e := str(res, "error")
		t.Logf("save-full: %.300s", e)
		if !strings.Contains(e, "No space left on device") || !strings.Contains(e, "unchanged") {
			t.Errorf("save error = %q; want No space left on device, files unchanged", e)
		}
		if res["intact"] != true || res["changed"] != true {
			t.Errorf("after the failed save: %v; want the first save intact (and the model changed since)", res)
		}
		if files := res["files"].([]any); len(files) != 4 { // model.json, model.safetensors and their .crc
			t.Errorf("files in the model directory: %v; want the two model files and their checksums, no temporary one", files)
		}
	})
	t.Run("the driver runs out of memory launching a task", func(t *testing.T) {
		res := scenario(t, lines, "oom-dispatcher")
		e := str(res, "error")
		t.Logf("oom-dispatcher: %.1f s after the OOM: %.300s", num(res, "secondsAfterOOM"), e)
		if !strings.Contains(e, "OutOfMemoryError") || !strings.Contains(e, "dispatcher-event-loop") {
			t.Errorf("fit error = %q; want the OutOfMemoryError and the thread it killed", e)
		}
		if sec := num(res, "secondsAfterOOM"); sec < 0 || sec > 30 {
			t.Errorf("the fit failed %.1f s after the OutOfMemoryError; want within 30 s", sec)
		}
	})
	t.Run("Spark's scheduler thread lost during a fit", func(t *testing.T) {
		res := scenario(t, lines, "lost-scheduler")
		e := str(res, "error")
		t.Logf("lost-scheduler: %.1f s: %.300s", num(res, "seconds"), e)
		if !strings.Contains(e, "dag-scheduler-event-loop") || !strings.Contains(e, "died") {
			t.Errorf("fit error = %q; want the dead scheduler thread named", e)
		}
		if res["schedulerAlive"] != false {
			t.Errorf("the scheduler thread is still alive: the case did not kill it (%v)", res)
		}
		if sec := num(res, "seconds"); sec > 60 {
			t.Errorf("the fit failed after %.1f s; want soon after the scheduler thread died", sec)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for len(gophasPIDs(unpack, "")) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if left := gophasPIDs(unpack, ""); len(left) > 0 {
		t.Errorf("gophas processes left behind: %v", left)
	}
}

// TestFaultExecutorKilled kills one executor JVM of a local cluster in the
// middle of an asynchronous fit: Spark runs the lost tasks again (on a new
// executor or the other one), the fit completes, and the accuracy holds.
func TestFaultExecutorKilled(t *testing.T) {
	s := setup(t)
	var once sync.Once
	killed := make(chan int, 1)
	self := os.Getpid()
	onLine := func(l string) {
		if !strings.HasPrefix(l, "gophas fit epoch 2/") {
			return
		}
		once.Do(func() {
			for _, pid := range executorPIDs(self) {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed <- pid
					return
				}
			}
			close(killed)
		})
	}
	lines, err := s.run(t, 15*time.Minute, "local-cluster[2,1,1536]",
		map[string]string{"spark.gophas.unpackDir": t.TempDir(), "spark.executor.memory": "1g"},
		"io.gophas.spark.FaultScenariosMain", []string{s.testsJar, s.jar}, []string{"executor-kill"}, onLine)
	if err != nil {
		t.Fatal(err)
	}
	pid, ok := <-killed
	if !ok {
		t.Fatal("found no executor JVM to kill")
	}
	res := scenario(t, lines, "executor-kill")
	t.Logf("killed executor JVM %d; %v", pid, res)
	if acc, _ := res["accuracy"].(float64); acc < subsetAccuracy {
		t.Errorf("accuracy %.4f after an executor was killed; want >= %.2f", acc, subsetAccuracy)
	}
	if failed, _ := res["failedTasks"].(float64); failed < 1 {
		t.Errorf("no task failed: the kill did not hit the fit (%v)", res)
	}
}

// executorPIDs returns the executor JVMs (CoarseGrainedExecutorBackend)
// descending from process root.
func executorPIDs(root int) []int {
	parent := map[int]int{}
	var executors []int
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		_, after, ok := strings.Cut(string(b), ") ")
		f := strings.Fields(after)
		if !ok || len(f) < 2 {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		parent[pid], _ = strconv.Atoi(f[1])
		if cmd, err := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline")); err == nil && strings.Contains(string(cmd), "CoarseGrainedExecutorBackend") {
			executors = append(executors, pid)
		}
	}
	var out []int
	for _, e := range executors {
		for p := e; p > 1; p = parent[p] {
			if p == root {
				out = append(out, e)
				break
			}
		}
	}
	return out
}
