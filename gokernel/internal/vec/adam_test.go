package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// special values the update must treat as AdamRef does: zeros, the
// smallest normal, subnormals, values whose square is subnormal, huge
// values, infinities and NaN.
var special = []float32{0, float32(math.Copysign(0, -1)), minNormal, -minNormal, 0x1p-130, -0x1p-149, 1e-20, -3e-22,
	1e19, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}

func draw(rng *rand.Rand, n int, specials bool) []float32 {
	s := make([]float32, n)
	for i := range s {
		if specials && rng.IntN(4) == 0 {
			s[i] = special[rng.IntN(len(special))]
			continue
		}
		s[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(9)-6)))
	}
	return s
}

// same reports whether a and b are the same float32 (any NaN equals any
// NaN).
func same(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || a != a && b != b
}

func TestAdam(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 33, 1000} {
		for _, specials := range []bool{false, true} {
			t.Run(fmt.Sprintf("n=%d/specials=%v", n, specials), func(t *testing.T) {
				p, g, m, v := draw(rng, n, specials), draw(rng, n, specials), draw(rng, n, specials), draw(rng, n, false)
				for i := range v {
					v[i] = float32(math.Abs(float64(v[i]))) // a second moment is not negative
				}
				p2, m2, v2 := append([]float32(nil), p...), append([]float32(nil), m...), append([]float32(nil), v...)
				const c1, c2, alpha, eps = 0.1, 0.001, 1e-3, 1e-7
				Adam(p, g, m, v, c1, c2, alpha, eps)
				AdamRef(p2, g, m2, v2, c1, c2, alpha, eps)
				for i := range n {
					if !same(p[i], p2[i]) || !same(m[i], m2[i]) || !same(v[i], v2[i]) {
						t.Fatalf("element %d: got p, m, v = %g, %g, %g; want %g, %g, %g (g %g)", i, p[i], m[i], v[i], p2[i], m2[i], v2[i], g[i])
					}
				}
			})
		}
	}
}

// TestAdamFlushes checks that moments decaying under a zero gradient end
// at zero instead of lingering as subnormals, and that normal moments are
// kept.
func TestAdamFlushes(t *testing.T) {
	const n = 11
	p, g, m, v := make([]float32, n), make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range m {
		m[i], v[i] = 1e-30, 1e-30
	}
	steps := 0
	for ; m[0] != 0 && steps < 1000; steps++ {
		Adam(p, g, m, v, 0.1, 0.1, 1e-3, 1e-7)
		for i := range m {
			if x := math.Float32bits(m[i]); x&0x7f800000 == 0 && x != 0 {
				t.Fatalf("step %d: m[%d] = %g is subnormal", steps, i, m[i])
			}
		}
	}
	// 1e-30 · 0.9^s drops below 2^-126 ≈ 1.18e-38 after 174 steps.
	if steps != 174 {
		t.Errorf("m reached zero after %d steps; want 174", steps)
	}
	for i := range n {
		if v[i] != 0 {
			t.Errorf("v[%d] = %g; want 0", i, v[i])
		}
	}
	if got := FlushSubnormal(minNormal); got != minNormal {
		t.Errorf("FlushSubnormal(2^-126) = %g; want it kept", got)
	}
}

func BenchmarkAdam(b *testing.B) {
	const n = 784 * 128
	rng := rand.New(rand.NewPCG(3, 4))
	p, g, m, v := draw(rng, n, false), draw(rng, n, false), draw(rng, n, false), draw(rng, n, false)
	for i := range v {
		v[i] = float32(math.Abs(float64(v[i])))
	}
	for _, impl := range []struct {
		name string
		f    func(p, g, m, v []float32, c1, c2, alpha, eps float32)
	}{{"fast", Adam}, {"ref", AdamRef}} {
		b.Run(fmt.Sprintf("%s/n=%d", impl.name, n), func(b *testing.B) {
			for b.Loop() {
				impl.f(p, g, m, v, 0.1, 0.001, 1e-3, 1e-7)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/element")
		})
	}
}
