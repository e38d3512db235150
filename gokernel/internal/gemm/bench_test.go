package gemm

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// benchShapes are the MLP shapes of the MNIST example (batch 64,
// 784-128-128-10) forward and backward, and a square cube.
var benchShapes = []struct {
	name           string
	transA, transB bool
	m, n, k        int
}{
	{"fwd_64x784x128", false, false, 64, 128, 784}, // X·W
	{"dW_784x64x128", true, false, 784, 128, 64},   // Xᵀ·dY
	{"dX_64x128x784", false, true, 64, 784, 128},   // dY·Wᵀ
	{"fwd_64x128x128", false, false, 64, 128, 128}, // hidden layer
	{"fwd_64x128x10", false, false, 64, 10, 128},   // output layer
	{"cube_1024", false, false, 1024, 1024, 1024},  // square
}

// BenchmarkSgemm measures Sgemm, the portable kernel and gonum's pure-Go
// Sgemm on the same shapes in one run. Names read impl/shape/threads=T.
// gonum parallelises up to GOMAXPROCS, so its threads=1 runs with
// GOMAXPROCS=1.
//
// GFLOP/s is flops over wall time. GFLOP/cpu-s is flops over the CPU time
// the process used: on a machine other work loads it shows what each core
// did while it ran (×threads when every thread got a core), which wall
// time cannot.
func BenchmarkSgemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		p := newProblem(rng, s.transA, s.transB, s.m, s.n, s.k, 0, 1, 0, false)
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		report := func(b *testing.B, cpu time.Duration) {
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			if cpu > 0 {
				b.ReportMetric(flops*float64(b.N)/cpu.Seconds()/1e9, "GFLOP/cpu-s")
			}
		}
		for _, threads := range []int{1, 2} {
			impls := []struct {
				name string
				call func()
			}{
				{"gophas", func() {
					Sgemm(threads, s.transA, s.transB, s.m, s.n, s.k, 1, p.a, p.lda, p.b, p.ldb, 0, p.c, p.ldc)
				}},
				{"gophas-go", func() {
					withKernel(false, func() {
						Sgemm(threads, s.transA, s.transB, s.m, s.n, s.k, 1, p.a, p.lda, p.b, p.ldb, 0, p.c, p.ldc)
					})
				}},
				{"gonum", func() {
					gonum.Implementation{}.Sgemm(trans(s.transA), trans(s.transB), s.m, s.n, s.k, 1, p.a, p.lda, p.b, p.ldb, 0, p.c, p.ldc)
				}},
			}
			for _, impl := range impls {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", impl.name, s.name, threads), func(b *testing.B) {
					if impl.name == "gonum" {
						defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
					}
					cpu0 := processCPU()
					for b.Loop() {
						impl.call()
					}
					report(b, processCPU()-cpu0)
				})
			}
		}
	}
}

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}
