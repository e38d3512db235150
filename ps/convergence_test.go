package ps_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/mnist"
	"github.com/gophas/gophas/ps"
)

const (
	convEpochs = 2
	convBatch  = 64
	convSeed   = 3
)

func dense2(rows, cols int, data []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(data))
}

func mnistModel(t *testing.T, seed int64) *gokernel.Model {
	t.Helper()
	data, err := os.ReadFile("../gokernel/testdata/spec/mnist_mlp.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := gokernel.ParseSpec(data)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = s.WithCompile([]byte(`"adam"`), "categorical_crossentropy", []string{"accuracy"}); err != nil {
		t.Fatal(err)
	}
	m, err := gokernel.NewModel(s, gokernel.WithSeed(seed), gokernel.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func accuracy(t *testing.T, m *gokernel.Model, test *mnist.Set) float64 {
	t.Helper()
	ev, err := m.Evaluate(dense2(test.N, mnist.Width, test.Images), dense2(test.N, mnist.Classes, test.OneHot()))
	if err != nil {
		t.Fatal(err)
	}
	return 100 * ev["accuracy"]
}

// startDriver runs `gophas driver` as a subprocess and returns its ready line
// and a stop function that closes its stdin and waits for it.
func startDriver(t *testing.T, bin string, args ...string) (addr, token string, stop func()) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"driver", "--host", "127.0.0.1"}, args...)...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("driver ready line: %v", err)
	}
	var rd struct{ Address, Token string }
	if err := json.Unmarshal([]byte(line), &rd); err != nil {
		t.Fatal(err)
	}
	return rd.Address, rd.Token, func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("driver exit: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Error("driver did not exit 30s after stdin closed")
		}
	}
}

func shapesOf(ws []gokernel.NamedTensor) []ps.TensorInfo {
	out := make([]ps.TensorInfo, len(ws))
	for i, w := range ws {
		out[i] = ps.TensorInfo{Name: w.Name, Shape: w.Shape}
	}
	return out
}

// trainWorker trains on shard through the driver at addr. Synchronous:
// every batch of convBatch/workers rows pushes its gradient to the server's
// Adam and waits for the round, so the workers together take the steps of
// one process with batch convBatch. Asynchronous and hogwild: every batch of
// convBatch rows trains a local Adam and pushes the delta (the Elephas
// contract, frequency batch).
func trainWorker(ctx context.Context, t *testing.T, addr, token string, mode ps.Mode, id, workers int, shard *mnist.Set) error {
	c, err := ps.Dial(addr, token, ps.WithCallTimeout(time.Minute), ps.WithRoundWait(5*time.Minute))
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Register(ctx, fmt.Sprint("part-", id), 0); err != nil {
		return err
	}
	m := mnistModel(t, int64(100+id))
	batch := convBatch
	if mode == ps.Synchronous {
		batch = convBatch / workers
	}
	rng := rand.New(rand.NewPCG(uint64(id), convSeed))
	xb := make([]float32, batch*mnist.Width)
	yb := make([]float32, batch*mnist.Classes)
	onehot := shard.OneHot()
	step := uint64(0)
	for range convEpochs {
		perm := rng.Perm(shard.N)
		for from := 0; from < shard.N; from += batch {
			rows := min(batch, shard.N-from)
			for r := range rows {
				i := perm[from+r]
				copy(xb[r*mnist.Width:(r+1)*mnist.Width], shard.Images[i*mnist.Width:])
				copy(yb[r*mnist.Classes:(r+1)*mnist.Classes], onehot[i*mnist.Classes:])
			}
			x, y := dense2(rows, mnist.Width, xb[:rows*mnist.Width]), dense2(rows, mnist.Classes, yb[:rows*mnist.Classes])
			ws, v, _, err := c.Pull(ctx, 0)
			if err != nil {
				return err
			}
			if err := m.SetWeights(ws); err != nil {
				return err
			}
			if mode == ps.Synchronous {
				grads, _, err := m.Gradients(x, y)
				if err != nil {
					return err
				}
				if _, err := c.Push(ctx, v, ps.Gradient, shapesOf(ws), grads); err != nil {
					return err
				}
				if _, err := c.WaitRound(ctx, v); err != nil {
					return err
				}
				continue
			}
			if _, err := m.TrainOnBatch(x, y); err != nil {
				return err
			}
			after := m.Weights()
			delta := make([][]float32, len(after))
			for i := range after {
				delta[i] = make([]float32, len(after[i].Data))
				for j := range delta[i] {
					delta[i][j] = after[i].Data[j] - ws[i].Data[j]
				}
			}
			step++
			if _, err := c.Push(ctx, step, ps.Delta, shapesOf(ws), delta); err != nil {
				return err
			}
		}
	}
	return c.Done(ctx)
}

