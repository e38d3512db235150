package gokernel

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFastMath bounds exp32, sigmoid32 and tanh32 against the float64
// math package: within a few float32 ulps (relative, or absolute near 0
// for tanh), over a sweep and random values, and at the edges.
func TestFastMath(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var xs []float32
	for x := -110.0; x <= 110; x += 0.01 {
		xs = append(xs, float32(x))
	}
	for range 100000 {
		xs = append(xs, float32(rng.NormFloat64()*3))
	}
	const ulp = 1.0 / (1 << 23)
	check := func(name string, got float32, want float64, x float32, tol float64) {
		t.Helper()
		if math.IsInf(want, 0) || want == 0 {
			if float64(got) != want {
				t.Fatalf("%s(%v): got %v; want %v", name, x, got, want)
			}
			return
		}
		if want < math.SmallestNonzeroFloat32*(1<<24) && want > -math.SmallestNonzeroFloat32*(1<<24) {
			return // subnormal results: absolute error only
		}
		if d := math.Abs(float64(got)-want) / math.Abs(want); d > tol {
			t.Fatalf("%s(%v): got %v; want %v (relative error %.3g > %.3g)", name, x, got, want, d, tol)
		}
	}
	for _, x := range xs {
		e := math.Exp(float64(x))
		if e > math.MaxFloat32 {
			e = math.Inf(1)
		}
		check("exp32", exp32(x), e, x, 4*ulp)
		check("sigmoid32", sigmoid32(x), 1/(1+math.Exp(-float64(x))), x, 6*ulp)
		want := math.Tanh(float64(x))
		if math.Abs(want) < 1e-30 {
			continue
		}
		check("tanh32", tanh32(x), want, x, 6*ulp)
	}
	for _, tt := range []struct {
		f    func(float32) float32
		x    float32
		want float32
	}{
		{exp32, float32(math.Inf(1)), float32(math.Inf(1))}, {exp32, float32(math.Inf(-1)), 0},
		{sigmoid32, -1000, 0}, {sigmoid32, 1000, 1}, {tanh32, -20, -1}, {tanh32, 0, 0},
	} {
		if got := tt.f(tt.x); got != tt.want {
			t.Errorf("at %v: got %v; want %v", tt.x, got, tt.want)
		}
	}
	if v := exp32(float32(math.NaN())); v == v {
		t.Errorf("exp32(NaN): got %v", v)
	}
}
