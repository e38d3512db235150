package gokernel

// gaussianNoise is Keras' GaussianNoise: in training (stddev σ > 0) it
// adds zero-mean normal noise,
//
//	y = x + σ·z,  z ~ N(0, 1),  dx = dy
//
// and in inference y = x. The noise comes from the call's random stream,
// not the numbers Keras draws.
type gaussianNoise struct {
	stddev  float64
	seedArg int64
	hasSeed bool
}

func parseGaussianNoise(c *obj) (Layer, error) {
	l := &gaussianNoise{}
	var err error
	if l.stddev, err = c.num("stddev", 0); err != nil {
		return nil, err
	}
	if l.stddev < 0 {
		return nil, c.errf("stddev %v must not be negative", l.stddev)
	}
	if l.seedArg, l.hasSeed, err = c.integer("seed"); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *gaussianNoise) seed() (int64, bool) { return l.seedArg, l.hasSeed }

func (l *gaussianNoise) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	return [][]int{s}, err
}

func (l *gaussianNoise) weights([][]int) []weightSpec { return nil }

func (l *gaussianNoise) forward(c *call) {
	if !c.training || l.stddev == 0 {
		c.y[0] = c.x[0]
		return
	}
	noise := c.buf(0, c.n(0))
	if !c.replay {
		for i := range noise {
			noise[i] = float32(l.stddev * c.rng.NormFloat64())
		}
	}
	y := c.y[0]
	for i, v := range c.x[0][:len(y)] {
		y[i] = v + noise[i]
	}
}

func (l *gaussianNoise) backward(c *call) {
	if c.dx[0] != nil {
		copy(c.dx[0], c.dy[0])
	}
}

// outputMasks: GaussianNoise passes its input's mask on (Keras' supports_masking).
func (l *gaussianNoise) outputMasks([]bool) []int { return passMask(1) }
