package gokernel

import (
	"math"
	"slices"
)

// normalization is Keras' preprocessing Normalization: with a mean and a
// variance per position of the kept axes (axis; default -1, the last;
// none for one mean and variance over everything),
//
//	y = (x - mean) / max(√variance, ε)        dx = dy / max(√variance, ε)
//	invert: y = mean + x·max(√variance, ε)    dx = dy·max(√variance, ε)
//
// with ε = 1e-7. The mean and variance are either in the config (mean,
// variance: numbers or arrays broadcast as Keras broadcasts them) or, when
// those are null, the adapted statistics Keras keeps as non-trainable
// weights: mean and variance of the kept axes' shape, then count (a
// scalar Keras does not use in the math).
type normalization struct {
	axes                []int // Keras axes kept
	invert              bool
	mean, variance      []float32 // from the config; nil: weights
	meanShape, varShape []int
}

// normalizationEpsilon is Keras' backend epsilon, the floor of the
// standard deviation.
const normalizationEpsilon = 1e-7

func parseNormalization(c *obj) (Layer, error) {
	l := &normalization{}
	var err error
	if c.has("axis") && isNull(c.get("axis")) {
		l.axes = []int{} // axis null or []: one statistic for everything
	} else if l.axes, _, err = axesArg(c, "axis", []int{-1}); err != nil {
		return nil, err
	}
	if l.axes == nil {
		l.axes = []int{}
	}
	if l.invert, err = c.boolean("invert", false); err != nil {
		return nil, err
	}
	var hasM, hasV bool
	if l.mean, l.meanShape, hasM, err = arrayArg(c, "mean"); err != nil {
		return nil, err
	}
	if l.variance, l.varShape, hasV, err = arrayArg(c, "variance"); err != nil {
		return nil, err
	}
	if hasM != hasV || (hasM && !slices.Equal(l.meanShape, l.varShape)) {
		return nil, c.errf("mean and variance must both be given, of one shape (got shapes %v and %v)", l.meanShape, l.varShape)
	}
	if hasM && len(l.meanShape) > len(l.axes) {
		return nil, c.errf("mean of shape %v has more axes than axis %v keeps", l.meanShape, l.axes)
	}
	return l, nil
}

// keep returns the sample axes kept.
func (l *normalization) keep(s []int) ([]int, error) { return sampleAxes(l.axes, len(s)) }

// paramShape returns the shape, of the sample's rank, that the mean and
// variance broadcast from.
func (l *normalization) paramShape(s []int) ([]int, error) {
	keep, err := l.keep(s)
	if err != nil {
		return nil, err
	}
	p := make([]int, len(s))
	for i := range p {
		p[i] = 1
	}
	if l.mean == nil {
		for _, a := range keep {
			p[a] = s[a]
		}
		return p, nil
	}
	// A config array's axes align with the last kept axes.
	for i := 1; i <= len(l.meanShape); i++ {
		d := l.meanShape[len(l.meanShape)-i]
		a := keep[len(keep)-i]
		if d != 1 && d != s[a] {
			return nil, errorf("mean of shape %v does not fit axis %d of size %d", l.meanShape, a+1, s[a])
		}
		p[a] = d
	}
	return p, nil
}

func (l *normalization) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if _, err := l.paramShape(s); err != nil {
		return nil, err
	}
	return [][]int{s}, nil
}

func (l *normalization) weights(in [][]int) []weightSpec {
	if l.mean != nil {
		return nil
	}
	keep, _ := l.keep(in[0])
	shape := []int{}
	for _, a := range keep {
		shape = append(shape, in[0][a])
	}
	return []weightSpec{
		{name: "mean", shape: shape, init: initDefaults["zeros"], state: true},
		{name: "variance", shape: slices.Clone(shape), init: initDefaults["ones"], state: true},
		{name: "count", shape: []int{}, init: initDefaults["zeros"], state: true},
	}
}

// index returns, per value of a sample, the index of its mean and
// variance (made at the call's first batch).
func (l *normalization) index(c *call) []int32 {
	if idx, ok := c.state.([]int32); ok {
		return idx
	}
	p, _ := l.paramShape(c.in[0])
	idx := make([]int32, prod(c.in[0]))
	broadcastIndex(idx, c.in[0], p)
	c.state = idx
	return idx
}

// stats fills mean and std (max(√variance, ε)) per value of a sample, from
// the config or the weights as they are now.
func (l *normalization) stats(c *call) (mean, std []float32) {
	idx := l.index(c)
	mean, std = c.buf(0, len(idx)), c.buf(1, len(idx))
	m, v := l.mean, l.variance
	if m == nil {
		m, v = c.w[0], c.w[1]
	}
	for i, j := range idx {
		mean[i] = m[j]
		std[i] = max(float32(math.Sqrt(float64(v[j]))), normalizationEpsilon)
	}
	return mean, std
}

func (l *normalization) forward(c *call) {
	mean, std := l.stats(c)
	n := len(mean)
	x, y := c.x[0], c.y[0]
	for r := 0; r < c.rows; r++ {
		xs, ys := x[r*n:(r+1)*n], y[r*n:(r+1)*n]
		if l.invert {
			for i, v := range xs {
				ys[i] = mean[i] + v*std[i]
			}
			continue
		}
		for i, v := range xs {
			ys[i] = (v - mean[i]) / std[i]
		}
	}
}

func (l *normalization) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	std := c.buf(1, len(l.index(c)))
	n := len(std)
	dy := c.dy[0]
	for r := 0; r < c.rows; r++ {
		ds, dxs := dy[r*n:(r+1)*n], dx[r*n:(r+1)*n]
		if l.invert {
			for i, v := range ds {
				dxs[i] = v * std[i]
			}
			continue
		}
		for i, v := range ds {
			dxs[i] = v / std[i]
		}
	}
}

// outputMasks: Normalization passes its input's mask on (Keras' supports_masking).
func (l *normalization) outputMasks([]bool) []int { return passMask(1) }
