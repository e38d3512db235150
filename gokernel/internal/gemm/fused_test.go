package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// checkFused runs SgemmFused with a bias and a Rows hook on a copy of p's C
// and checks: C equals SgemmRef plus the bias; Rows saw each band final
// (equal to the result) when it was called; the bands are disjoint and
// cover [0, m).
func (p *problem) checkFused(t *testing.T, threads int, bias []float32) {
	t.Helper()
	want := append([]float32(nil), p.c...)
	SgemmRef(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, want, p.ldc)
	if bias != nil {
		for i := range p.m {
			for j := range p.n {
				want[i*p.ldc+j] += bias[j]
			}
		}
	}
	got := append([]float32(nil), p.c...)
	seen := make([]float32, len(got)) // C as each band was when Rows was called
	var mu sync.Mutex
	var bands [][2]int
	rows := func(i0, i1 int) {
		mu.Lock()
		defer mu.Unlock()
		bands = append(bands, [2]int{i0, i1})
		copy(seen[i0*p.ldc:i1*p.ldc], got[i0*p.ldc:i1*p.ldc])
	}
	SgemmFused(threads, p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, got, p.ldc, Epilogue{Bias: bias, Rows: rows})
	q := *p
	q.c = want
	q.beta, q.alpha = 0, 0 // compare got with want itself
	if err := q.compareTo(got, want); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(bands, func(a, b [2]int) int { return a[0] - b[0] })
	next := 0
	for _, b := range bands {
		if b[0] != next || b[1] <= b[0] {
			t.Fatalf("Rows bands %v: want disjoint bands covering [0, %d)", bands, p.m)
		}
		next = b[1]
	}
	if next != p.m {
		t.Fatalf("Rows bands %v: want disjoint bands covering [0, %d)", bands, p.m)
	}
	for i := range p.m {
		for j := range p.n {
			if g, s := got[i*p.ldc+j], seen[i*p.ldc+j]; math.Float32bits(g) != math.Float32bits(s) {
				t.Fatalf("C[%d][%d] was %v when Rows saw its band; want final %v", i, j, s, g)
			}
		}
	}
}

// compareTo is compare against an already computed want.
func (p *problem) compareTo(got, want []float32) error {
	for i := range p.m {
		for j := range p.ldc {
			g, w := got[i*p.ldc+j], want[i*p.ldc+j]
			if j >= p.n {
				if !math.IsNaN(float64(g)) {
					return fmt.Errorf("padding C[%d][%d] = %v; want it untouched (NaN)", i, j, g)
				}
				continue
			}
			tol := float64(2*(p.k+4)) / (1 << 23) * (p.absSum(i, j) + 1)
			if d := math.Abs(float64(g) - float64(w)); !(d <= tol) {
				return fmt.Errorf("C[%d][%d]: got %v; want %v (|diff| %g > %g)", i, j, g, w, d, tol)
			}
		}
	}
	return nil
}

func TestSgemmFused(t *testing.T) {
	parallelAlways(t)
	shapes := []struct{ m, n, k int }{
		{1, 1, 1}, {7, 13, 17}, {64, 128, 100}, {64, 10, 128}, {130, 70, 33}, {5, 5, 0}, {0, 4, 3},
	}
	scalars := []struct{ alpha, beta float32 }{{1, 0}, {0.5, 1}, {-1, 0.25}, {0, 2}}
	rng := rand.New(rand.NewPCG(21, 22))
	for _, im := range kernels(t) {
		for _, s := range shapes {
			for tr := range 4 {
				for _, sc := range scalars {
					for _, threads := range []int{1, 2} {
						for _, withBias := range []bool{false, true} {
							name := fmt.Sprintf("%s/%dx%dx%d/tr=%d/alpha=%v,beta=%v/threads=%d/bias=%v", im.name, s.m, s.n, s.k, tr, sc.alpha, sc.beta, threads, withBias)
							t.Run(name, func(t *testing.T) {
								p := newProblem(rng, tr&1 != 0, tr&2 != 0, s.m, s.n, s.k, tr, sc.alpha, sc.beta, false)
								var bias []float32
								if withBias {
									bias = fill(rng, 1, s.n, s.n, false)
								}
								withKernel(im, func() { p.checkFused(t, threads, bias) })
							})
						}
					}
				}
			}
		}
	}
}

