package gokernel

import "math"

// unitNorm is Keras' UnitNormalization: each group of values along the
// axes of the axis argument (a contiguous run; default the last axis) is
// scaled to unit L2 norm,
//
//	s = Σ x_j²,  r = min(1/√s, 1/ε),  y_j = x_j·r   (ε = 1e-12)
//
// and backward
//
//	dx_j = r (dy_j - y_j Σ dy·y)   (r = 1/√s)
//	dx_j = r dy_j                   (r clamped to 1/ε: a constant)
type unitNorm struct {
	axes []int
}

// unitNormEpsilon is the ε of Keras' ops.normalize in UnitNormalization.
const unitNormEpsilon = 1e-12

func parseUnitNorm(c *obj) (Layer, error) {
	axes, _, err := axesArg(c, "axis", []int{-1})
	return &unitNorm{axes: axes}, err
}

func (l *unitNorm) outputShapes(in [][]int) ([][]int, error) { return sameRunShape(in, l.axes) }

func (l *unitNorm) weights([][]int) []weightSpec { return nil }

func (l *unitNorm) forward(c *call) {
	g := runGeometry(c, l.axes)
	n, inner := g.n, g.inner
	inv := c.buf(0, c.rows*g.outer*inner)
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
			r := float32(math.Min(1/math.Sqrt(s), 1/unitNormEpsilon))
			inv[b*inner+i] = r
			for j := 0; j < len(xs); j += inner {
				ys[j] = xs[j] * r
			}
		}
	}
}

func (l *unitNorm) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	g := runGeometry(c, l.axes)
	n, inner := g.n, g.inner
	inv := c.buf(0, c.rows*g.outer*inner)
	y, dy := c.y[0], c.dy[0]
	for b := 0; b < c.rows*g.outer; b++ {
		base := b * n * inner
		for i := 0; i < inner; i++ {
			lo, hi := base+i, base+i+(n-1)*inner+1
			ys, dys, dxs := y[lo:hi], dy[lo:hi], dx[lo:hi]
			r := inv[b*inner+i]
			if r >= 1/unitNormEpsilon {
				for j := 0; j < len(ys); j += inner {
					dxs[j] = dys[j] * r
				}
				continue
			}
			var s float64
			for j := 0; j < len(ys); j += inner {
				s += float64(ys[j]) * float64(dys[j])
			}
			s32 := float32(s)
			for j := 0; j < len(ys); j += inner {
				dxs[j] = r * (dys[j] - ys[j]*s32)
			}
		}
	}
}

// outputMasks: UnitNormalization passes its input's mask on (Keras' supports_masking).
func (l *unitNorm) outputMasks([]bool) []int { return passMask(1) }
