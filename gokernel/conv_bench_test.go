package gokernel

import (
	"math/rand/v2"
	"testing"
)

// mnistConvnetJSON is the Keras MNIST convnet example
// (keras.io/examples/vision/mnist_convnet): Conv2D(32, 3, relu),
// MaxPooling2D, Conv2D(64, 3, relu), MaxPooling2D, Flatten, Dropout(0.5),
// Dense(10, softmax), with Adam and categorical cross-entropy.
func mnistConvnetJSON() []byte {
	return []byte(`{"model":` + string(inputJSON([]int{28, 28, 1},
		`{"class_name":"Conv2D","config":{"name":"c1","filters":32,"kernel_size":[3,3],"activation":"relu"}}`,
		`{"class_name":"MaxPooling2D","config":{"name":"p1","pool_size":[2,2]}}`,
		`{"class_name":"Conv2D","config":{"name":"c2","filters":64,"kernel_size":[3,3],"activation":"relu"}}`,
		`{"class_name":"MaxPooling2D","config":{"name":"p2","pool_size":[2,2]}}`,
		`{"class_name":"Flatten","config":{"name":"f"}}`,
		`{"class_name":"Dropout","config":{"name":"d","rate":0.5}}`,
		`{"class_name":"Dense","config":{"name":"o","units":10,"activation":"softmax"}}`)) +
		`,"compile":{"optimizer":"adam","loss":"categorical_crossentropy","metrics":["accuracy"]}}`)
}

// BenchmarkMNISTConvnetStep is one training step (forward, backward, Adam)
// of the MNIST convnet on a batch of 128: an epoch is 469 of them.
func BenchmarkMNISTConvnetStep(b *testing.B) {
	m := mustModel(b, mnistConvnetJSON())
	rng := rand.New(rand.NewPCG(1, 1))
	const rows = 128
	x := randFloats(rng, rows*784, 0, 1)
	y := make([]float32, rows*10)
	for r := 0; r < rows; r++ {
		y[r*10+r%10] = 1
	}
	for b.Loop() {
		m.step(x, y, rows)
		if err := m.opt.Apply(m.params, m.grads); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConv2DGFLOPS times the forward and backward passes (kernel and
// input gradients) of the MNIST convnet's second convolution, Conv2D(64,
// 3×3) on a batch of 128 samples of 13×13×32, and reports GFLOP/s: three
// matrix products of 2·(128·11·11)·288·64 flops each.
func BenchmarkConv2DGFLOPS(b *testing.B) {
	layer := `{"class_name":"Conv2D","config":{"name":"c","filters":64,"kernel_size":3}}`
	m := mustModel(b, inputJSON([]int{13, 13, 32}, layer), withInputGrads())
	rng := rand.New(rand.NewPCG(1, 1))
	const rows = 128
	x := randFloats(rng, rows*13*13*32, -1, 1)
	dy := [][]float32{randFloats(rng, rows*11*11*64, -1, 1)}
	cpu := processCPU()
	for b.Loop() {
		m.run([][]float32{x}, rows, true)
		m.backpropFrom(dy, rows)
	}
	flops := 3 * 2 * float64(rows*11*11) * 288 * 64 * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	if cpu := processCPU() - cpu; cpu > 0 {
		b.ReportMetric(flops/cpu.Seconds()/1e9, "GFLOP/cpu-s")
	}
}

// BenchmarkMaxPool2x2 is the MNIST convnet's first pooling (128×26×26×32)
// in training mode, with the 2×2 fast path and with the general loop.
func BenchmarkMaxPool2x2(b *testing.B) {
	for _, fast := range []bool{true, false} {
		b.Run(map[bool]string{true: "fast", false: "general"}[fast], func(b *testing.B) {
			defer func() { poolFast = true }()
			poolFast = fast
			m := mustModel(b, inputJSON([]int{26, 26, 32}, `{"class_name":"MaxPooling2D","config":{"name":"p","pool_size":2}}`), WithThreads(1))
			x := randFloats(rand.New(rand.NewPCG(1, 1)), 128*26*26*32, -1, 1)
			for b.Loop() {
				m.run([][]float32{x}, 128, true)
			}
		})
	}
}
