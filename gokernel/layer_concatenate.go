package gokernel

import "fmt"

// concatenate is Keras' Concatenate: the inputs joined along axis (any
// axis but the batch axis; negative counts from the end). With the
// samples viewed as (outer, d_i·inner) blocks, where outer is the product
// of the axes before axis and inner of those after, the output's block
// row o is the inputs' block rows o one after the other; the backward
// pass cuts dy the same way.
type concatenate struct {
	axis int // as Keras writes it, counting the batch axis
}

func parseConcatenate(c *obj) (Layer, error) {
	a, ok, err := c.integer("axis")
	if err != nil {
		return nil, err
	}
	if !ok {
		a = -1
	}
	if a == 0 {
		return nil, c.errf("axis 0 (the batch axis) is not supported")
	}
	return &concatenate{axis: int(a)}, nil
}

// sampleAxis is the axis within a sample of rank r.
func (l *concatenate) sampleAxis(r int) (int, error) {
	a := l.axis
	if a < 0 {
		a += r + 1
	}
	if a < 1 || a > r {
		return 0, fmt.Errorf("axis %d is out of range for inputs of rank %d", l.axis, r+1)
	}
	return a - 1, nil
}

func (l *concatenate) outputShapes(in [][]int) ([][]int, error) {
	if len(in) < 1 {
		return nil, fmt.Errorf("takes at least one input tensor")
	}
	a, err := l.sampleAxis(len(in[0]))
	if err != nil {
		return nil, err
	}
	out := append([]int(nil), in[0]...)
	for i, s := range in[1:] {
		ok := len(s) == len(out)
		for j := 0; ok && j < len(s); j++ {
			ok = j == a || s[j] == out[j]
		}
		if !ok {
			return nil, fmt.Errorf("input %d has shape %s, which does not fit input 0's %s but on axis %d", i+1, shapeStr(s), shapeStr(in[0]), l.axis)
		}
		out[a] += s[a]
	}
	return [][]int{out}, nil
}

func (l *concatenate) weights([][]int) []weightSpec { return nil }

func (l *concatenate) forward(c *call) {
	a, _ := l.sampleAxis(len(c.in[0]))
	outer := c.rows * prod(c.in[0][:a])
	w := prod(c.out[0][a:])
	off := 0
	for i, x := range c.x {
		wi := prod(c.in[i][a:])
		for o := 0; o < outer; o++ {
			copy(c.y[0][o*w+off:o*w+off+wi], x[o*wi:(o+1)*wi])
		}
		off += wi
	}
}

func (l *concatenate) backward(c *call) {
	a, _ := l.sampleAxis(len(c.in[0]))
	outer := c.rows * prod(c.in[0][:a])
	w := prod(c.out[0][a:])
	off := 0
	for i, dx := range c.dx {
		wi := prod(c.in[i][a:])
		if dx != nil {
			for o := 0; o < outer; o++ {
				copy(dx[o*wi:(o+1)*wi], c.dy[0][o*w+off:o*w+off+wi])
			}
		}
		off += wi
	}
}

// outputMasks: when any input carries a mask, Concatenate computes one
// (Keras' Concatenate.compute_mask): each input's mask, all true for an
// unmasked input, broadcast over its last axis, joined along the axis and
// reduced by OR over the last axis. Joined along the last axis, a
// position is data if it is in any input (all of them, if one input is
// unmasked); along another axis, each input's part keeps its own mask.
func (l *concatenate) outputMasks(masked []bool) []int {
	for _, m := range masked {
		if m {
			return []int{maskComputed}
		}
	}
	return []int{maskNone}
}

// combineMasks sets the mask of the output.
func (l *concatenate) combineMasks(c *call, in, outs [][]bool) {
	out := outs[0]
	r := len(c.in[0])
	a, _ := l.sampleAxis(r)
	if a == r-1 {
		clear(out)
		for _, m := range in {
			if m == nil {
				for i := range out {
					out[i] = true
				}
				return
			}
			for i, v := range m[:len(out)] {
				out[i] = out[i] || v
			}
		}
		return
	}
	outer := c.rows * prod(c.in[0][:a])
	w := prod(c.out[0][a : r-1])
	off := 0
	for i, m := range in {
		wi := prod(c.in[i][a : r-1])
		for o := 0; o < outer; o++ {
			dst := out[o*w+off : o*w+off+wi]
			if m == nil {
				for j := range dst {
					dst[j] = true
				}
			} else {
				copy(dst, m[o*wi:(o+1)*wi])
			}
		}
		off += wi
	}
}
