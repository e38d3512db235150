package gokernel

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"gorgonia.org/tensor"

	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/mnist"
)

// BenchmarkKerasMNISTMLPEpoch trains the MNIST MLP of
// examples/mnist_mlp/model.json (784-128-128-10, Adam) with 2 threads, as
// `make bench-kernel` times it against Keras: each iteration is one Fit of
// five epochs over the 60,000 training images in this process. It reports
// the first epoch's seconds (s/epoch-1) and the median of the later ones
// (s/warm-epoch), and logs every epoch, so epochs that slow down show.
func BenchmarkKerasMNISTMLPEpoch(b *testing.B) {
	dir, err := fixture.MNISTDir()
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
	const epochs = 5
	for _, batch := range []int{64, 128} {
		b.Run(fmt.Sprintf("batch=%d/threads=2", batch), func(b *testing.B) {
			var first, warm []float64
			for b.Loop() {
				m, err := NewModel(spec, WithSeed(1), WithThreads(2))
				if err != nil {
					b.Fatal(err)
				}
				var times []float64
				start := time.Now()
				opts := FitOptions{Epochs: epochs, BatchSize: batch, Shuffle: true, Callback: func(EpochLogs) {
					times = append(times, time.Since(start).Seconds())
					start = time.Now()
				}}
				if _, err := m.Fit(x, y, opts); err != nil {
					b.Fatal(err)
				}
				b.Logf("batch %d epochs (s): %.3f", batch, times)
				first = append(first, times[0])
				warm = append(warm, times[1:]...)
			}
			b.ReportMetric(medianOf(first), "s/epoch-1")
			b.ReportMetric(medianOf(warm), "s/warm-epoch")
		})
	}
}

func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
