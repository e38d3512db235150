package gokernel

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
)

// dropout is Keras' Dropout. In training with rate p > 0 it keeps each
// value with probability 1-p and scales it by 1/(1-p) (inverted dropout):
//
//	y = x⊙mask,  mask_i = 0 (probability p) or 1/(1-p),  dx = dy⊙mask
//
// so inference needs no rescaling: there y = x. With noise_shape, the mask
// has that shape (null: the input's size on that axis, batch included; 1:
// one value broadcast along the axis), as in Keras. The masks come from
// the call's random stream (the model's seed, the layer's seed argument),
// not the numbers Keras draws.
type dropout struct {
	rate    float64
	seedArg int64
	hasSeed bool
	noise   []int // noise_shape with the batch axis; 0 for null; nil: none
}

func parseDropout(c *obj) (Layer, error) {
	l := &dropout{}
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
	if raw := c.get("noise_shape"); !isNull(raw) {
		var dims []*float64
		if err := json.Unmarshal(raw, &dims); err != nil || len(dims) < 1 {
			return nil, c.errf("noise_shape: want a list like [null, 1, 8], got %s", short(raw))
		}
		for _, d := range dims {
			v := 0
			if d != nil {
				if v = int(*d); float64(v) != *d || v < 1 {
					return nil, c.errf("noise_shape %s: want positive integers or null", short(raw))
				}
			}
			l.noise = append(l.noise, v)
		}
		if l.noise[0] > 1 {
			return nil, c.errf("noise_shape %s: the batch axis must be null or 1", short(raw))
		}
	}
	return l, nil
}

func (l *dropout) seed() (int64, bool) { return l.seedArg, l.hasSeed }

func (l *dropout) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if l.noise != nil {
		if len(l.noise) != len(s)+1 {
			return nil, fmt.Errorf("noise_shape %v has rank %d, the input %d", l.noise, len(l.noise), len(s)+1)
		}
		for i, d := range l.noise[1:] {
			if d != 0 && d != 1 && d != s[i] {
				return nil, fmt.Errorf("noise_shape %v does not broadcast to the input %s (axis %d)", l.noise, shapeStr(s), i+1)
			}
		}
	}
	return [][]int{s}, nil
}

func (l *dropout) weights([][]int) []weightSpec { return nil }

// active reports whether the mask applies in this pass.
func (l *dropout) active(c *call) bool { return c.training && l.rate > 0 }

// maskIndex returns, for a noise_shape, the mask position of each value of
// a sample (nil without noise_shape: one mask value per value), and the
// mask's values per sample (0: one mask for the whole batch) and in all.
func (l *dropout) maskIndex(c *call) (idx []int32, perSample, total int) {
	s := c.in[0]
	if l.noise == nil {
		return nil, prod(s), c.n(0)
	}
	dims := make([]int, 0, 8) // the mask's per-sample shape
	for i, d := range l.noise[1:] {
		if d == 0 {
			d = s[i]
		}
		dims = append(dims, d)
	}
	perSample = prod(dims)
	idx = c.intBuf(0, prod(s))
	pos := make([]int, 0, 8)
	pos = pos[:len(s)]
	clear(pos)
	for e := range idx {
		m := 0
		for a, p := range pos {
			if dims[a] == 1 {
				p = 0
			}
			m = m*dims[a] + p
		}
		idx[e] = int32(m)
		for a := len(pos) - 1; a >= 0; a-- {
			if pos[a]++; pos[a] < s[a] {
				break
			}
			pos[a] = 0
		}
	}
	if l.noise[0] == 1 {
		return idx, 0, perSample
	}
	return idx, perSample, c.rows * perSample
}

func (l *dropout) forward(c *call) {
	if !l.active(c) {
		c.y[0] = c.x[0]
		return
	}
	idx, perSample, total := l.maskIndex(c)
	mask := c.buf(0, total)
	if !c.replay {
		drawMask(mask, l.rate, c.rng)
	}
	l.apply(c, c.x[0], c.y[0], mask, idx, perSample)
}

// apply sets out = in⊙mask, the mask broadcast by idx.
func (l *dropout) apply(c *call, in, out, mask []float32, idx []int32, perSample int) {
	if idx == nil {
		for i, v := range in[:len(out)] {
			out[i] = v * mask[i]
		}
		return
	}
	n := len(idx)
	for r := 0; r < c.rows; r++ {
		m := mask[r*perSample:]
		for e, j := range idx {
			out[r*n+e] = in[r*n+e] * m[j]
		}
	}
}

func (l *dropout) backward(c *call) {
	if c.dx[0] == nil {
		return
	}
	if !l.active(c) {
		copy(c.dx[0], c.dy[0])
		return
	}
	idx, perSample, total := l.maskIndex(c)
	l.apply(c, c.dy[0], c.dx[0], c.buf(0, total), idx, perSample)
}

// drawMask sets each mask value to 0 (probability rate) or 1/(1-rate):
// each value is dropped when a uniform 32-bit draw is below
// ⌊rate·2³²⌋, two values per 64-bit draw of rng (the probability is
// rate to within 2⁻³², finer than the float32 uniforms Keras compares).
func drawMask(mask []float32, rate float64, rng *rand.Rand) {
	keep := float32(1 / (1 - rate))
	threshold := uint32(min(rate*(1<<32), 1<<32-1))
	pick := func(u uint32) float32 {
		if u < threshold {
			return 0
		}
		return keep
	}
	i := 0
	for ; i+1 < len(mask); i += 2 {
		u := rng.Uint64()
		mask[i], mask[i+1] = pick(uint32(u)), pick(uint32(u>>32))
	}
	if i < len(mask) {
		mask[i] = pick(uint32(rng.Uint64()))
	}
}

// outputMasks: Dropout passes its input's mask on.
func (l *dropout) outputMasks([]bool) []int { return passMask(1) }
