package gokernel

import "math"

// rmsNorm is Keras' RMSNormalization: each group of the n values along
// the axes of the axis argument (a contiguous run; default the last axis)
// is divided by its root mean square and scaled,
//
//	r = 1/√(Σ x_j²/n + ε),  y_j = x_j·r·γ_j
//
// with γ (the weight "scale") of the shape of those axes. Backward, with
// g_j = γ_j dy_j:
//
//	dx_j = r (g_j - x_j r² Σ(g x)/n),  dγ_j += Σ dy_j x_j r
type rmsNorm struct {
	axes    []int
	epsilon float64
}

func parseRMSNorm(c *obj) (Layer, error) {
	l := &rmsNorm{}
	var err error
	if l.axes, _, err = axesArg(c, "axis", []int{-1}); err != nil {
		return nil, err
	}
	if l.epsilon, err = c.num("epsilon", 1e-6); err != nil {
		return nil, err
	}
	if l.epsilon < 0 {
		return nil, c.errf("epsilon %v must not be negative", l.epsilon)
	}
	return l, nil
}

func (l *rmsNorm) outputShapes(in [][]int) ([][]int, error) { return sameRunShape(in, l.axes) }

func (l *rmsNorm) weights(in [][]int) []weightSpec {
	return []weightSpec{{name: "scale", shape: runWeightShape(in[0], l.axes), init: initDefaults["ones"]}}
}

func (l *rmsNorm) forward(c *call) {
	g := runGeometry(c, l.axes)
	n, inner := g.n, g.inner
	inv := c.buf(0, c.rows*g.outer*inner)
	gamma := c.w[0]
	x, y := c.x[0], c.y[0]
	for b := 0; b < c.rows*g.outer; b++ {
		base := b * n * inner
		for i := 0; i < inner; i++ {
			lo, hi := base+i, base+i+(n-1)*inner+1
			xs, ys := x[lo:hi], y[lo:hi]
			var s float64
			for j := 0; j < len(xs); j += inner {
				s += float64(xs[j]) * float64(xs[j])
			}
			r := float32(1 / math.Sqrt(s/float64(n)+l.epsilon))
			inv[b*inner+i] = r
			for j, k := 0, 0; j < len(xs); j, k = j+inner, k+1 {
				ys[j] = xs[j] * r * gamma[k]
			}
		}
	}
}

func (l *rmsNorm) backward(c *call) {
	g := runGeometry(c, l.axes)
	n, inner := g.n, g.inner
	inv := c.buf(0, c.rows*g.outer*inner)
	gamma, dgamma := c.w[0], c.dw[0]
	x, dy, dx := c.x[0], c.dy[0], c.dx[0]
	for b := 0; b < c.rows*g.outer; b++ {
		base := b * n * inner
		for i := 0; i < inner; i++ {
			lo, hi := base+i, base+i+(n-1)*inner+1
			xs, dys := x[lo:hi], dy[lo:hi]
			r := float64(inv[b*inner+i])
			var sgx float64
			for j, k := 0, 0; j < len(xs); j, k = j+inner, k+1 {
				sgx += float64(dys[j]) * float64(gamma[k]) * float64(xs[j])
				if dgamma != nil {
					dgamma[k] += float32(float64(dys[j]) * float64(xs[j]) * r)
				}
			}
			if dx == nil {
				continue
			}
			dxs := dx[lo:hi]
			d := float32(r * r * r * sgx / float64(n))
			r32 := float32(r)
			for j, k := 0, 0; j < len(xs); j, k = j+inner, k+1 {
				dxs[j] = r32*dys[j]*gamma[k] - d*xs[j]
			}
		}
	}
}
