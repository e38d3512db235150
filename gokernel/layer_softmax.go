package gokernel

import "math"

// softmaxLayer is Keras' Softmax layer over the axes of its axis argument
// (an integer or a list making a contiguous run; default -1): for each
// group of values along them,
//
//	y_j = e^(x_j - m) / Σ_k e^(x_k - m)   (m the group's maximum)
//	dx_j = y_j (dy_j - Σ_k dy_k y_k)
type softmaxLayer struct {
	axes []int
}

func parseSoftmaxLayer(c *obj) (Layer, error) {
	axes, _, err := axesArg(c, "axis", []int{-1})
	return &softmaxLayer{axes: axes}, err
}

func (l *softmaxLayer) outputShapes(in [][]int) ([][]int, error) { return sameRunShape(in, l.axes) }

func (l *softmaxLayer) weights([][]int) []weightSpec { return nil }

func (l *softmaxLayer) forward(c *call) {
	g := runGeometry(c, l.axes)
	x, y := c.x[0][:c.n(0)], c.y[0]
	if g.inner == 1 {
		softmaxRows(x, y, g.n)
		return
	}
	n, inner := g.n, g.inner
	for b := 0; b < c.rows*g.outer; b++ {
		base := b * n * inner
		for i := 0; i < inner; i++ {
			lo, hi := base+i, base+i+(n-1)*inner+1
			xs, ys := x[lo:hi], y[lo:hi]
			m := xs[0]
			for j := 0; j < len(xs); j += inner {
				m = max(m, xs[j])
			}
			var s float64
			for j := 0; j < len(xs); j += inner {
				e := math.Exp(float64(xs[j] - m))
				ys[j] = float32(e)
				s += e
			}
			inv := 1 / s
			for j := 0; j < len(xs); j += inner {
				ys[j] = float32(float64(ys[j]) * inv)
			}
		}
	}
}

func (l *softmaxLayer) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	g := runGeometry(c, l.axes)
	y, dy := c.y[0], c.dy[0]
	if g.inner == 1 {
		actSoftmax.backward(nil, y, dy, dx, g.n)
		return
	}
	n, inner := g.n, g.inner
	for b := 0; b < c.rows*g.outer; b++ {
		base := b * n * inner
		for i := 0; i < inner; i++ {
			lo, hi := base+i, base+i+(n-1)*inner+1
			ys, dys, dxs := y[lo:hi], dy[lo:hi], dx[lo:hi]
			var dot float64
			for j := 0; j < len(ys); j += inner {
				dot += float64(ys[j]) * float64(dys[j])
			}
			for j := 0; j < len(ys); j += inner {
				dxs[j] = float32(float64(ys[j]) * (float64(dys[j]) - dot))
			}
		}
	}
}

// outputMasks: Softmax passes its input's mask on (Keras' supports_masking).
func (l *softmaxLayer) outputMasks([]bool) []int { return passMask(1) }

// checkMasks refuses a masked input: Keras' Softmax broadcasts the mask it
// gets (one value per position, the input's shape without its last axis)
// against the whole input from the last axis, which fails, or with equal
// sizes masks the wrong values.
func (l *softmaxLayer) checkMasks(masked []bool) error {
	if masked[0] {
		return errorf("a masked input (from Embedding(mask_zero=True) or Masking) to Softmax is not supported: Keras cannot broadcast the mask either")
	}
	return nil
}
