package gokernel

// repeatVector is Keras' RepeatVector: a vector sample of f values becomes
// n copies of it, shape (n, f):
//
//	y[k, j] = x[j],  dx[j] = Σ_k dy[k, j]
type repeatVector struct {
	n int
}

func parseRepeatVector(c *obj) (Layer, error) {
	n, ok, err := c.integer("n")
	if err != nil {
		return nil, err
	}
	if !ok || n < 1 {
		return nil, c.errf("n must be a positive integer")
	}
	return &repeatVector{n: int(n)}, nil
}

func (l *repeatVector) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if len(s) != 1 {
		return nil, errorf("RepeatVector takes vector samples, got shape %s", shapeStr(s))
	}
	return [][]int{{l.n, s[0]}}, nil
}

func (l *repeatVector) weights([][]int) []weightSpec { return nil }

func (l *repeatVector) forward(c *call) {
	f := c.in[0][0]
	x, y := c.x[0], c.y[0]
	for r := 0; r < c.rows; r++ {
		xs := x[r*f : (r+1)*f]
		for k := 0; k < l.n; k++ {
			copy(y[(r*l.n+k)*f:], xs)
		}
	}
}

func (l *repeatVector) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	f := c.in[0][0]
	dy := c.dy[0]
	for r := 0; r < c.rows; r++ {
		dxs := dx[r*f : (r+1)*f]
		copy(dxs, dy[r*l.n*f:])
		for k := 1; k < l.n; k++ {
			for j, v := range dy[(r*l.n+k)*f : (r*l.n+k+1)*f] {
				dxs[j] += v
			}
		}
	}
}
