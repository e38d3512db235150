package gokernel

import "math"

// reluLayer is Keras' ReLU layer, with threshold θ ≥ 0, negative_slope
// a ≥ 0 and an optional max_value m ≥ 0:
//
//	y = min(x, m)     if x > θ
//	y = a·(x - θ)     if x ≤ θ
//	dx = dy·[θ < x < m] + a·dy·[x < θ]
//
// With the defaults (θ 0, a 0, no m) it is relu.
type reluLayer struct {
	maxValue         float32
	hasMax           bool
	slope, threshold float32
}

func parseReLULayer(c *obj) (Layer, error) {
	l := &reluLayer{}
	if r := c.get("max_value"); !isNull(r) {
		c.read["max_value"] = false
		m, err := c.num("max_value", 0)
		if err != nil {
			return nil, err
		}
		if m < 0 {
			return nil, c.errf("max_value %v must not be negative", m)
		}
		l.maxValue, l.hasMax = float32(m), true
	}
	a, err := c.num("negative_slope", 0)
	if err != nil {
		return nil, err
	}
	t, err := c.num("threshold", 0)
	if err != nil {
		return nil, err
	}
	if a < 0 || t < 0 {
		return nil, c.errf("negative_slope %v and threshold %v must not be negative", a, t)
	}
	l.slope, l.threshold = float32(a), float32(t)
	return l, nil
}

func (l *reluLayer) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	return [][]int{s}, err
}

func (l *reluLayer) weights([][]int) []weightSpec { return nil }

func (l *reluLayer) forward(c *call) {
	m := float32(math.Inf(1))
	if l.hasMax {
		m = l.maxValue
	}
	t, a := l.threshold, l.slope
	y := c.y[0]
	for i, v := range c.x[0][:len(y)] {
		if v > t {
			y[i] = min(v, m)
		} else {
			y[i] = a * (v - t)
		}
	}
}

func (l *reluLayer) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	m := float32(math.Inf(1))
	if l.hasMax {
		m = l.maxValue
	}
	t, a := l.threshold, l.slope
	dy := c.dy[0]
	for i, v := range c.x[0][:len(dx)] {
		switch {
		case v > t && v < m:
			dx[i] = dy[i]
		case v < t:
			dx[i] = a * dy[i]
		default:
			dx[i] = 0
		}
	}
}

// outputMasks: ReLU passes its input's mask on (Keras' supports_masking).
func (l *reluLayer) outputMasks([]bool) []int { return passMask(1) }
