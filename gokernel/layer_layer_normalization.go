package gokernel

import "math"

// layerNorm is Keras' LayerNormalization. Each sample is normalized over
// the axes of the axis argument (a contiguous run of sample axes; the
// default -1 is the last axis): for each group of the n values that share
// their other indices,
//
//	μ = Σ x_j / n,  σ² = Σ (x_j - μ)² / n,  r = 1/√(σ² + ε)
//	x̂_j = (x_j - μ)·r,  y_j = γ_j x̂_j + β_j
//
// with γ (scale) and β (center) of the shape of the normalized axes (γ = 1,
// β = 0 when absent). Backward, with g_j = γ_j dy_j:
//
//	dx_j = r (g_j - Σg/n - x̂_j Σ(g x̂)/n),  dγ_j += Σ dy_j x̂_j,  dβ_j += Σ dy_j
//
// rms_scaling (deprecated in Keras, which still writes it) skips the
// centering of the output and β, as Keras does: y_j = γ_j x_j r with the
// same r (the variance about the mean), and
//
//	dx_j = r (g_j - (x_j - μ)·r·Σ(g x r)/n),  dγ_j += Σ dy_j x_j r
type layerNorm struct {
	axes                []int // Keras axes
	epsilon             float64
	center, scale, rms  bool
	betaInit, gammaInit initSpec
	betaReg, gammaReg   regSpec
}

func parseLayerNorm(c *obj) (Layer, error) {
	l := &layerNorm{}
	var err error
	if l.axes, _, err = axesArg(c, "axis", []int{-1}); err != nil {
		return nil, err
	}
	if l.epsilon, err = c.num("epsilon", 1e-3); err != nil {
		return nil, err
	}
	if l.epsilon < 0 {
		return nil, c.errf("epsilon %v must not be negative", l.epsilon)
	}
	if l.center, err = c.boolean("center", true); err != nil {
		return nil, err
	}
	if l.scale, err = c.boolean("scale", true); err != nil {
		return nil, err
	}
	if l.rms, err = c.boolean("rms_scaling", false); err != nil {
		return nil, err
	}
	if l.betaInit, l.gammaInit, l.betaReg, l.gammaReg, err = affineArgs(c); err != nil {
		return nil, err
	}
	return l, nil
}

// affineArgs reads the initializers and regularizers of a normalization's
// β and γ and refuses their constraints.
func affineArgs(c *obj) (betaInit, gammaInit initSpec, betaReg, gammaReg regSpec, err error) {
	if betaInit, err = parseInit(c, "beta_initializer", "zeros"); err != nil {
		return
	}
	if gammaInit, err = parseInit(c, "gamma_initializer", "ones"); err != nil {
		return
	}
	if betaReg, err = parseReg(c, "beta_regularizer"); err != nil {
		return
	}
	if gammaReg, err = parseReg(c, "gamma_regularizer"); err != nil {
		return
	}
	err = refuse(c, "beta_constraint", "gamma_constraint")
	return
}

func (l *layerNorm) outputShapes(in [][]int) ([][]int, error) { return sameRunShape(in, l.axes) }

// sameRunShape is outputShapes for a layer that keeps its input's shape and
// works along a contiguous run of axes.
func sameRunShape(in [][]int, kerasAxes []int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	axes, err := sampleAxes(kerasAxes, len(s))
	if err != nil {
		return nil, err
	}
	if _, _, _, err := axisRun(s, axes); err != nil {
		return nil, err
	}
	return [][]int{s}, nil
}

func (l *layerNorm) hasGamma() bool { return l.scale || l.rms }
func (l *layerNorm) hasBeta() bool  { return l.center && !l.rms }

func (l *layerNorm) weights(in [][]int) []weightSpec {
	shape := runWeightShape(in[0], l.axes)
	var ws []weightSpec
	if l.hasGamma() {
		ws = append(ws, weightSpec{name: "gamma", shape: shape, init: l.gammaInit, reg: l.gammaReg})
	}
	if l.hasBeta() {
		ws = append(ws, weightSpec{name: "beta", shape: shape, init: l.betaInit, reg: l.betaReg})
	}
	return ws
}

// runGeom is a sample seen as (outer, n, inner) around its normalized
// axes, worked out at a call's first batch.
type runGeom struct{ outer, n, inner int }

// runGeometry returns the call's runGeom for the given Keras axes, made
// at its first batch and kept in c.state.
func runGeometry(c *call, kerasAxes []int) *runGeom {
	if g, ok := c.state.(*runGeom); ok {
		return g
	}
	axes, _ := sampleAxes(kerasAxes, len(c.in[0]))
	o, n, i, _ := axisRun(c.in[0], axes)
	g := &runGeom{o, n, i}
	c.state = g
	return g
}

