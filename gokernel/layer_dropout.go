package gokernel

import "math/rand/v2"

// dropout is Keras' Dropout. In training with rate p > 0 it keeps each
// value with probability 1-p and scales it by 1/(1-p) (inverted dropout):
//
//	y = x⊙mask,  mask_i = 0 (probability p) or 1/(1-p),  dx = dy⊙mask
//
// so inference needs no rescaling: there y = x. The masks come from the
// call's random stream (the model's seed, the layer's seed argument), not
// the numbers Keras draws.
type dropout struct {
	rate    float64
	seedArg int64
	hasSeed bool
}

func parseDropout(c *obj) (Layer, error) {
	l := &dropout{}
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
	return l, refuse(c, "noise_shape")
}

func (l *dropout) seed() (int64, bool) { return l.seedArg, l.hasSeed }

func (l *dropout) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	return [][]int{s}, err
}

func (l *dropout) weights([][]int) []weightSpec { return nil }

// active reports whether the mask applies in this pass.
func (l *dropout) active(c *call) bool { return c.training && l.rate > 0 }

func (l *dropout) forward(c *call) {
	if !l.active(c) {
		c.y[0] = c.x[0]
		return
	}
	n := c.n(0)
	mask := c.buf(0, n)
	if !c.replay {
		drawMask(mask, l.rate, c.rng)
	}
	y := c.y[0]
	for i, v := range c.x[0][:n] {
		y[i] = v * mask[i]
	}
}

func (l *dropout) backward(c *call) {
	if c.dx[0] == nil {
		return
	}
	if !l.active(c) {
		copy(c.dx[0], c.dy[0])
		return
	}
	mask := c.buf(0, c.n(0))
	for i, v := range c.dy[0] {
		c.dx[0][i] = v * mask[i]
	}
}

// drawMask sets each mask value to 0 (probability rate) or 1/(1-rate).
func drawMask(mask []float32, rate float64, rng *rand.Rand) {
	keep := float32(1 / (1 - rate))
	threshold := uint64(rate * (1 << 53))
	for i := range mask {
		if rng.Uint64()>>11 < threshold {
			mask[i] = 0
		} else {
			mask[i] = keep
		}
	}
}
