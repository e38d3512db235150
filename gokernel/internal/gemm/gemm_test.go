package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"
)

// problem is one Sgemm call with its matrices.
type problem struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	c              []float32
	ldc            int
}

// sentinel fills the padding past each row; Sgemm must neither read it into
// C (it is NaN in A and B) nor write it (in C).
var sentinel = float32(math.NaN())

// newProblem draws A, B and C with values in [-1, 1) and pad extra columns
// of NaN padding in each leading dimension. cNaN puts NaN in C itself.
func newProblem(rng *rand.Rand, transA, transB bool, m, n, k, pad int, alpha, beta float32, cNaN bool) *problem {
	p := &problem{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	p.lda, p.ldb, p.ldc = max(1, colsA+pad), max(1, colsB+pad), max(1, n+pad)
	p.a = fill(rng, rowsA, colsA, p.lda, false)
	p.b = fill(rng, rowsB, colsB, p.ldb, false)
	p.c = fill(rng, m, n, p.ldc, cNaN)
	return p
}

func fill(rng *rand.Rand, rows, cols, ld int, nan bool) []float32 {
	s := make([]float32, rows*ld)
	for i := range s {
		switch {
		case i%ld >= cols:
			s[i] = sentinel
		case nan:
			s[i] = float32(math.NaN())
		default:
			s[i] = 2*rng.Float32() - 1
		}
	}
	return s
}

// check runs Sgemm on a copy of C and compares it with SgemmRef.
func (p *problem) check(t testing.TB, threads int) {
	t.Helper()
	got := append([]float32(nil), p.c...)
	Sgemm(threads, p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, got, p.ldc)
	if err := p.compare(got); err != nil {
		t.Fatal(err)
	}
}

// compare checks got, the C that Sgemm wrote, against SgemmRef: each
// element within a float32 accumulation bound of the reference, and the
// padding of C untouched.
func (p *problem) compare(got []float32) error {
	want := append([]float32(nil), p.c...)
	SgemmRef(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, want, p.ldc)
	const eps = 1.0 / (1 << 23)
	for i := range p.m {
		for j := range p.ldc {
			g, w := got[i*p.ldc+j], want[i*p.ldc+j]
			if j >= p.n {
				if !math.IsNaN(float64(g)) {
					return fmt.Errorf("padding C[%d][%d] = %v; want it untouched (NaN)", i, j, g)
				}
				continue
			}
			// The bound scales with absSum ≥ |want|; computing it costs
			// O(k), so it is done only when the cheap |want| scale fails.
			tol := float64(2*(p.k+2)) * eps
			d := math.Abs(float64(g) - float64(w))
			if d <= tol*math.Abs(float64(w)) {
				continue
			}
			if bound := tol * p.absSum(i, j); !(d <= bound) {
				return fmt.Errorf("C[%d][%d]: got %v; want %v (|diff| %g > bound %g)", i, j, g, w, d, bound)
			}
		}
	}
	return nil
}

// absSum is |alpha|·Σ|op(A)[i][l]·op(B)[l][j]| + |beta·C[i][j]|, the scale
// of the rounding error in C[i][j].
func (p *problem) absSum(i, j int) float64 {
	var s float64
	for l := range p.k {
		var av, bv float32
		if p.transA {
			av = p.a[l*p.lda+i]
		} else {
			av = p.a[i*p.lda+l]
		}
		if p.transB {
			bv = p.b[j*p.ldb+l]
		} else {
			bv = p.b[l*p.ldb+j]
		}
		s += math.Abs(float64(av) * float64(bv))
	}
	s *= math.Abs(float64(p.alpha))
	if p.beta != 0 {
		s += math.Abs(float64(p.beta) * float64(p.c[i*p.ldc+j]))
	}
	return s + 1e-30
}

// kernels lists the implementations this machine runs, so every test runs
// each of them (AVX-512, AVX2, portable Go) where the CPU allows.
func kernels(t testing.TB) []*impl { return impls() }

// withKernel runs f with Sgemm forced to the implementation im.
func withKernel(im *impl, f func()) {
	old := active
	active = im
	defer func() { active = old }()
	f()
}

func kernelName(im *impl) string { return im.name }

// parallelAlways makes even tiny products parallel for the test's
// duration, so small shapes exercise the parallel paths.
func parallelAlways(t testing.TB) {
	old := minParallelFlops
	minParallelFlops = 0
	t.Cleanup(func() { minParallelFlops = old })
}

func TestSgemm(t *testing.T) {
	parallelAlways(t)
	shapes := []struct{ m, n, k int }{
		{1, 1, 1}, {1, 1, 0}, {0, 3, 2}, {3, 0, 2}, {2, 3, 1},
		{7, 13, 17}, {6, 16, 1}, {6, 16, 4}, {6, 16, 5}, {12, 32, 256},
		{5, 15, 3}, {13, 33, 257}, {31, 7, 29}, {1, 100, 9}, {100, 1, 9},
		{145, 17, 300}, {64, 10, 128}, {20, 4097, 3},
	}
	scalars := []struct{ alpha, beta float32 }{{1, 0}, {1, 1}, {-0.5, 2}, {0, 0.5}, {0, 0}, {2, -1}}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, im := range kernels(t) {
		for _, s := range shapes {
			for tr := range 4 {
				transA, transB := tr&1 != 0, tr&2 != 0
				for si, sc := range scalars {
					for _, threads := range []int{1, 2} {
						pad := (si + tr) % 3 * 3 // ld = width, width+3, width+6
						name := fmt.Sprintf("%s/%dx%dx%d/tA=%v,tB=%v/alpha=%v,beta=%v/pad=%d/threads=%d",
							kernelName(im), s.m, s.n, s.k, transA, transB, sc.alpha, sc.beta, pad, threads)
						t.Run(name, func(t *testing.T) {
							p := newProblem(rng, transA, transB, s.m, s.n, s.k, pad, sc.alpha, sc.beta, false)
							withKernel(im, func() { p.check(t, threads) })
						})
					}
				}
			}
		}
	}
}

// TestSgemmMLP checks the shapes of the MNIST MLP (batch 64, 784-128-128-10)
// forward and backward, each with the transposes it is called with.
func TestSgemmMLP(t *testing.T) {
	tests := []struct {
		name           string
		transA, transB bool
		m, n, k        int
	}{
		{"fwd", false, false, 64, 128, 784},
		{"dW", true, false, 784, 128, 64},
		{"dX", false, true, 64, 784, 128},
		{"hidden", false, false, 64, 128, 128},
		{"out", false, false, 64, 10, 128},
		{"outdX", false, true, 64, 128, 10},
	}
	rng := rand.New(rand.NewPCG(10, 11))
	for _, im := range kernels(t) {
		for _, tt := range tests {
			for _, threads := range []int{1, 2} {
				t.Run(fmt.Sprintf("%s/%s/threads=%d", kernelName(im), tt.name, threads), func(t *testing.T) {
					p := newProblem(rng, tt.transA, tt.transB, tt.m, tt.n, tt.k, 1, 0.5, 1, false)
					withKernel(im, func() { p.check(t, threads) })
				})
			}
		}
	}
}

// TestSgemmBetaZeroNaN checks the BLAS rule that beta == 0 overwrites C,
// NaN included, for every path that returns early or not.
func TestSgemmBetaZeroNaN(t *testing.T) {
	parallelAlways(t)
	tests := []struct {
		m, n, k int
		alpha   float32
	}{
		{7, 13, 17, 1}, {64, 128, 784, 1}, {5, 5, 0, 1}, {5, 5, 5, 0},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, im := range kernels(t) {
		for _, tt := range tests {
			for _, threads := range []int{1, 2} {
				t.Run(fmt.Sprintf("%s/%dx%dx%d/alpha=%v/threads=%d", kernelName(im), tt.m, tt.n, tt.k, tt.alpha, threads), func(t *testing.T) {
					p := newProblem(rng, false, false, tt.m, tt.n, tt.k, 1, tt.alpha, 0, true)
					withKernel(im, func() { p.check(t, threads) })
				})
			}
		}
	}
}

// TestSgemmThreads checks that thread counts beyond the cores and the
// available tiles still give the reference result.
func TestSgemmThreads(t *testing.T) {
	parallelAlways(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, threads := range []int{0, -1, 3, 8, 64} {
		for _, s := range []struct{ m, n, k int }{{64, 128, 64}, {200, 20, 64}, {20, 200, 64}, {3, 3, 300}} {
			t.Run(fmt.Sprintf("%dx%dx%d/threads=%d", s.m, s.n, s.k, threads), func(t *testing.T) {
				newProblem(rng, false, true, s.m, s.n, s.k, 2, 1, 1, false).check(t, threads)
			})
		}
	}
}

// TestSgemmConcurrent calls Sgemm from several goroutines at once, sharing
// the worker pool and the buffer pool, under the race detector.
func TestSgemmConcurrent(t *testing.T) {
	parallelAlways(t)
	const goroutines = 4
	errs := make(chan error, goroutines)
	for g := range goroutines {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			p := newProblem(rng, g&1 != 0, g&2 != 0, 70, 90, 110, 1, 1, 0.5, false)
			got := make([]float32, len(p.c))
			var err error
			for range 5 {
				copy(got, p.c)
				Sgemm(2, p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, got, p.ldc)
				if err = p.compare(got); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range goroutines {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestDispatch(t *testing.T) {
	want := "go"
	switch {
	case hasAVX512:
		want = "avx512"
	case hasAVX2:
		want = "avx2"
	}
	tests := []struct{ env, want string }{
		{"", want}, {"go", "go"}, {"sse", want}, {"AVX2", want},
	}
	if hasAVX2 {
		tests = append(tests, struct{ env, want string }{"avx2", "avx2"})
	}
	for _, tt := range tests {
		if got := pickImpl(tt.env).name; got != tt.want {
			t.Errorf("pickImpl(%q) = %s; want %s", tt.env, got, tt.want)
		}
	}
	if env := os.Getenv(EnvISA); env == "" && ISA() != want {
		t.Errorf("ISA() = %s; want %s on this CPU", ISA(), want)
	}
}

func TestSgemmPanics(t *testing.T) {
	a := make([]float32, 6)
	b := make([]float32, 6)
	c := make([]float32, 4)
	tests := []struct {
		name    string
		m, n, k int
		lda     int
		ldb     int
		ldc     int
		c       []float32
		want    string
	}{
		{"m<0", -1, 2, 3, 3, 2, 2, c, "gemm: m < 0"},
		{"n<0", 2, -1, 3, 3, 2, 2, c, "gemm: n < 0"},
		{"k<0", 2, 2, -1, 3, 2, 2, c, "gemm: k < 0"},
		{"lda", 2, 2, 3, 2, 2, 2, c, "gemm: bad lda"},
		{"ldb", 2, 2, 3, 3, 1, 2, c, "gemm: bad ldb"},
		{"ldc", 2, 2, 3, 3, 2, 1, c, "gemm: bad ldc"},
		{"short a", 3, 2, 3, 3, 2, 2, make([]float32, 6), "gemm: short a"},
		{"short c", 2, 2, 3, 3, 2, 2, c[:3], "gemm: short c"},
	}
	for _, tt := range tests {
		for _, f := range []struct {
			name string
			call func()
		}{
			{"Sgemm", func() { Sgemm(1, false, false, tt.m, tt.n, tt.k, 1, a, tt.lda, b, tt.ldb, 0, tt.c, tt.ldc) }},
			{"SgemmRef", func() { SgemmRef(false, false, tt.m, tt.n, tt.k, 1, a, tt.lda, b, tt.ldb, 0, tt.c, tt.ldc) }},
		} {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				defer func() {
					if got := recover(); got != tt.want {
						t.Errorf("panic = %v; want %q", got, tt.want)
					}
				}()
				f.call()
			})
		}
	}
}

func TestSgemmNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("gemm: sync.Pool drops items on purpose under the race detector")
	}
	rng := rand.New(rand.NewPCG(8, 9))
	p := newProblem(rng, false, false, 64, 128, 784, 0, 1, 0, false)
	for _, threads := range []int{1, 2} {
		Sgemm(threads, false, false, p.m, p.n, p.k, 1, p.a, p.lda, p.b, p.ldb, 0, p.c, p.ldc)
		got := testing.AllocsPerRun(20, func() {
			Sgemm(threads, false, false, p.m, p.n, p.k, 1, p.a, p.lda, p.b, p.ldb, 0, p.c, p.ldc)
		})
		if got > 0.5 {
			t.Errorf("threads=%d: got %v allocations per call; want 0", threads, got)
		}
	}
}

func FuzzSgemm(f *testing.F) {
	parallelAlways(f)
	f.Add(uint8(1), uint8(1), uint8(1), uint8(0), uint8(0), int8(4), int8(0), uint64(1))
	f.Add(uint8(7), uint8(13), uint8(17), uint8(3), uint8(2), int8(-2), int8(3), uint64(2))
	f.Add(uint8(6), uint8(16), uint8(0), uint8(1), uint8(1), int8(1), int8(0), uint64(3))
	f.Fuzz(func(t *testing.T, m, n, k, tr, pad uint8, alpha, beta int8, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 0))
		p := newProblem(rng, tr&1 != 0, tr&2 != 0, int(m%80), int(n%80), int(k), int(pad%4),
			float32(alpha)/4, float32(beta)/4, false)
		for _, im := range kernels(t) {
			withKernel(im, func() { p.check(t, 1+int(tr>>2)%2) })
		}
	})
}

// TestKernel holds each micro-kernel to the definition on random slivers,
// packed (strides mr and nr) and read in place (wider strides), ldc wider
// than the tile, C's padding NaN.
func TestKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	for _, im := range kernels(t) {
		mr, nr := im.mr, im.nr
		for _, strides := range [][2]int{{mr, nr}, {mr + 3, nr + 5}, {3*mr + 1, nr}} {
			as, bs := strides[0], strides[1]
			for _, kcb := range []int{1, 2, 3, 4, 5, 7, 8, 196, 256} {
				for _, alpha := range []float32{1, -0.5} {
					t.Run(fmt.Sprintf("%s/as=%d,bs=%d/kc=%d/alpha=%v", im.name, as, bs, kcb, alpha), func(t *testing.T) {
						ap := fill(rng, kcb, mr, as, false) // NaN between slivers
						bp := fill(rng, kcb, nr, bs, false)
						ldc := nr + 3
						got := fill(rng, mr, nr, ldc, false)
						c0 := append([]float32(nil), got...)
						im.kernel(kcb, alpha, &ap[0], as, &bp[0], bs, &got[0], ldc)
						for i := range got {
							r, j := i/ldc, i%ldc
							if j >= nr {
								if !math.IsNaN(float64(got[i])) {
									t.Fatalf("padding %d = %v; want it untouched (NaN)", i, got[i])
								}
								continue
							}
							var sum, abs float64
							for l := range kcb {
								x := float64(ap[l*as+r]) * float64(bp[l*bs+j])
								sum += x
								abs += math.Abs(x)
							}
							want := float64(c0[i]) + float64(alpha)*sum
							tol := float64(2*(kcb+2)) / (1 << 23) * (math.Abs(float64(alpha))*abs + math.Abs(float64(c0[i])))
							if d := math.Abs(float64(got[i]) - want); !(d <= tol) {
								t.Fatalf("C[%d][%d]: got %v; want %v (|diff| %g > %g)", r, j, got[i], want, d, tol)
							}
						}
					})
				}
			}
		}
	}
}