// TestLongConvergenceMNIST trains the MNIST MLP with 2, 4 and 8 workers in each
// mode through a real `gophas driver` and compares test accuracy with one
// process trained for the same epochs. Minutes long: GOPHAS_LONG=1 only.
func TestLongConvergenceMNIST(t *testing.T) {
	if os.Getenv("GOPHAS_LONG") != "1" {
		t.Skip("set GOPHAS_LONG=1 to train MNIST through the parameter server")
	}
	dir, err := fixture.MNISTDir()
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := mnist.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "gophas")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/gophas").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	optFile := filepath.Join(t.TempDir(), "adam.json")
	if err := os.WriteFile(optFile, []byte(`"adam"`), 0o644); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	single := mnistModel(t, convSeed)
	if _, err := single.Fit(dense2(train.N, mnist.Width, train.Images), dense2(train.N, mnist.Classes, train.OneHot()),
		gokernel.FitOptions{Epochs: convEpochs, BatchSize: convBatch, Shuffle: true, Seed: convSeed}); err != nil {
		t.Fatal(err)
	}
	base := accuracy(t, single, test)
	t.Logf("single process: %.2f%% after %d epochs (%v)", base, convEpochs, time.Since(start).Round(time.Second))

	for _, tc := range []struct {
		mode ps.Mode
		tol  float64
	}{{ps.Synchronous, 0.5}, {ps.Asynchronous, 1.5}, {ps.Hogwild, 1.5}} {
		for _, workers := range []int{2, 4, 8} {
			t.Run(fmt.Sprintf("%s/workers=%d", tc.mode, workers), func(t *testing.T) {
				start := time.Now()
				args := []string{"--mode", string(tc.mode), "--frequency", "batch", "--workers", fmt.Sprint(workers)}
				if tc.mode == ps.Synchronous {
					args = append(args, "--optimizer", optFile)
				}
				addr, token, stop := startDriver(t, bin, args...)
				defer stop()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
				defer cancel()
				master := mnistModel(t, convSeed)
				c, err := ps.Dial(addr, token)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.SetWeights(ctx, master.Weights(), false); err != nil {
					t.Fatal(err)
				}
				per := train.N / workers
				var wg sync.WaitGroup
				errs := make([]error, workers)
				for i := range workers {
					wg.Go(func() {
						errs[i] = trainWorker(ctx, t, addr, token, tc.mode, i, workers, train.Slice(i*per, (i+1)*per))
					})
				}
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("worker %d: %v", i, err)
					}
				}
				ws, _, _, err := c.Pull(ctx, 0)
				if err != nil {
					t.Fatal(err)
				}
				if err := master.SetWeights(ws); err != nil {
					t.Fatal(err)
				}
				st, err := c.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode != tc.mode {
					t.Errorf("driver mode %q; want %q", st.Mode, tc.mode)
				}
				acc := accuracy(t, master, test)
				t.Logf("%s, %d workers: %.2f%% (single %.2f%%), version %d, %v", tc.mode, workers, acc, base, st.Version, time.Since(start).Round(time.Second))
				if acc < base-tc.tol {
					t.Errorf("%s with %d workers: %.2f%%; want within %.1f points of single-process %.2f%%", tc.mode, workers, acc, tc.tol, base)
				}
			})
		}
	}
}
