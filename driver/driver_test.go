package driver

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/modeltest"
	"github.com/gophas/gophas/protocol"
	"github.com/gophas/gophas/ps"
)

// readReady reads the driver's ready line within a deadline.
func readReady(t *testing.T, r io.Reader) protocol.Ready {
	t.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- result{line, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil {
			t.Fatalf("reading the ready line: %v (got %q)", res.err, res.line)
		}
		var rd protocol.Ready
		if err := json.Unmarshal([]byte(res.line), &rd); err != nil {
			t.Fatalf("ready line %q: %v", res.line, err)
		}
		return rd
	case <-time.After(30 * time.Second):
		t.Fatal("no ready line within 30s")
	}
	return protocol.Ready{}
}

func driverClient(t *testing.T, rd protocol.Ready) *ps.Client {
	t.Helper()
	var opts []ps.ClientOption
	if rd.TLSFingerprint != "" {
		opts = append(opts, ps.WithFingerprint(rd.TLSFingerprint))
	}
	c, err := ps.Dial(rd.Address, rd.Token, append(opts, ps.WithCallTimeout(10*time.Second), ps.WithRetries(2))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDriverServesUntilStdinCloses(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			done := make(chan error, 1)
			go func() {
				done <- Run(context.Background(), Config{Host: "127.0.0.1", TLS: tls, Mode: "synchronous", Frequency: "batch"}, inR, outW, io.Discard)
			}()
			rd := readReady(t, outR)
			if rd.Protocol != protocol.ProtocolVersion || len(rd.Token) != 64 || (rd.TLSFingerprint != "") != tls || !strings.HasPrefix(rd.Address, "127.0.0.1:") {
				t.Errorf("ready line %+v; want protocol %d, 64 hex token, fingerprint iff TLS, address on 127.0.0.1", rd, protocol.ProtocolVersion)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			st, err := driverClient(t, rd).Stats(ctx)
			if err != nil || st.Mode != ps.Synchronous || st.Frequency != ps.Batch {
				t.Errorf("Stats = %+v, %v; want synchronous, batch", st, err)
			}
			inW.Close()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Driver after stdin closed = %v; want nil", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("Driver still serving 15s after stdin closed")
			}
		})
	}
}

func TestDriverShutdownRPC(t *testing.T) {
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Config{Host: "127.0.0.1", Token: strings.Repeat("ab", 32)}, nil, outW, io.Discard)
	}()
	rd := readReady(t, outR)
	if rd.Token != strings.Repeat("ab", 32) {
		t.Errorf("token %q; want the one given", rd.Token)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := driverClient(t, rd).Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Driver after Shutdown = %v; want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Driver still serving 15s after Shutdown")
	}
}

func TestDriverRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no host", Config{}, "--host"},
		{"bad mode", Config{Host: "127.0.0.1", Mode: "eventual"}, "eventual"},
		{"foreign host", Config{Host: "192.0.2.1"}, "cannot listen"},
	}
	for _, tt := range tests {
		err := Run(context.Background(), tt.cfg, nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Driver = %v; want an error containing %q", tt.name, err, tt.want)
		}
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// gophasBinary builds cmd/gophas once per test run.
func gophasBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gophas-driver-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gophas")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/gophas").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestDriverProcessExitsWhenStdinCloses(t *testing.T) {
	bin := gophasBinary(t)
	cmd := exec.Command(bin, "driver", "--host", "127.0.0.1", "--mode", "hogwild")
	cmd.Env = append(os.Environ(), protocol.TokenEnv+"="+strings.Repeat("cd", 32))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	br := bufio.NewReader(stdout)
	rd := readReady(t, br)
	if rd.Token != strings.Repeat("cd", 32) {
		t.Errorf("token %q; want the one from %s", rd.Token, protocol.TokenEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if st, err := driverClient(t, rd).Stats(ctx); err != nil || st.Mode != ps.Hogwild {
		t.Errorf("Stats = %+v, %v; want hogwild", st, err)
	}
	stdin.Close()
	rest, _ := io.ReadAll(br) // ends when the process closes stdout
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("driver exit: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("driver still running 15s after its stdin closed")
	}
	if len(rest) != 0 {
		t.Errorf("stdout after the ready line: %q; want nothing", rest)
	}
}

// TestDriverHelperProcess is not a test: TestDriverProcessDiesWithParent runs
// the test binary as the driver's parent through it.
func TestDriverHelperProcess(t *testing.T) {
	bin := os.Getenv("GOPHAS_DRIVER_HELPER")
	if bin == "" {
		t.Skip("helper process for TestDriverProcessDiesWithParent")
	}
	cmd := exec.Command(bin, "driver", "--host", "127.0.0.1")
	cmd.Stdin = os.NewFile(3, "stdin") // the test holds the write end
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "driver pid %d\n", cmd.Process.Pid)
	fmt.Printf("%d\n", cmd.Process.Pid)
	time.Sleep(2 * time.Minute) // until killed
	os.Exit(1)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestDriverProcessDiesWithParent(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("needs Linux /proc")
	}
	bin := gophasBinary(t)
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close() // the driver's stdin stays open: only the parent dies
	helper := exec.Command(os.Args[0], "-test.run=^TestDriverHelperProcess$")
	helper.Env = append(os.Environ(), "GOPHAS_DRIVER_HELPER="+bin)
	helper.ExtraFiles = []*os.File{stdinR}
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	stdinR.Close()
	defer helper.Process.Kill()
	br := bufio.NewReader(out)
	pidLine, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("helper printed no pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(pidLine))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL) // if the test fails
	rd := readReady(t, br)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := driverClient(t, rd).Stats(ctx); err != nil {
		t.Fatalf("driver not serving: %v", err)
	}
	if !alive(pid) {
		t.Fatalf("driver %d not running before its parent died", pid)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("driver %d still running 10s after its parent was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDriverSavesAndLoadsServerOptimizer runs drivers that keep an
// optimizer for gradient pushes: save writes its state as
// optimizer.safetensors, and load in a new driver restores it, also when it
// was saved before the first step.
func TestDriverSavesAndLoadsServerOptimizer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// driver starts an in-process driver with Adam on the server and returns
	// a function answering one control line, and a client.
	driver := func() (func(line string) map[string]any, *ps.Client) {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- Run(context.Background(), Config{Host: "127.0.0.1", Optimizer: []byte(`{"class_name":"Adam","config":{"learning_rate":0.01}}`)}, inR, outW, io.Discard)
		}()
		t.Cleanup(func() {
			inW.Close()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Error("driver still running 15s after its stdin closed")
			}
		})
		lines := make(chan string, 1)
		go func() {
			defer close(lines)
			br := bufio.NewReader(outR)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				lines <- line
			}
		}()
		next := func() string {
			select {
			case line := <-lines:
				return line
			case <-time.After(20 * time.Second):
				t.Fatal("no line from the driver within 20s")
			}
			return ""
		}
		var rd protocol.Ready
		if err := json.Unmarshal([]byte(next()), &rd); err != nil {
			t.Fatal(err)
		}
		send := func(line string) map[string]any {
			t.Helper()
			if _, err := io.WriteString(inW, line+"\n"); err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(next()), &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		return send, driverClient(t, rd)
	}
	dir, m := modeltest.Save(t, fixture.ClassifierSpec, "categorical_crossentropy", "accuracy")
	ws := m.Weights()
	shapes := make([]ps.TensorInfo, len(ws))
	grads := make([][]float32, len(ws))
	for i, w := range ws {
		shapes[i] = ps.TensorInfo{Name: w.Name, Shape: w.Shape}
		grads[i] = make([]float32, len(w.Data))
		for j := range grads[i] {
			grads[i][j] = float32(j%7) - 3
		}
	}
	readState := func(dir string) []ps.NamedTensor {
		t.Helper()
		f, err := os.Open(filepath.Join(dir, gokernel.OptimizerFile))
		if err != nil {
			t.Fatalf("saved model: %v", err)
		}
		defer f.Close()
		st, err := gokernel.ReadSafetensors(f)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	same := func(what string, got, want []ps.NamedTensor) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d tensors; want %d", what, len(got), len(want))
		}
		for i := range got {
			if got[i].Name != want[i].Name || !slices.Equal(got[i].Data, want[i].Data) {
				t.Errorf("%s: tensor %d %q differs from %q", what, i, got[i].Name, want[i].Name)
			}
		}
	}

	send, c := driver()
	if got := send(`{"cmd":"load","model":"` + dir + `"}`); got["ok"] != true {
		t.Fatalf("load: %v", got)
	}
	// Saved before the first step: the iteration count alone, and it loads.
	fresh := filepath.Join(t.TempDir(), "fresh")
	if got := send(`{"cmd":"save","dir":"` + fresh + `"}`); got["ok"] != true {
		t.Fatalf("save: %v", got)
	}
	if st := readState(fresh); len(st) != 1 || st[0].Name != "iteration" || st[0].Data[0] != 0 {
		t.Errorf("state saved before any step = %v; want iteration 0 alone", st)
	}
	if _, err := c.Register(ctx, "partition-0", 0); err != nil {
		t.Fatal(err)
	}
	for step := uint64(1); step <= 3; step++ {
		if _, err := c.Push(ctx, step, ps.Gradient, shapes, grads); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "trained")
	if got := send(`{"cmd":"save","dir":"` + out + `"}`); got["ok"] != true || got["version"] != 4.0 {
		t.Fatalf("save: %v; want ok, version 4", got)
	}
	want, _, err := c.OptimizerState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 1+2*len(ws) || want[0].Data[0] != 3 {
		t.Fatalf("server state has %d tensors, iteration %v; want %d, 3", len(want), want[0].Data, 1+2*len(ws))
	}
	same("saved optimizer.safetensors", readState(out), want)
	if _, err := gokernel.LoadModel(out); err != nil {
		t.Errorf("the saved model does not load: %v", err)
	}

	// A new driver loads it: same weights, same optimizer state, and the
	// next step is the one the first driver takes.
	send2, c2 := driver()
	if got := send2(`{"cmd":"load","model":"` + out + `"}`); got["ok"] != true {
		t.Fatalf("load of the saved model: %v", got)
	}
	got, _, err := c2.OptimizerState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	same("state after load", got, want)
	for _, cl := range []*ps.Client{c, c2} {
		if cl == c2 {
			if _, err := cl.Register(ctx, "partition-0", 0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := cl.Push(ctx, 4, ps.Gradient, shapes, grads); err != nil {
			t.Fatal(err)
		}
	}
	w1, _, _, err := c.Pull(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	w2, _, _, err := c2.Pull(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	same("weights after one more step", w2, w1)

	// The state saved before the first step loads too.
	send3, c3 := driver()
	if got := send3(`{"cmd":"load","model":"` + fresh + `"}`); got["ok"] != true {
		t.Fatalf("load of a state saved before the first step: %v", got)
	}
	if _, err := c3.Register(ctx, "partition-0", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c3.Push(ctx, 1, ps.Gradient, shapes, grads); err != nil {
		t.Errorf("a gradient step after loading a fresh state: %v", err)
	}
}
