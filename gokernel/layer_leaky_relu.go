package gokernel

// leakyReLU is Keras' LeakyReLU layer (negative_slope a ≥ 0, default 0.3):
//
//	y = x if x ≥ 0 else a·x,  dx = dy if x ≥ 0 else a·dy
type leakyReLU struct {
	slope float32
}

func parseLeakyReLU(c *obj) (Layer, error) {
	a, err := c.num("negative_slope", 0.3)
	if err != nil {
		return nil, err
	}
	if a < 0 {
		return nil, c.errf("negative_slope %v must not be negative", a)
	}
	return &leakyReLU{slope: float32(a)}, nil
}

func (l *leakyReLU) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	return [][]int{s}, err
}

func (l *leakyReLU) weights([][]int) []weightSpec { return nil }

func (l *leakyReLU) forward(c *call) {
	y, a := c.y[0], l.slope
	for i, v := range c.x[0][:len(y)] {
		if v < 0 {
			v *= a
		}
		y[i] = v
	}
}

func (l *leakyReLU) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	dy, a := c.dy[0], l.slope
	for i, v := range c.x[0][:len(dx)] {
		if v < 0 {
			dx[i] = a * dy[i]
		} else {
			dx[i] = dy[i]
		}
	}
}

// outputMasks: LeakyReLU passes its input's mask on (Keras' supports_masking).
func (l *leakyReLU) outputMasks([]bool) []int { return passMask(1) }