// runWeightShape is the shape of a weight over the normalized axes.
func runWeightShape(in []int, kerasAxes []int) []int {
	axes, _ := sampleAxes(kerasAxes, len(in))
	var shape []int
	for _, a := range axes {
		shape = append(shape, in[a])
	}
	return shape
}

// params returns γ and β (nil when absent).
func (l *layerNorm) params(c *call) (gamma, beta []float32) {
	k := 0
	if l.hasGamma() {
		gamma = c.w[k]
		k++
	}
	if l.hasBeta() {
		beta = c.w[k]
	}
	return gamma, beta
}

func (l *layerNorm) forward(c *call) {
	g := runGeometry(c, l.axes)
	n, inner := g.n, g.inner
	groups := c.rows * g.outer * inner
	mean, inv := c.buf(0, groups), c.buf(1, groups)
	gamma, beta := l.params(c)
	x, y := c.x[0], c.y[0]
	for b := 0; b < c.rows*g.outer; b++ {
		base := b * n * inner
		for i := 0; i < inner; i++ {
			xs := x[base+i : base+i+(n-1)*inner+1]
			ys := y[base+i : base+i+(n-1)*inner+1]
			var s float64
			for j := 0; j < len(xs); j += inner {
				s += float64(xs[j])
			}
			mu := s / float64(n)
			var v float64
			for j := 0; j < len(xs); j += inner {
				d := float64(xs[j]) - mu
				v += d * d
			}
			r := 1 / math.Sqrt(v/float64(n)+l.epsilon)
			mean[b*inner+i], inv[b*inner+i] = float32(mu), float32(r)
			m32, r32 := float32(mu), float32(r)
			switch {
			case l.rms:
				for j, k := 0, 0; j < len(xs); j, k = j+inner, k+1 {
					v := xs[j] * r32
					if gamma != nil {
						v *= gamma[k]
					}
					ys[j] = v
				}
			default:
				for j, k := 0, 0; j < len(xs); j, k = j+inner, k+1 {
					v := (xs[j] - m32) * r32
					if gamma != nil {
						v *= gamma[k]
					}
					if beta != nil {
						v += beta[k]
					}
					ys[j] = v
				}
			}
		}
	}
}

func (l *layerNorm) backward(c *call) {
	g := runGeometry(c, l.axes)
	n, inner := g.n, g.inner
	groups := c.rows * g.outer * inner
	mean, inv := c.buf(0, groups), c.buf(1, groups)
	gamma, _ := l.params(c)
	var dgamma, dbeta []float32
	k := 0
	if l.hasGamma() {
		dgamma = c.dw[k]
		k++
	}
	if l.hasBeta() {
		dbeta = c.dw[k]
	}
	x, dy, dx := c.x[0], c.dy[0], c.dx[0]
	fn := float64(n)
	for b := 0; b < c.rows*g.outer; b++ {
		base := b * n * inner
		for i := 0; i < inner; i++ {
			lo, hi := base+i, base+i+(n-1)*inner+1
			xs, dys := x[lo:hi], dy[lo:hi]
			mu, r := float64(mean[b*inner+i]), float64(inv[b*inner+i])
			// sg = Σ g, sgx = Σ g·x̂ (rms: Σ g·x·r).
			var sg, sgx float64
			for j, k := 0, 0; j < len(xs); j, k = j+inner, k+1 {
				gj := float64(dys[j])
				if gamma != nil {
					gj *= float64(gamma[k])
				}
				xh := (float64(xs[j]) - mu) * r
				if l.rms {
					xh = float64(xs[j]) * r
				}
				sg += gj
				sgx += gj * xh
				if dgamma != nil {
					dgamma[k] += float32(float64(dys[j]) * xh)
				}
				if dbeta != nil {
					dbeta[k] += dys[j]
				}
			}
			if dx == nil {
				continue
			}
			dxs := dx[lo:hi]
			for j, k := 0, 0; j < len(xs); j, k = j+inner, k+1 {
				gj := float64(dys[j])
				if gamma != nil {
					gj *= float64(gamma[k])
				}
				xh := (float64(xs[j]) - mu) * r
				if l.rms {
					dxs[j] = float32(r * (gj - xh*sgx/fn))
				} else {
					dxs[j] = float32(r * (gj - sg/fn - xh*sgx/fn))
				}
			}
		}
	}
}

// outputMasks: LayerNormalization passes its input's mask on (Keras' supports_masking).
func (l *layerNorm) outputMasks([]bool) []int { return passMask(1) }
