package gokernel

import "math"

// eluLayer is Keras' ELU layer (alpha α, default 1; Keras 3.15 does not
// write alpha in the config, so a saved layer has α = 1):
//
//	y = x if x > 0 else α(e^x - 1),  dx = dy if x > 0 else α e^x dy
type eluLayer struct {
	alpha float64
}

func parseELULayer(c *obj) (Layer, error) {
	a, err := c.num("alpha", 1)
	return &eluLayer{alpha: a}, err
}

func (l *eluLayer) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	return [][]int{s}, err
}

func (l *eluLayer) weights([][]int) []weightSpec { return nil }

func (l *eluLayer) forward(c *call) {
	y := c.y[0]
	for i, v := range c.x[0][:len(y)] {
		if v <= 0 {
			v = float32(l.alpha * math.Expm1(float64(v)))
		}
		y[i] = v
	}
}

func (l *eluLayer) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	dy := c.dy[0]
	for i, v := range c.x[0][:len(dx)] {
		if v > 0 {
			dx[i] = dy[i]
		} else {
			dx[i] = float32(l.alpha*math.Exp(float64(v))) * dy[i]
		}
	}
}

// outputMasks: ELU passes its input's mask on (Keras' supports_masking).
func (l *eluLayer) outputMasks([]bool) []int { return passMask(1) }
