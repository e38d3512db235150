package gokernel

// globalPool is Keras' GlobalAveragePooling1D/2D and GlobalMaxPooling1D/2D:
// over the P positions of each sample (every axis but the channels),
//
//	average:  y[c] = Σ_p x[p,c] / P,   dx[p,c] = dy[c] / P
//	max:      y[c] = max_p x[p,c],     dx[p,c] = dy[c] / k where x[p,c] = y[c] (k ties), else 0
//
// (JAX's gradient of a maximum shares it among the tied positions). With
// keepdims the output keeps the pooled axes with size 1.
type globalPool struct {
	rank     int
	kind     poolKind
	keepdims bool
}

func globalPoolParser(rank int, kind poolKind) layerParser {
	return func(c *obj) (Layer, error) {
		l := &globalPool{rank: rank, kind: kind}
		var err error
		if l.keepdims, err = c.boolean("keepdims", false); err != nil {
			return nil, err
		}
		return l, channelsLast(c)
	}
}

func (l *globalPool) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if len(s) != l.rank+1 {
		return nil, errorf("want %d spatial axes and channels, got a sample of rank %d", l.rank, len(s))
	}
	if !l.keepdims {
		return [][]int{{lastDim(s)}}, nil
	}
	out := ones(l.rank)
	return [][]int{append(out, lastDim(s))}, nil
}

func (l *globalPool) weights([][]int) []weightSpec { return nil }

func (l *globalPool) forward(c *call) {
	ch := lastDim(c.in[0])
	p := prod(c.in[0]) / ch
	x, y := c.x[0], c.y[0]
	for n := 0; n < c.rows; n++ {
		xs, yr := x[n*p*ch:(n+1)*p*ch], y[n*ch:(n+1)*ch]
		copy(yr, xs[:ch])
		for q := 1; q < p; q++ {
			xr := xs[q*ch : (q+1)*ch]
			if l.kind == poolMax {
				for c, v := range xr {
					if v > yr[c] {
						yr[c] = v
					}
				}
			} else {
				for c, v := range xr {
					yr[c] += v
				}
			}
		}
		if l.kind == poolAvg {
			s := 1 / float32(p)
			for c := range yr {
				yr[c] *= s
			}
		}
	}
}

func (l *globalPool) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	ch := lastDim(c.in[0])
	p := prod(c.in[0]) / ch
	x, y, dy := c.x[0], c.y[0], c.dy[0]
	for n := 0; n < c.rows; n++ {
		xs, ds := x[n*p*ch:(n+1)*p*ch], dx[n*p*ch:(n+1)*p*ch]
		yr, gr := y[n*ch:(n+1)*ch], dy[n*ch:(n+1)*ch]
		if l.kind == poolAvg {
			s := 1 / float32(p)
			for q := 0; q < p; q++ {
				dr := ds[q*ch : (q+1)*ch]
				for c, g := range gr {
					dr[c] = g * s
				}
			}
			continue
		}
		ties := c.buf(0, ch)
		clear(ties)
		for q := 0; q < p; q++ {
			for c, v := range xs[q*ch : (q+1)*ch] {
				if v == yr[c] {
					ties[c]++
				}
			}
		}
		for q := 0; q < p; q++ {
			dr := ds[q*ch : (q+1)*ch]
			for c, v := range xs[q*ch : (q+1)*ch] {
				if v == yr[c] {
					dr[c] = gr[c] / ties[c]
				} else {
					dr[c] = 0
				}
			}
		}
	}
}
