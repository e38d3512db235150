package gokernel

import "math"

// gaussianDropout is Keras' GaussianDropout: in training (rate p > 0) it
// multiplies by normal noise of mean 1,
//
//	y = x⊙m,  m = 1 + √(p/(1-p))·z,  z ~ N(0, 1),  dx = dy⊙m
//
// and in inference y = x. The noise comes from the call's random stream,
// not the numbers Keras draws.
type gaussianDropout struct {
	rate    float64
	seedArg int64
	hasSeed bool
}

func parseGaussianDropout(c *obj) (Layer, error) {
	l := &gaussianDropout{}
	var err error
	if l.rate, err = c.num("rate", 0); err != nil {
		return nil, err
	}
	if l.rate < 0 || l.rate >= 1 {
		return nil, c.errf("rate %v must be in [0, 1)", l.rate)
	}
	if l.seedArg, l.hasSeed, err = c.integer("seed"); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *gaussianDropout) seed() (int64, bool) { return l.seedArg, l.hasSeed }

func (l *gaussianDropout) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	return [][]int{s}, err
}

func (l *gaussianDropout) weights([][]int) []weightSpec { return nil }

func (l *gaussianDropout) active(c *call) bool { return c.training && l.rate > 0 }

func (l *gaussianDropout) forward(c *call) {
	if !l.active(c) {
		c.y[0] = c.x[0]
		return
	}
	m := c.buf(0, c.n(0))
	if !c.replay {
		sd := math.Sqrt(l.rate / (1 - l.rate))
		for i := range m {
			m[i] = float32(1 + sd*c.rng.NormFloat64())
		}
	}
	y := c.y[0]
	for i, v := range c.x[0][:len(y)] {
		y[i] = v * m[i]
	}
}

func (l *gaussianDropout) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	if !l.active(c) {
		copy(dx, c.dy[0])
		return
	}
	m := c.buf(0, c.n(0))
	for i, v := range c.dy[0] {
		dx[i] = v * m[i]
	}
}

// outputMasks: GaussianDropout passes its input's mask on (Keras' supports_masking).
func (l *gaussianDropout) outputMasks([]bool) []int { return passMask(1) }
