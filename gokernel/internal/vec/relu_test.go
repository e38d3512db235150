package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// lengths covers the empty slice, the Go tail alone, one and several AVX2
// blocks of 8 and of 32, and both with a tail.
var lengths = []int{0, 1, 7, 8, 9, 31, 32, 33, 40, 71, 1000}

func sameSlices(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if !same(got[i], want[i]) {
			t.Fatalf("%s[%d]: got %g (%#x); want %g (%#x)", what, i, got[i], got[i], want[i], want[i])
		}
	}
}

func TestReLU(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 3))
	for _, n := range lengths {
		for _, specials := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/specials=%v", n, specials), func(t *testing.T) {
				src := draw(rng, n, specials)
				got, want := make([]float32, n), make([]float32, n)
				ReLU(got, src)
				ReLURef(want, src)
				sameSlices(t, "ReLU", got, want)
				inPlace := append([]float32(nil), src...)
				ReLU(inPlace, inPlace)
				sameSlices(t, "ReLU in place", inPlace, want)
			})
		}
	}
}

// TestReLURefSpecials pins the reference's treatment of the values where
// the instructions differ from Go: -0 gives +0, NaN stays NaN.
func TestReLURefSpecials(t *testing.T) {
	src := []float32{negZero(), nan(), -1, 2}
	got := make([]float32, len(src))
	for _, f := range []struct {
		name string
		fn   func(dst, src []float32)
	}{{"ReLURef", ReLURef}, {"ReLU", ReLU}} {
		f.fn(got, src)
		want := []float32{0, nan(), 0, 2}
		sameSlices(t, f.name, got, want)
		if got[0] != 0 || 1/got[0] < 0 {
			t.Errorf("%s(-0): got %g; want +0", f.name, got[0])
		}
	}
}

func TestReLUGrad(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 4))
	for _, n := range lengths {
		for _, specials := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/specials=%v", n, specials), func(t *testing.T) {
				out, g := draw(rng, n, specials), draw(rng, n, specials)
				for i := range out {
					if rng.IntN(3) == 0 {
						out[i] = 0 // a third of the units off
					}
				}
				got, want := make([]float32, n), make([]float32, n)
				ReLUGrad(got, out, g)
				ReLUGradRef(want, out, g)
				sameSlices(t, "ReLUGrad", got, want)
				inPlace := append([]float32(nil), g...)
				ReLUGrad(inPlace, out, inPlace)
				sameSlices(t, "ReLUGrad in place", inPlace, want)
			})
		}
	}
}

func TestAddColSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 5))
	for _, cols := range []int{1, 3, 8, 10, 32, 40, 64, 75} {
		for _, rows := range []int{0, 1, 2, 17} {
			t.Run(fmt.Sprintf("cols=%d/rows=%d", cols, rows), func(t *testing.T) {
				x := draw(rng, rows*cols, false)
				sum0 := draw(rng, cols, false)
				got, want := append([]float32(nil), sum0...), append([]float32(nil), sum0...)
				AddColSums(got, x)
				AddColSumsRef(want, x)
				sameSlices(t, "AddColSums", got, want)
			})
		}
	}
}

func TestAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 6))
	for _, n := range lengths {
		for _, specials := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/specials=%v", n, specials), func(t *testing.T) {
				src, dst := draw(rng, n, specials), draw(rng, n, specials)
				got, want := append([]float32(nil), dst...), append([]float32(nil), dst...)
				Add(got, src)
				AddRef(want, src)
				sameSlices(t, "Add", got, want)
			})
		}
	}
}

func negZero() float32 { return float32(math.Copysign(0, -1)) }
func nan() float32     { return float32(math.NaN()) }
