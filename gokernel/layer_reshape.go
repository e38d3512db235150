package gokernel

import "encoding/json"

// reshape is Keras' Reshape: a sample's values, row-major, take the shape
// target_shape (one dimension may be -1: whatever the others leave). The
// data do not move: y = x and dx = dy.
type reshape struct {
	target []int
}

func parseReshape(c *obj) (Layer, error) {
	r := c.get("target_shape")
	var dims []float64
	if err := json.Unmarshal(r, &dims); err != nil || len(dims) == 0 {
		return nil, c.errf("target_shape: want a list of integers, got %s", short(r))
	}
	l := &reshape{}
	free := 0
	for _, d := range dims {
		switch {
		case d == -1:
			free++
		case d < 1 || d != float64(int(d)):
			return nil, c.errf("target_shape %s: each dimension must be a positive integer or -1", short(r))
		}
		l.target = append(l.target, int(d))
	}
	if free > 1 {
		return nil, c.errf("target_shape %s: at most one dimension may be -1", short(r))
	}
	return l, nil
}

func (l *reshape) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	out := append([]int(nil), l.target...)
	known, free := 1, -1
	for i, d := range out {
		if d == -1 {
			free = i
		} else {
			known *= d
		}
	}
	n := prod(s)
	switch {
	case free >= 0 && n%known == 0:
		out[free] = n / known
	case free >= 0 || known != n:
		return nil, errorf("a sample of %d values cannot take the target shape %v", n, l.target)
	}
	return [][]int{out}, nil
}

func (l *reshape) weights([][]int) []weightSpec { return nil }

func (l *reshape) forward(c *call) { c.y[0] = c.x[0] }

func (l *reshape) backward(c *call) {
	if c.dx[0] != nil {
		copy(c.dx[0], c.dy[0])
	}
}
