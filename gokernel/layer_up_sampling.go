package gokernel

import (
	"math"
	"strings"
)

// upSampling is Keras' UpSampling1D/2D/3D: each spatial axis of a sample
// (channels last, or first with data_format channels_first) grows by its
// factor s. With interpolation nearest (the only one of 1D and 3D) each
// value is repeated:
//
//	y[i] = x[⌊i/s⌋]
//
// UpSampling2D's bilinear is JAX's image.resize (half-pixel centres,
// clamped at the edges), separable over the two axes: along one axis
//
//	f = (i + ½)/s - ½,  j = ⌊f⌋,  t = f - j
//	y[i] = (1-t)·x[j] + t·x[j+1]   (x[-1] = x[0], x[n] = x[n-1])
//
// Either way y = A·x per channel for a fixed sparse A (a few taps per
// output position, built at the call's first batch), and dx = Aᵀ·dy.
type upSampling struct {
	rank          int
	size          []int
	channelsFirst bool
	bilinear      bool
}

func upSamplingParser(rank int) layerParser {
	return func(c *obj) (Layer, error) {
		l := &upSampling{rank: rank}
		var err error
		if l.size, err = intTuple(c, "size", rank, []int{2, 2, 2}[:rank], 1); err != nil {
			return nil, err
		}
		if rank == 1 {
			return l, nil
		}
		if l.channelsFirst, err = dataFormat(c); err != nil {
			return nil, err
		}
		if rank == 2 {
			in, err := c.str("interpolation", "nearest")
			if err != nil {
				return nil, err
			}
			switch strings.ToLower(in) {
			case "nearest":
			case "bilinear":
				l.bilinear = true
			default:
				return nil, c.errf("interpolation %q is not supported (nearest, bilinear are)", in)
			}
		}
		return l, nil
	}
}

func (l *upSampling) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if err := checkRank(s, l.rank); err != nil {
		return nil, err
	}
	out := append([]int(nil), s...)
	for i, f := range l.size {
		out[spatialAxis(l.channelsFirst, i)] *= f
	}
	return [][]int{out}, nil
}

func (l *upSampling) weights([][]int) []weightSpec { return nil }

// resampler is y = A·x per channel: for each of the output spatial
// positions, k taps (an input spatial position and a weight).
type resampler struct {
	k, ch     int
	src       []int32
	w         []float32
	inP, outP int // spatial positions in and out
	chFirst   bool
}

// axisTaps returns, per output index of an axis of n values grown by s,
// its two taps (nearest: the second has weight 0).
func (l *upSampling) axisTaps(n, s int) (src [][2]int32, w [][2]float32) {
	for i := 0; i < n*s; i++ {
		if !l.bilinear {
			src = append(src, [2]int32{int32(i / s), 0})
			w = append(w, [2]float32{1, 0})
			continue
		}
		f := (float64(i)+0.5)/float64(s) - 0.5
		j := int(math.Floor(f))
		t := f - float64(j)
		j0, j1 := max(j, 0), min(j+1, n-1)
		src = append(src, [2]int32{int32(j0), int32(j1)})
		w = append(w, [2]float32{float32(1 - t), float32(t)})
	}
	return src, w
}

func (l *upSampling) resampler(c *call) *resampler {
	if r, ok := c.state.(*resampler); ok {
		return r
	}
	in := c.in[0]
	chAxis := len(in) - 1
	if l.channelsFirst {
		chAxis = 0
	}
	var spatial []int
	for i := range l.size {
		spatial = append(spatial, in[spatialAxis(l.channelsFirst, i)])
	}
	taps := 1
	if l.bilinear {
		taps = 1 << l.rank
	}
	r := &resampler{k: taps, ch: in[chAxis], inP: prod(spatial), chFirst: l.channelsFirst}
	// The taps of an output position are the products of its axes' taps.
	var axSrc [][][2]int32
	var axW [][][2]float32
	outSpatial := make([]int, len(spatial))
	for a, n := range spatial {
		s, w := l.axisTaps(n, l.size[a])
		axSrc, axW = append(axSrc, s), append(axW, w)
		outSpatial[a] = n * l.size[a]
	}
	r.outP = prod(outSpatial)
	pos := make([]int, len(spatial))
	for p := 0; p < r.outP; p++ {
		for t := 0; t < taps; t++ {
			src, w := 0, float32(1)
			for a := range spatial {
				bit := (t >> (len(spatial) - 1 - a)) & 1
				if !l.bilinear {
					bit = 0
				}
				src = src*spatial[a] + int(axSrc[a][pos[a]][bit])
				w *= axW[a][pos[a]][bit]
			}
			r.src = append(r.src, int32(src))
			r.w = append(r.w, w)
		}
		for a := len(pos) - 1; a >= 0; a-- {
			pos[a]++
			if pos[a] < outSpatial[a] {
				break
			}
			pos[a] = 0
		}
	}
	c.state = r
	return r
}

func (l *upSampling) forward(c *call) {
	r := l.resampler(c)
	x, y := c.x[0], c.y[0]
	in, out := r.inP*r.ch, r.outP*r.ch
	for row := 0; row < c.rows; row++ {
		r.apply(y[row*out:(row+1)*out], x[row*in:(row+1)*in])
	}
}

// apply sets one sample's y = A·x.
func (r *resampler) apply(y, x []float32) {
	ch, k := r.ch, r.k
	if r.chFirst {
		for c := 0; c < ch; c++ {
			xs, ys := x[c*r.inP:(c+1)*r.inP], y[c*r.outP:(c+1)*r.outP]
			for p := range ys {
				var v float32
				for t := p * k; t < (p+1)*k; t++ {
					v += r.w[t] * xs[r.src[t]]
				}
				ys[p] = v
			}
		}
		return
	}
	for p := 0; p < r.outP; p++ {
		ys := y[p*ch : (p+1)*ch]
		if k == 1 {
			copy(ys, x[int(r.src[p])*ch:])
			continue
		}
		clear(ys)
		for t := p * k; t < (p+1)*k; t++ {
			w := r.w[t]
			for c, v := range x[int(r.src[t])*ch : int(r.src[t]+1)*ch] {
				ys[c] += w * v
			}
		}
	}
}

// applyT adds one sample's Aᵀ·dy into dx.
func (r *resampler) applyT(dx, dy []float32) {
	ch, k := r.ch, r.k
	if r.chFirst {
		for c := 0; c < ch; c++ {
			dxs, dys := dx[c*r.inP:(c+1)*r.inP], dy[c*r.outP:(c+1)*r.outP]
			for p, g := range dys {
				for t := p * k; t < (p+1)*k; t++ {
					dxs[r.src[t]] += r.w[t] * g
				}
			}
		}
		return
	}
	for p := 0; p < r.outP; p++ {
		dys := dy[p*ch : (p+1)*ch]
		for t := p * k; t < (p+1)*k; t++ {
			w := r.w[t]
			dxs := dx[int(r.src[t])*ch : int(r.src[t]+1)*ch]
			for c, g := range dys {
				dxs[c] += w * g
			}
		}
	}
}

func (l *upSampling) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	r := l.resampler(c)
	clear(dx)
	dy := c.dy[0]
	in, out := r.inP*r.ch, r.outP*r.ch
	for row := 0; row < c.rows; row++ {
		r.applyT(dx[row*in:(row+1)*in], dy[row*out:(row+1)*out])
	}
}