// TestSgemmBlocking shrinks the blocks so small matrices make many steps
// (several blocks along k, n and m, edge slivers in each), for every
// implementation and thread count, with parallel calls both phased (shared
// panels) and private.
func TestSgemmBlocking(t *testing.T) {
	parallelAlways(t)
	defer func(g, p, v int) { groupBytes, panelBytes, privateBytes = g, p, v }(groupBytes, panelBytes, privateBytes)
	rng := rand.New(rand.NewPCG(23, 24))
	for _, base := range kernels(t) {
		im := *base
		im.kc, im.mc = 13, 2*im.mr
		groupBytes, panelBytes = 4*13*3*im.mr, 4*13*2*im.nr
		for _, private := range []int{0, 1 << 20} {
			privateBytes = private
			for _, s := range []struct{ m, n, k int }{{37, 75, 70}, {70, 33, 129}, {9, 200, 27}} {
				for tr := range 4 {
					for _, threads := range []int{1, 2, 3} {
						t.Run(fmt.Sprintf("%s/private=%d/%dx%dx%d/tr=%d/threads=%d", im.name, private, s.m, s.n, s.k, tr, threads), func(t *testing.T) {
							p := newProblem(rng, tr&1 != 0, tr&2 != 0, s.m, s.n, s.k, 2, 0.75, 0.5, false)
							withKernel(&im, func() {
								p.check(t, threads)
								p.checkFused(t, threads, fill(rng, 1, s.n, s.n, false))
							})
						})
					}
				}
			}
		}
	}
}

// TestPlan checks that the MLP's products run as private calls with two
// threads and 1024³ in phases, and that private tasks tile C exactly.
func TestPlan(t *testing.T) {
	for _, im := range kernels(t) {
		for _, tt := range []struct {
			transA, transB bool
			m, n, k        int
			private        bool
		}{
			{false, false, 64, 128, 784, true}, // X·W: rows, B in place
			{true, false, 784, 128, 64, true},  // Xᵀ·dY: rows, A and B in place
			{false, true, 64, 784, 128, true},  // dY·Wᵀ: columns, A packed in every task
			{false, false, 64, 128, 128, true},
			{false, false, 1024, 1024, 1024, false},
		} {
			c := call{im: im, transA: tt.transA, transB: tt.transB, m: tt.m, n: tt.n, k: tt.k}
			c.lda, c.ldb = tt.k, tt.n
			if tt.transA {
				c.lda = tt.m
			}
			if tt.transB {
				c.ldb = tt.k
			}
			c.plan(2)
			if c.private != tt.private {
				t.Errorf("%s %dx%dx%d: private = %v; want %v", im.name, tt.m, tt.n, tt.k, c.private, tt.private)
			}
			if c.private && c.tasks(0) < 4 {
				t.Errorf("%s %dx%dx%d: %d private tasks; want at least 4 for 2 threads", im.name, tt.m, tt.n, tt.k, c.tasks(0))
			}
		}
	}
}

// TestSgemmParked runs parallel calls with no spinning, so helpers park
// between calls and goroutines park at every phase end, under -race too.
func TestSgemmParked(t *testing.T) {
	parallelAlways(t)
	defer spinFor.Store(spinFor.Load())
	spinFor.Store(0)
	rng := rand.New(rand.NewPCG(25, 26))
	for _, im := range kernels(t) {
		for i := range 20 {
			p := newProblem(rng, i&1 != 0, i&2 != 0, 64+i, 128-i, 100+3*i, 1, 1, 0.5, false)
			withKernel(im, func() { p.check(t, 2) })
		}
	}
}
