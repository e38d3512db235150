package vec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFastMath bounds Exp32, Sigmoid32 and Tanh32 against the float64
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
		check("Exp32", Exp32(x), e, x, 4*ulp)
		check("Sigmoid32", Sigmoid32(x), 1/(1+math.Exp(-float64(x))), x, 6*ulp)
		want := math.Tanh(float64(x))
		if math.Abs(want) < 1e-30 {
			continue
		}
		check("Tanh32", Tanh32(x), want, x, 6*ulp)
	}
	for _, tt := range []struct {
		f    func(float32) float32
		x    float32
		want float32
	}{
		{Exp32, float32(math.Inf(1)), float32(math.Inf(1))}, {Exp32, float32(math.Inf(-1)), 0},
		{Sigmoid32, -1000, 0}, {Sigmoid32, 1000, 1}, {Tanh32, -20, -1}, {Tanh32, 0, 0},
	} {
		if got := tt.f(tt.x); got != tt.want {
			t.Errorf("at %v: got %v; want %v", tt.x, got, tt.want)
		}
	}
	if v := Exp32(float32(math.NaN())); v == v {
		t.Errorf("Exp32(NaN): got %v", v)
	}
}

// TestActivationsAVX2 checks Sigmoid and Tanh (the AVX2 path where the
// CPU has it, the scalar tail) against Sigmoid32 and Tanh32, value by
// value, on every length around the vector width and over the range where
// the two formulas of tanh meet, the clamps and the edges.
func TestActivationsAVX2(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var xs []float32
	for x := -100.0; x <= 100; x += 0.003 {
		xs = append(xs, float32(x))
	}
	for _, x := range []float32{0.625, -0.625, 0.62499997, 88.376, -88.376, 89, -89, 9, -9, 1e-30, -1e-30, 0,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.MaxFloat32, -math.MaxFloat32} {
		xs = append(xs, x)
	}
	for range 10000 {
		xs = append(xs, float32(rng.NormFloat64()*4))
	}
	const ulp = 1.0 / (1 << 23)
	near := func(got, want float32) bool {
		if got == want {
			return true
		}
		d := math.Abs(float64(got) - float64(want))
		return d <= 4*ulp*math.Abs(float64(want)) || d < 0x1p-124 // tiny values: absolute
	}
	for _, f := range []struct {
		name string
		vec  func(dst, src []float32)
		ref  func(float32) float32
	}{{"Sigmoid", Sigmoid, Sigmoid32}, {"Tanh", Tanh, Tanh32}, {"Exp", Exp, Exp32}} {
		for _, n := range []int{0, 1, 7, 8, 9, 16, 17, len(xs)} {
			src := xs[:n]
			dst := make([]float32, n)
			f.vec(dst, src)
			for i, x := range src {
				if want := f.ref(x); !near(dst[i], want) {
					t.Fatalf("%s(%v) (n=%d, index %d): got %v; want %v (%s32)", f.name, x, n, i, dst[i], want, f.name)
				}
			}
		}
		// In place, and NaN stays NaN.
		buf := []float32{1, -2, float32(math.NaN()), 3, 0.5, -0.5, 4, 5, float32(math.NaN())}
		want := make([]float32, len(buf))
		for i, x := range buf {
			want[i] = f.ref(x)
		}
		f.vec(buf, buf)
		for i := range buf {
			if !near(buf[i], want[i]) && !(buf[i] != buf[i] && want[i] != want[i]) {
				t.Errorf("%s in place, index %d: got %v; want %v", f.name, i, buf[i], want[i])
			}
		}
	}
	t.Logf("AVX2 and FMA: %v", hasAVX2FMA)
}

func BenchmarkActivations(b *testing.B) {
	src := make([]float32, 4096)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range src {
		src[i] = float32(rng.NormFloat64() * 3)
	}
	dst := make([]float32, len(src))
	b.Run("Sigmoid", func(b *testing.B) {
		for b.Loop() {
			Sigmoid(dst, src)
		}
	})
	b.Run("Tanh", func(b *testing.B) {
		for b.Loop() {
			Tanh(dst, src)
		}
	})
	b.Run("Sigmoid32", func(b *testing.B) {
		for b.Loop() {
			for i, x := range src {
				dst[i] = Sigmoid32(x)
			}
		}
	})
}
