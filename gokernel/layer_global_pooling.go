package gokernel

// globalPool is Keras' GlobalAveragePooling1D/2D and GlobalMaxPooling1D/2D:
// over the P positions of each sample (every axis but the channels),
//
//	average:  y[c] = Σ_p x[p,c] / P,   dx[p,c] = dy[c] / P
//	max:      y[c] = max_p x[p,c],     dx[p,c] = dy[c] / k where x[p,c] = y[c] (k ties), else 0
//
// (JAX's gradient of a maximum shares it among the tied positions). With
// keepdims the output keeps the pooled axes with size 1.
//
// GlobalAveragePooling1D given a mask m (one per step, see mask.go)
// averages the unmasked steps only, as Keras does:
//
//	y[c] = Σ_t m_t x[t,c] / Σ_t m_t,   dx[t,c] = m_t dy[c] / Σ_t m_t
//
// (NaN for a sample whose steps are all masked, as Keras gives 0/0). Its
// output carries no mask; the other poolings ignore and drop masks.
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

// masked reports whether the call averages the unmasked steps.
func (l *globalPool) masked(c *call) bool {
	return l.kind == poolAvg && l.rank == 1 && c.mask[0] != nil
}

func (l *globalPool) forward(c *call) {
	if l.masked(c) {
		l.maskedMean(c, false)
		return
	}
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
	if l.masked(c) {
		l.maskedMean(c, true)
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

// maskedMean is GlobalAveragePooling1D's forward (or backward) pass over
// the unmasked steps.
func (l *globalPool) maskedMean(c *call, back bool) {
	T, ch := c.in[0][0], lastDim(c.in[0])
	m := c.mask[0]
	for n := 0; n < c.rows; n++ {
		count := float32(maskCount(m[n*T : (n+1)*T]))
		if back {
			gr := c.dy[0][n*ch : (n+1)*ch]
			for t := 0; t < T; t++ {
				dr := c.dx[0][(n*T+t)*ch : (n*T+t+1)*ch]
				if !m[n*T+t] {
					clear(dr)
					continue
				}
				for k, g := range gr {
					dr[k] = g / count
				}
			}
			continue
		}
		yr := c.y[0][n*ch : (n+1)*ch]
		clear(yr)
		for t := 0; t < T; t++ {
			if !m[n*T+t] {
				continue
			}
			for k, v := range c.x[0][(n*T+t)*ch : (n*T+t+1)*ch] {
				yr[k] += v
			}
		}
		for k := range yr {
			yr[k] /= count
		}
	}
}
