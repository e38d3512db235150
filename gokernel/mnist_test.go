package gokernel

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/mnist"
)

// mnistSpec is the MNIST MLP as testdata/spec/mnist_mlp.json describes it
// (784-128 relu-Dropout 0.2-128 relu-Dropout 0.2-10 softmax, categorical
// cross-entropy, accuracy) with the given optimizer.
func mnistSpec(t testing.TB, optimizer string) *Spec {
	t.Helper()
	data, err := os.ReadFile("testdata/spec/mnist_mlp.json")
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSpec(data)
	if err != nil {
		t.Fatal(err)
	}
	if s, err = s.WithCompile([]byte(optimizer), "categorical_crossentropy", []string{"accuracy"}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestLongMNIST trains the MNIST MLP with batch 64 and checks that it reaches
// 97.5% test accuracy within 10 epochs, with Adam (defaults) and with SGD
// (learning rate 0.01, momentum 0.9). It takes minutes, so it runs only
// with GOPHAS_LONG=1.
func TestLongMNIST(t *testing.T) {
	if os.Getenv("GOPHAS_LONG") != "1" {
		t.Skip("set GOPHAS_LONG=1 to train on MNIST")
	}
	dir, err := fixture.MNISTDir()
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := mnist.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	x, y := dense2(train.N, mnist.Width, train.Images), dense2(train.N, mnist.Classes, train.OneHot())
	tx, ty := dense2(test.N, mnist.Width, test.Images), dense2(test.N, mnist.Classes, test.OneHot())
	for _, opt := range []struct{ name, config string }{
		{"adam", `"adam"`},
		{"sgd", `{"class_name": "SGD", "config": {"learning_rate": 0.01, "momentum": 0.9}}`},
	} {
		t.Run(opt.name, func(t *testing.T) {
			// The best test accuracies with seeds 1-4 (each epoch's shuffle
			// and Dropout masks drawn from (seed, epoch)) were 97.90, 97.94,
			// 97.82, 97.84% (Adam) and 97.81, 97.77, 97.77, 98.03% (SGD);
			// Keras on TensorFlow gave SGD 98.00 and 97.80% (seeds 1, 2).
			// Float sums differ between the AVX-512 and AVX2 kernels, so a
			// bar inside that spread passes or fails by machine: the bar is
			// 97.5%, under the spread of both, and far above what a broken
			// gradient or optimizer reaches. GOPHAS_MNIST_SEED picks the seed.
			seed := int64(4)
			if v := os.Getenv("GOPHAS_MNIST_SEED"); v != "" {
				if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
					t.Fatal(err)
				}
			}
			m, err := NewModel(mnistSpec(t, opt.config), WithSeed(seed))
			if err != nil {
				t.Fatal(err)
			}
			const target = 0.975
			var best float64
			start := time.Now()
			for epoch := 0; epoch < 10 && best < target; epoch++ {
				e0 := time.Now()
				h, err := m.Fit(x, y, FitOptions{Epochs: 1, BatchSize: 64, Shuffle: true, Seed: seed*100 + int64(epoch)})
				if err != nil {
					t.Fatal(err)
				}
				ev, err := m.Evaluate(tx, ty)
				if err != nil {
					t.Fatal(err)
				}
				best = max(best, ev["accuracy"])
				t.Logf("epoch %d: %.2fs, loss %.4f accuracy %.4f, test loss %.4f accuracy %.4f", epoch+1, time.Since(e0).Seconds(),
					h.History["loss"][0], h.History["accuracy"][0], ev["loss"], ev["accuracy"])
			}
			t.Logf("%s: best test accuracy %.4f in %v", opt.name, best, time.Since(start).Round(time.Millisecond))
			if best < target {
				t.Errorf("test accuracy: got %.4f; want ≥ %.3f within 10 epochs", best, target)
			}
		})
	}
}

func BenchmarkTrainOnBatch(b *testing.B) {
	for _, batch := range []int{64, 128} {
		b.Run(fmt.Sprintf("mlp,batch=%d", batch), func(b *testing.B) {
			m, err := NewModel(mnistSpec(b, `"adam"`))
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			x := dense2(batch, 784, randFloats(rng, batch*784, 0, 1))
			yd := make([]float32, batch*10)
			for r := 0; r < batch; r++ {
				yd[r*10+rng.IntN(10)] = 1
			}
			y := dense2(batch, 10, yd)
			for b.Loop() {
				if _, err := m.TrainOnBatch(x, y); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

func BenchmarkPredict(b *testing.B) {
	const rows = 1024
	b.Run(fmt.Sprintf("mlp,rows=%d", rows), func(b *testing.B) {
		m, err := NewModel(mnistSpec(b, `"adam"`))
		if err != nil {
			b.Fatal(err)
		}
		x := dense2(rows, 784, randFloats(rand.New(rand.NewPCG(1, 2)), rows*784, 0, 1))
		for b.Loop() {
			if _, err := m.Predict(x); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	})
}
