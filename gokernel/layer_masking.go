package gokernel

import "math"

// masking is Keras' Masking: a position (the last axis being features)
// whose features all equal mask_value is masked, and its features are set
// to zero:
//
//	keep = any_j(x[…, j] ≠ mask_value),  y = keep ? x : 0,  dx = keep ? dy : 0
//
// The output carries keep as its mask.
type masking struct {
	value float32
}

func parseMasking(c *obj) (Layer, error) {
	v, err := c.num("mask_value", 0)
	if err != nil {
		return nil, err
	}
	if math.IsNaN(v) {
		// NaN ≠ NaN: Keras would mask nothing. Say so rather than surprise.
		return nil, c.errf("mask_value NaN is not supported")
	}
	return &masking{value: float32(v)}, nil
}

func (l *masking) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if len(s) == 0 {
		return nil, errorf("Masking needs an input with a feature axis")
	}
	return [][]int{s}, nil
}

func (l *masking) weights([][]int) []weightSpec { return nil }

func (l *masking) outputMasks([]bool) []int { return []int{maskComputed} }

// keep returns the mask: computed into c.maskOut[0] (always planned).
func (l *masking) keep(c *call) []bool { return c.maskOut[0] }

func (l *masking) forward(c *call) {
	f := lastDim(c.in[0])
	keep := l.keep(c)
	x, y := c.x[0], c.y[0]
	for p := range keep {
		xr, yr := x[p*f:(p+1)*f], y[p*f:(p+1)*f]
		k := false
		for _, v := range xr {
			if v != l.value {
				k = true
				break
			}
		}
		keep[p] = k
		if k {
			copy(yr, xr)
		} else {
			clear(yr)
		}
	}
}

func (l *masking) backward(c *call) {
	if c.dx[0] == nil {
		return
	}
	f := lastDim(c.in[0])
	for p, k := range l.keep(c) {
		dr := c.dx[0][p*f : (p+1)*f]
		if k {
			copy(dr, c.dy[0][p*f:(p+1)*f])
		} else {
			clear(dr)
		}
	}
}
