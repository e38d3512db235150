package gokernel

// flatten is Keras' Flatten: a sample of any shape becomes a vector of
// its values in row-major order, so y = x and dx = dy, with no copy in the
// forward pass. With data_format channels_first, a sample (C, d1, ..., dk)
// of rank ≥ 2 is first moved to channels last, as Keras does:
//
//	y[p·C + c] = x[c·P + p],  P = d1···dk
type flatten struct {
	channelsFirst bool
}

func parseFlatten(c *obj) (Layer, error) {
	df, err := c.str("data_format", "channels_last")
	if err != nil {
		return nil, err
	}
	if df != "channels_last" && df != "channels_first" {
		return nil, c.errf("data_format %q is not supported (channels_last, channels_first are)", df)
	}
	return &flatten{channelsFirst: df == "channels_first"}, nil
}

func (l *flatten) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	return [][]int{{prod(s)}}, err
}

func (l *flatten) weights([][]int) []weightSpec { return nil }

// moves reports whether the sample's axes move (channels_first, rank ≥ 2).
func (l *flatten) moves(c *call) (ch, p int, ok bool) {
	s := c.in[0]
	if !l.channelsFirst || len(s) < 2 {
		return 0, 0, false
	}
	return s[0], prod(s[1:]), true
}

func (l *flatten) forward(c *call) {
	ch, p, ok := l.moves(c)
	if !ok {
		c.y[0] = c.x[0]
		return
	}
	x, y := c.x[0], c.y[0]
	for r := 0; r < c.rows; r++ {
		xs, ys := x[r*ch*p:(r+1)*ch*p], y[r*ch*p:(r+1)*ch*p]
		for k := 0; k < ch; k++ {
			for i, v := range xs[k*p : (k+1)*p] {
				ys[i*ch+k] = v
			}
		}
	}
}

func (l *flatten) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	ch, p, ok := l.moves(c)
	if !ok {
		copy(dx, c.dy[0])
		return
	}
	dy := c.dy[0]
	for r := 0; r < c.rows; r++ {
		xs, ys := dx[r*ch*p:(r+1)*ch*p], dy[r*ch*p:(r+1)*ch*p]
		for k := 0; k < ch; k++ {
			for i := range xs[k*p : (k+1)*p] {
				xs[k*p+i] = ys[i*ch+k]
			}
		}
	}
}
