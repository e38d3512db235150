package gokernel

import (
	"encoding/json"
	"slices"
)

// permute is Keras' Permute: the axes of each sample are reordered, axis
// i of the output being axis dims[i] of the input (Keras counts from 1,
// the batch axis 0 staying first):
//
//	y[i_1, ..., i_k] = x[j],  j_{dims[m]} = i_m
//
// computed as a gather through a table of source positions (made at the
// call's first batch), and backward as the matching scatter.
type permute struct {
	dims []int // 0-based sample axes
}

func parsePermute(c *obj) (Layer, error) {
	r := c.get("dims")
	var dims []float64
	if err := json.Unmarshal(r, &dims); err != nil || len(dims) == 0 {
		return nil, c.errf("dims: want a list of integers, got %s", short(r))
	}
	l := &permute{}
	bad := c.errf("dims %s: want a permutation of 1 ... %d", short(r), len(dims))
	for _, d := range dims {
		if d != float64(int(d)) {
			return nil, bad
		}
		l.dims = append(l.dims, int(d)-1)
	}
	for i, d := range slices.Sorted(slices.Values(l.dims)) {
		if d != i {
			return nil, bad
		}
	}
	return l, nil
}

func (l *permute) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if len(s) != len(l.dims) {
		return nil, errorf("dims %v permute %d axes but the input has %d", kerasAxes(l.dims), len(l.dims), len(s))
	}
	out := make([]int, len(s))
	for i, d := range l.dims {
		out[i] = s[d]
	}
	return [][]int{out}, nil
}

func (l *permute) weights([][]int) []weightSpec { return nil }

// table returns, per output position of a sample, its input position.
func (l *permute) table(c *call) []int32 {
	if t, ok := c.state.([]int32); ok {
		return t
	}
	s := c.in[0]
	instride := make([]int, len(s))
	st := 1
	for d := len(s) - 1; d >= 0; d-- {
		instride[d] = st
		st *= s[d]
	}
	out := c.out[0]
	// stride[m]: the input step for a step along output axis m.
	stride := make([]int, len(out))
	for m, d := range l.dims {
		stride[m] = instride[d]
	}
	t := make([]int32, prod(out))
	pos := make([]int, len(out))
	cur := 0
	for i := range t {
		t[i] = int32(cur)
		for m := len(out) - 1; m >= 0; m-- {
			pos[m]++
			cur += stride[m]
			if pos[m] < out[m] {
				break
			}
			cur -= stride[m] * pos[m]
			pos[m] = 0
		}
	}
	c.state = t
	return t
}

func (l *permute) forward(c *call) {
	t := l.table(c)
	p := len(t)
	x, y := c.x[0], c.y[0]
	for r := 0; r < c.rows; r++ {
		xs, ys := x[r*p:(r+1)*p], y[r*p:(r+1)*p]
		for i, j := range t {
			ys[i] = xs[j]
		}
	}
}

func (l *permute) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	t := l.table(c)
	p := len(t)
	dy := c.dy[0]
	for r := 0; r < c.rows; r++ {
		dxs, dys := dx[r*p:(r+1)*p], dy[r*p:(r+1)*p]
		for i, j := range t {
			dxs[j] = dys[i]
		}
	}
}
