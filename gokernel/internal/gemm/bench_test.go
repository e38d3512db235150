package gemm

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
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

// machinePeak is the f32 peak this benchmark assumes: per ISA, one core's
// FMA throughput measured with independent FMA chains on registers, and the
// core clock measured with a chain of dependent one-cycle adds. Each is the
// best of fifteen runs of about 0.1 ms: other work on the machine can only
// slow a run down, never speed it up.
type machinePeak struct {
	clock float64            // Hz
	core  map[string]float64 // GFLOP/s of one core, by ISA
	best  float64            // the fastest ISA's, the machine's peak per core
}

var (
	peakOnce sync.Once
	peakVal  machinePeak
)

// peaks measures the peaks once per process and logs them with the CPU's
// name.
func peaks() machinePeak {
	peakOnce.Do(func() {
		peakVal.core = map[string]float64{}
		if !hasAVX2 {
			return
		}
		peakVal.clock = best(15, func() float64 {
			const n = 40_000
			t := time.Now()
			clockLoop(n)
			return 8 * n / time.Since(t).Seconds()
		})
		for _, im := range impls() {
			if im.peak == nil {
				continue
			}
			p := best(15, func() float64 {
				n := 15_000
				t := time.Now()
				im.peak(n)
				return im.flops * float64(n) / time.Since(t).Seconds() / 1e9
			})
			peakVal.core[im.name] = p
			peakVal.best = max(peakVal.best, p)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "gemm: CPU %q, %d logical CPUs, clock %.2f GHz measured; f32 FMA peak per core measured:", cpuName(), runtime.NumCPU(), peakVal.clock/1e9)
		for _, im := range impls() {
			if p, ok := peakVal.core[im.name]; ok {
				fmt.Fprintf(&b, " %s %.1f GFLOP/s (%.0f flop/cycle)", im.name, p, p*1e9/peakVal.clock)
			}
		}
		fmt.Fprintf(&b, "; %%peak is of %.1f GFLOP/s × threads; Sgemm's own ISA is %s", peakVal.best, ISA())
		fmt.Fprintln(os.Stderr, b.String())
	})
	return peakVal
}

// perCore returns the peak of one core for im's ISA; the portable kernel is
// held to the machine's best.
func (p machinePeak) perCore(im *impl) float64 {
	if v, ok := p.core[im.name]; ok {
		return v
	}
	return p.best
}

// best returns the largest of runs calls of f.
func best(runs int, f func() float64) float64 {
	v := 0.0
	for range runs {
		v = max(v, f())
	}
	return v
}

// cpuName returns the model name from /proc/cpuinfo, or GOARCH.
func cpuName() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// BenchmarkPeak runs the FMA peak loop of each ISA on 1 and 2 goroutines at
// once: what the machine gives when nothing but FMAs run.
func BenchmarkPeak(b *testing.B) {
	for _, im := range impls() {
		if im.peak == nil {
			continue
		}
		for _, threads := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/threads=%d", im.name, threads), func(b *testing.B) {
				const n = 10_000
				for b.Loop() {
					var wg sync.WaitGroup
					for range threads {
						wg.Go(func() { im.peak(n) })
					}
					wg.Wait()
				}
				b.ReportMetric(im.flops*n*float64(threads)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkSgemm measures Sgemm with each ISA path and gonum's pure-Go
// Sgemm on the same shapes in one run. Names read isa/shape/threads=T.
// gonum parallelises up to GOMAXPROCS, so its threads=1 runs with
// GOMAXPROCS=1.
//
// GFLOP/s is flops over wall time; %peak is GFLOP/s over the machine's
// measured f32 peak per core (its fastest ISA) times threads. GFLOP/cpu-s
// is flops over the CPU time the process used: on a machine other work
// loads it shows what each core did while it ran, which wall time cannot.
func BenchmarkSgemm(b *testing.B) {
	pk := peaks()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchShapes {
		p := newProblem(rng, s.transA, s.transB, s.m, s.n, s.k, 0, 1, 0, false)
		flops := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		for _, threads := range []int{1, 2} {
			type bench struct {
				name string
				call func()
			}
			var benches []bench
			for _, im := range impls() {
				benches = append(benches, bench{im.name, func() {
					withKernel(im, func() {
						Sgemm(threads, s.transA, s.transB, s.m, s.n, s.k, 1, p.a, p.lda, p.b, p.ldb, 0, p.c, p.ldc)
					})
				}})
			}
			benches = append(benches, bench{"gonum", func() {
				gonum.Implementation{}.Sgemm(trans(s.transA), trans(s.transB), s.m, s.n, s.k, 1, p.a, p.lda, p.b, p.ldb, 0, p.c, p.ldc)
			}})
			for _, bn := range benches {
				b.Run(fmt.Sprintf("%s/%s/threads=%d", bn.name, s.name, threads), func(b *testing.B) {
					if bn.name == "gonum" {
						defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
					}
					cpu0 := processCPU()
					for b.Loop() {
						bn.call()
					}
					cpu := processCPU() - cpu0
					gflops := flops * float64(b.N) / b.Elapsed().Seconds() / 1e9
					b.ReportMetric(gflops, "GFLOP/s")
					if pk.best > 0 {
						b.ReportMetric(100*gflops/(pk.best*float64(threads)), "%peak")
					}
					if cpu > 0 {
						b.ReportMetric(flops*float64(b.N)/cpu.Seconds()/1e9, "GFLOP/cpu-s")
					}
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

// BenchmarkEpilogue measures a dense layer's forward pass, z = x·W + b and
// a = relu(z), at the MLP's first layer: Sgemm followed by separate passes
// for the bias and the activation, beside SgemmFused doing both per band of
// rows while the band is in cache.
func BenchmarkEpilogue(b *testing.B) {
	const m, n, k = 64, 128, 784
	rng := rand.New(rand.NewPCG(2, 2))
	x := fill(rng, m, k, k, false)
	w := fill(rng, k, n, n, false)
	bias := fill(rng, 1, n, n, false)
	z := make([]float32, m*n)
	a := make([]float32, m*n)
	relu := func(i0, i1 int) {
		for i, v := range z[i0*n : i1*n] {
			a[i0*n+i] = max(v, 0)
		}
	}
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("separate/threads=%d", threads), func(b *testing.B) {
			for b.Loop() {
				Sgemm(threads, false, false, m, n, k, 1, x, k, w, n, 0, z, n)
				for r := range m {
					zr := z[r*n : r*n+n]
					for j, v := range bias {
						zr[j] += v
					}
				}
				relu(0, m)
			}
		})
		b.Run(fmt.Sprintf("fused/threads=%d", threads), func(b *testing.B) {
			ep := Epilogue{Bias: bias, Rows: relu}
			for b.Loop() {
				SgemmFused(threads, false, false, m, n, k, 1, x, k, w, n, 0, z, n, ep)
			}
		})
	}
}
