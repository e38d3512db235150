package gokernel

// spatialDropout is Keras' SpatialDropout1D/2D/3D: Dropout that drops
// whole feature maps. In training with rate p > 0, each channel of each
// sample is kept with probability 1-p, scaled by 1/(1-p), or zeroed,
// along every spatial position at once (channels last, or first with
// data_format channels_first; 1D is channels last):
//
//	y[s, c] = x[s, c]·mask_c,  dx = dy⊙mask
//
// In inference y = x. The masks come from the call's random stream, not
// the numbers Keras draws.
type spatialDropout struct {
	rank          int
	rate          float64
	seedArg       int64
	hasSeed       bool
	channelsFirst bool
}

func spatialDropoutParser(rank int) layerParser {
	return func(c *obj) (Layer, error) {
		l := &spatialDropout{rank: rank}
		var err error
		if l.rate, err = c.num("rate", 0); err != nil {
			return nil, err
		}
		if l.rate < 0 || l.rate >= 1 {
			return nil, c.errf("rate %v must be in [0, 1)", l.rate)
		}
		if l.seedArg, l.hasSeed, err = c.integer("seed"); err != nil {
			return nil, err
		}
		if rank > 1 {
			if l.channelsFirst, err = dataFormat(c); err != nil {
				return nil, err
			}
		}
		return l, nil
	}
}

func (l *spatialDropout) seed() (int64, bool) { return l.seedArg, l.hasSeed }

func (l *spatialDropout) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	return [][]int{s}, checkRank(s, l.rank)
}

func (l *spatialDropout) weights([][]int) []weightSpec { return nil }

func (l *spatialDropout) active(c *call) bool { return c.training && l.rate > 0 }

// geometry: channels and spatial positions per sample.
func (l *spatialDropout) geometry(c *call) (ch, p int) {
	s := c.in[0]
	if l.channelsFirst {
		return s[0], prod(s[1:])
	}
	return s[len(s)-1], prod(s[:len(s)-1])
}

// apply sets out = in⊙mask, the mask being per (sample, channel).
func (l *spatialDropout) apply(c *call, in, out, mask []float32) {
	ch, p := l.geometry(c)
	for r := 0; r < c.rows; r++ {
		m := mask[r*ch : (r+1)*ch]
		xs, ys := in[r*ch*p:(r+1)*ch*p], out[r*ch*p:(r+1)*ch*p]
		if l.channelsFirst {
			for k, mk := range m {
				for i, v := range xs[k*p : (k+1)*p] {
					ys[k*p+i] = v * mk
				}
			}
			continue
		}
		for q := 0; q < p; q++ {
			yq := ys[q*ch : (q+1)*ch]
			for k, v := range xs[q*ch : (q+1)*ch] {
				yq[k] = v * m[k]
			}
		}
	}
}

func (l *spatialDropout) forward(c *call) {
	if !l.active(c) {
		c.y[0] = c.x[0]
		return
	}
	ch, _ := l.geometry(c)
	mask := c.buf(0, c.rows*ch)
	if !c.replay {
		drawMask(mask, l.rate, c.rng)
	}
	l.apply(c, c.x[0], c.y[0], mask)
}

func (l *spatialDropout) backward(c *call) {
	if c.dx[0] == nil {
		return
	}
	if !l.active(c) {
		copy(c.dx[0], c.dy[0])
		return
	}
	ch, _ := l.geometry(c)
	l.apply(c, c.dy[0], c.dx[0], c.buf(0, c.rows*ch))
}

// outputMasks: SpatialDropout passes its input's mask on (Keras' supports_masking).
func (l *spatialDropout) outputMasks([]bool) []int { return passMask(1) }
