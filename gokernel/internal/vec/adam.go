package vec

import "math"

// Adam applies one Adam step to p with gradient g and moments m and v, all
// of the same length (see the package doc for the math; c1 = 1−β₁,
// c2 = 1−β₂, alpha the step's bias-corrected learning rate, eps ε). It
// gives the same results as AdamRef.
func Adam(p, g, m, v []float32, c1, c2, alpha, eps float32) {
	n := len(p)
	g, m, v = g[:n], m[:n], v[:n]
	done := 0
	if hasAVX2 && n >= 8 {
		done = n &^ 7
		consts := [6]float32{c1, c2, alpha, eps, math.Float32frombits(0x7fffffff), minNormal}
		adamAVX2(&p[0], &g[0], &m[0], &v[0], done, &consts)
	}
	AdamRef(p[done:], g[done:], m[done:], v[done:], c1, c2, alpha, eps)
}

// AdamRef is the plain loop Adam is tested against.
func AdamRef(p, g, m, v []float32, c1, c2, alpha, eps float32) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	for j := range p {
		gj := g[j]
		mj := FlushSubnormal(m[j] + (gj-m[j])*c1)
		vj := FlushSubnormal(v[j] + (gj*gj-v[j])*c2)
		m[j], v[j] = mj, vj
		p[j] -= mj * alpha / (float32(math.Sqrt(float64(vj))) + eps)
	}
}

// minNormal is the smallest normal float32, 2⁻¹²⁶.
const minNormal = 0x1p-126

// FlushSubnormal returns x, or +0 when x is subnormal (or ±0): what a CPU in
// flush-to-zero mode stores.
func FlushSubnormal(x float32) float32 {
	if math.Float32bits(x)&0x7f800000 == 0 {
		return 0
	}
	return x
}
