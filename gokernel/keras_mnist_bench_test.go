package gokernel

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gorgonia.org/tensor"

	"github.com/gophas/gophas/internal/mnist"
)

// BenchmarkKerasMNISTMLPEpoch trains the MNIST MLP of
// examples/mnist_mlp/model.json (784-128-128-10, Adam) for one epoch over the
// 60,000 training images per iteration, with 2 threads, as `make
// bench-kernel` times it against Keras.
func BenchmarkKerasMNISTMLPEpoch(b *testing.B) {
	dir, err := mnist.DefaultDir()
	if err != nil {
		b.Skip(err)
	}
	train, _, err := mnist.Load(dir)
	if err != nil {
		b.Skip(err)
	}
	js, err := os.ReadFile(filepath.Join("..", "examples", "mnist_mlp", "model.json"))
	if err != nil {
		b.Fatal(err)
	}
	spec, err := ParseSpec(js)
	if err != nil {
		b.Fatal(err)
	}
	x := tensor.New(tensor.WithShape(train.N, mnist.Width), tensor.WithBacking(train.Images))
	y := tensor.New(tensor.WithShape(train.N, 10), tensor.WithBacking(train.OneHot()))
	for _, batch := range []int{64, 128} {
		b.Run(fmt.Sprintf("batch=%d/threads=2", batch), func(b *testing.B) {
			m, err := NewModel(spec, WithSeed(1), WithThreads(2))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := m.Fit(x, y, FitOptions{Epochs: 1, BatchSize: batch, Shuffle: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
