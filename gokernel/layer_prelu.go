package gokernel

import "slices"

// preluLayer is Keras' PReLU: a leaky relu whose slopes α are weights,
// one per value of a sample, or shared along the axes of shared_axes
// (Keras counts them from 1, the batch axis 0):
//
//	y = x if x > 0 else α·x
//	dx = dy if x > 0 else α·dy,  dα += Σ dy·x over the values x ≤ 0 sharing α
//
// α ("alpha") has the sample's shape with the shared axes of size 1; its
// initializer (default zeros) and regularizer are honoured, its
// constraint refused.
type preluLayer struct {
	shared    []int // 0-based sample axes
	alphaInit initSpec
	alphaReg  regSpec
}

func parsePReLU(c *obj) (Layer, error) {
	l := &preluLayer{}
	var err error
	if l.alphaInit, err = parseInit(c, "alpha_initializer", "zeros"); err != nil {
		return nil, err
	}
	if l.alphaReg, err = parseReg(c, "alpha_regularizer"); err != nil {
		return nil, err
	}
	if err := refuse(c, "alpha_constraint"); err != nil {
		return nil, err
	}
	if r := c.get("shared_axes"); !isNull(r) {
		c.read["shared_axes"] = false
		axes, _, err := axesArg(c, "shared_axes", nil)
		if err != nil {
			return nil, err
		}
		for _, a := range axes {
			if a < 1 {
				return nil, c.errf("shared_axes %s: want axes counted from 1 (the batch axis is 0)", short(r))
			}
			l.shared = append(l.shared, a-1)
		}
	}
	return l, nil
}

func (l *preluLayer) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	for _, a := range l.shared {
		if a >= len(s) {
			return nil, errorf("shared axis %d is out of range for an input of rank %d", a+1, len(s)+1)
		}
	}
	return [][]int{s}, nil
}

func (l *preluLayer) alphaShape(s []int) []int {
	p := slices.Clone(s)
	for _, a := range l.shared {
		p[a] = 1
	}
	return p
}

func (l *preluLayer) weights(in [][]int) []weightSpec {
	return []weightSpec{{name: "alpha", shape: l.alphaShape(in[0]), init: l.alphaInit, reg: l.alphaReg}}
}

// index returns, per value of a sample, the index of its α (made at the
// call's first batch).
func (l *preluLayer) index(c *call) []int32 {
	if idx, ok := c.state.([]int32); ok {
		return idx
	}
	idx := make([]int32, prod(c.in[0]))
	broadcastIndex(idx, c.in[0], l.alphaShape(c.in[0]))
	c.state = idx
	return idx
}

func (l *preluLayer) forward(c *call) {
	idx := l.index(c)
	alpha, p := c.w[0], len(idx)
	x, y := c.x[0], c.y[0]
	for r := 0; r < c.rows; r++ {
		xs, ys := x[r*p:(r+1)*p], y[r*p:(r+1)*p]
		for i, v := range xs {
			if v <= 0 {
				v *= alpha[idx[i]]
			}
			ys[i] = v
		}
	}
}

func (l *preluLayer) backward(c *call) {
	idx := l.index(c)
	alpha, dalpha, p := c.w[0], c.dw[0], len(idx)
	x, dy, dx := c.x[0], c.dy[0], c.dx[0]
	for r := 0; r < c.rows; r++ {
		xs, dys := x[r*p:(r+1)*p], dy[r*p:(r+1)*p]
		if dalpha != nil {
			for i, v := range xs {
				if v < 0 {
					dalpha[idx[i]] += dys[i] * v
				}
			}
		}
		if dx == nil {
			continue
		}
		dxs := dx[r*p : (r+1)*p]
		for i, v := range xs {
			switch {
			case v > 0:
				dxs[i] = dys[i]
			case v < 0:
				dxs[i] = alpha[idx[i]] * dys[i]
			default:
				dxs[i] = 0
			}
		}
	}
}

// outputMasks: PReLU passes its input's mask on (Keras' supports_masking).
func (l *preluLayer) outputMasks([]bool) []int { return passMask(1) }
