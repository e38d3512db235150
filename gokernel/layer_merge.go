package gokernel

import (
	"fmt"
	"slices"
)

// merge is one of Keras' elementwise merge layers over n inputs of one
// shape:
//
//	Add       y = Σ x_i                 dx_i = dy
//	Subtract  y = x_0 - x_1             dx_0 = dy, dx_1 = -dy
//	Multiply  y = Π x_i                 dx_i = dy·Π_{j≠i} x_j
//	Average   y = Σ x_i / n             dx_i = dy / n
//	Maximum   y = max(…max(max(x_0, x_1), x_2)…, x_{n-1})
//	Minimum   the same with min
//
// Maximum and Minimum pass the gradient of each pairwise step to the
// larger (smaller) operand and split it in halves on a tie, as JAX's
// maximum does.
type merge struct {
	op mergeOp
}

type mergeOp int

const (
	mergeAdd mergeOp = iota
	mergeSubtract
	mergeMultiply
	mergeAverage
	mergeMaximum
	mergeMinimum
)

func mergeParser(op mergeOp) layerParser {
	return func(c *obj) (Layer, error) { return &merge{op: op}, nil }
}

func (l *merge) outputShapes(in [][]int) ([][]int, error) {
	if len(in) < 1 || (l.op == mergeSubtract && len(in) != 2) {
		want := "at least one input tensor"
		if l.op == mergeSubtract {
			want = "exactly two input tensors"
		}
		return nil, fmt.Errorf("takes %s, got %d", want, len(in))
	}
	for i, s := range in[1:] {
		if !slices.Equal(s, in[0]) {
			return nil, fmt.Errorf("input %d has shape %s but input 0 has %s (inputs of a merge must have one shape; broadcasting between them is not supported)", i+1, shapeStr(s), shapeStr(in[0]))
		}
	}
	return [][]int{in[0]}, nil
}

func (l *merge) weights([][]int) []weightSpec { return nil }

func (l *merge) forward(c *call) {
	y, xs := c.y[0], c.x
	n := len(y)
	switch l.op {
	case mergeAdd, mergeAverage:
		copy(y, xs[0][:n])
		for _, x := range xs[1:] {
			for i, v := range x[:n] {
				y[i] += v
			}
		}
		if l.op == mergeAverage {
			s := 1 / float32(len(xs))
			for i := range y {
				y[i] *= s
			}
		}
	case mergeSubtract:
		a, b := xs[0][:n], xs[1][:n]
		for i := range y {
			y[i] = a[i] - b[i]
		}
	case mergeMultiply:
		copy(y, xs[0][:n])
		for _, x := range xs[1:] {
			for i, v := range x[:n] {
				y[i] *= v
			}
		}
	case mergeMaximum, mergeMinimum:
		copy(y, xs[0][:n])
		for _, x := range xs[1:] {
			for i, v := range x[:n] {
				if (l.op == mergeMaximum) == (v > y[i]) && v != y[i] {
					y[i] = v
				}
			}
		}
	}
}

func (l *merge) backward(c *call) {
	dy, xs := c.dy[0], c.x
	n := len(dy)
	switch l.op {
	case mergeAdd, mergeAverage:
		s := float32(1)
		if l.op == mergeAverage {
			s = 1 / float32(len(xs))
		}
		for _, dx := range c.dx {
			if dx == nil {
				continue
			}
			if s == 1 {
				copy(dx, dy)
				continue
			}
			for i, g := range dy {
				dx[i] = g * s
			}
		}
	case mergeSubtract:
		if c.dx[0] != nil {
			copy(c.dx[0], dy)
		}
		if dx := c.dx[1]; dx != nil {
			for i, g := range dy {
				dx[i] = -g
			}
		}
	case mergeMultiply:
		for k, dx := range c.dx {
			if dx == nil {
				continue
			}
			copy(dx, dy)
			for j, x := range xs {
				if j == k {
					continue
				}
				for i, v := range x[:n] {
					dx[i] *= v
				}
			}
		}
	case mergeMaximum, mergeMinimum:
		l.backwardExtreme(c)
	}
}

// backwardExtreme runs the chain of pairwise maxima (minima) backwards:
// acc_0 = x_0, acc_i = max(acc_{i-1}, x_i); the gradient g of acc_i goes
// to the larger of acc_{i-1} and x_i, half to each on a tie.
func (l *merge) backwardExtreme(c *call) {
	xs, dy := c.x, c.dy[0]
	k := len(xs)
	prefix := c.buf(0, k)
	for i, g := range dy {
		prefix[0] = xs[0][i]
		for j := 1; j < k; j++ {
			a, b := prefix[j-1], xs[j][i]
			if (l.op == mergeMaximum) == (b > a) && a != b {
				a = b
			}
			prefix[j] = a
		}
		for j := k - 1; j >= 1; j-- {
			a, b := prefix[j-1], xs[j][i]
			var ga, gb float32
			switch {
			case a == b:
				ga, gb = g/2, g/2
			case (l.op == mergeMaximum) == (a > b):
				ga = g
			default:
				gb = g
			}
			if c.dx[j] != nil {
				c.dx[j][i] = gb
			}
			g = ga
		}
		if c.dx[0] != nil {
			c.dx[0][i] = g
		}
	}
}

// outputMasks: a merge's output is masked where Keras' Merge.compute_mask
// says: when every input carries a mask, by their OR (a position is data
// if it is data in any input); otherwise not at all.
func (l *merge) outputMasks(masked []bool) []int { return orMask(masked) }

// combineMasks sets the OR of the inputs' masks.
func (l *merge) combineMasks(c *call, in, out [][]bool) {
	o := out[0]
	copy(o, in[0])
	for _, m := range in[1:] {
		for i, v := range m[:len(o)] {
			o[i] = o[i] || v
		}
	}
}