// packWidths are the sliver widths of every implementation, each with and
// without the assembly helpers where the CPU has them.
func packWidths() (ws []int, asms []bool) {
	asms = []bool{false}
	if hasAVX2 {
		asms = append(asms, true)
	}
	return []int{goMR, 6, 8, 16, 32}, asms
}

// TestCopyRuns holds the packing copies, the assembly ones included, to the
// element-by-element definition.
func TestCopyRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 15))
	ws, asms := packWidths()
	for _, asm := range asms {
		for _, w := range ws {
			for _, cnt := range []int{1, w - 1, w} {
				for _, kcb := range []int{1, 5, 196} {
					t.Run(fmt.Sprintf("asm=%v/w=%d/cnt=%d/kc=%d", asm, w, cnt, kcb), func(t *testing.T) {
						const ld = 37
						src := fill(rng, kcb, ld, ld, false)
						got := fill(rng, kcb, w, w, false) // stale values must go
						copyRuns(asm, got, w, src, ld, kcb, cnt)
						for l := range kcb {
							for r := range w {
								want := float32(0)
								if r < cnt {
									want = src[l*ld+r]
								}
								if got[l*w+r] != want {
									t.Fatalf("d[%d*%d+%d] = %v; want %v", l, w, r, got[l*w+r], want)
								}
							}
						}
					})
				}
			}
		}
	}
}

// TestInterleave holds the packing transposes, the assembly one included, to
// the element-by-element definition.
func TestInterleave(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 17))
	ws, asms := packWidths()
	for _, asm := range asms {
		for _, w := range ws {
			for _, cnt := range []int{1, w - 1, w} {
				for _, kcb := range []int{1, 7, 8, 9, 16, 196} {
					t.Run(fmt.Sprintf("asm=%v/w=%d/cnt=%d/kc=%d", asm, w, cnt, kcb), func(t *testing.T) {
						ld := kcb + 3
						src := fill(rng, cnt, kcb, ld, false)
						got := fill(rng, kcb, w, w, false) // stale values must go
						interleave(asm, got, w, src, ld, kcb, cnt)
						for l := range kcb {
							for r := range w {
								want := float32(0)
								if r < cnt {
									want = src[r*ld+l]
								}
								if got[l*w+r] != want {
									t.Fatalf("d[%d*%d+%d] = %v; want %v", l, w, r, got[l*w+r], want)
								}
							}
						}
					})
				}
			}
		}
	}
}
