package gokernel

import "math"

// pool is Keras' MaxPooling1D/2D and AveragePooling1D/2D over the
// layer's window (pool_size, strides (default pool_size), padding valid or
// same), each channel on its own. Over the taps T(o) of output position o
// that fall inside the input:
//
//	max:      y[o,c] = max_{t∈T(o)} x[t,c],   dx[t*,c] += dy[o,c] for the first maximal t*
//	average:  y[o,c] = Σ_{t∈T(o)} x[t,c] / |T(o)|,   dx[t,c] += dy[o,c] / |T(o)|
//
// (with same padding, the padding counts neither for the maximum nor in
// the average, as in Keras; the first maximum in row-major window order
// takes the gradient, as XLA's select-and-scatter does).
type pool struct {
	win  windowArgs
	kind poolKind
}

type poolKind int

const (
	poolMax poolKind = iota
	poolAvg
)

func poolParser(rank int, kind poolKind) layerParser {
	return func(c *obj) (Layer, error) {
		a, err := parseWindowArgs(c, rank, "pool_size", true, false, "valid", "same")
		return &pool{win: a, kind: kind}, err
	}
}

func (l *pool) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	w, err := newWindow(l.win, s[:len(s)-1])
	if err != nil {
		return nil, err
	}
	return [][]int{w.outShape(l.win.rank, lastDim(s))}, nil
}

func (l *pool) weights([][]int) []weightSpec { return nil }

// poolJob runs a pooling's forward (or backward) pass on a range of
// samples.
type poolJob struct {
	l    *pool
	c    *call
	w    window
	ch   int
	arg  []int32
	back bool
}

func (j *poolJob) runRange(lo, hi int) {
	if j.back {
		j.l.backwardRange(j.c, j.w, j.ch, j.arg, lo, hi)
	} else {
		j.l.forwardRange(j.c, j.w, j.ch, j.arg, lo, hi)
	}
}

// run runs the forward or backward pass over the call's samples, split
// over its threads.
func (l *pool) run(c *call, arg []int32, back bool) {
	w, _ := newWindow(l.win, c.in[0][:len(c.in[0])-1])
	j, _ := c.jobs().layer.(*poolJob)
	if j == nil {
		j = &poolJob{}
		c.jobs().layer = j
	}
	*j = poolJob{l: l, c: c, w: w, ch: lastDim(c.in[0]), arg: arg, back: back}
	parallelFor(c.threads, c.rows, len(c.x[0]), j, &c.jobs().wg)
}

func (l *pool) forward(c *call) {
	// In training, a max pooling keeps where each maximum came from.
	var arg []int32
	if l.kind == poolMax && c.training {
		arg = c.intBuf(0, len(c.y[0]))
	}
	l.run(c, arg, false)
}

func (l *pool) forwardRange(c *call, w window, ch int, arg []int32, n0, n1 int) {
	x, y := c.x[0], c.y[0]
	if l.fast2x2(w) {
		maxPool2x2(w, ch, x, y, arg, n0, n1)
		return
	}
	for n := n0; n < n1; n++ {
		xs := x[n*w.inH*w.inW*ch:]
		for oh := 0; oh < w.outH; oh++ {
			h0, h1 := windowSpan(oh, w.sh, w.dh, w.kh, w.padT, w.inH)
			for ow := 0; ow < w.outW; ow++ {
				v0, v1 := windowSpan(ow, w.sw, w.dw, w.kw, w.padL, w.inW)
				o := ((n*w.outH+oh)*w.outW + ow) * ch
				yr := y[o : o+ch]
				t0 := h0*w.inW + v0
				copy(yr, xs[t0*ch:][:ch])
				var ar []int32
				if arg != nil {
					ar = arg[o : o+ch]
					for c := range ar {
						ar[c] = int32(t0)
					}
				}
				for h := h0; h <= h1; h += w.dh {
					for v := v0; v <= v1; v += w.dw {
						t := h*w.inW + v
						if t == t0 {
							continue
						}
						xr := xs[t*ch:][:ch]
						switch {
						case ar != nil:
							// Without branches: the signs of random data
							// defeat branch prediction.
							t := int32(t)
							for c, x := range xr {
								m := -b2i(x > yr[c])
								yr[c] = max(yr[c], x)
								ar[c] ^= (ar[c] ^ t) & m
							}
						case l.kind == poolMax:
							for c, x := range xr {
								yr[c] = max(yr[c], x)
							}
						default:
							for c, x := range xr {
								yr[c] += x
							}
						}
					}
				}
				if l.kind == poolAvg {
					s := 1 / float32(((h1-h0)/w.dh+1)*((v1-v0)/w.dw+1))
					for c := range yr {
						yr[c] *= s
					}
				}
			}
		}
	}
}

// backward spreads dy back over the window: to the tap the forward pass
// found the maximum at (the first in row-major window order), or evenly
// for the average.
func (l *pool) backward(c *call) {
	if c.dx[0] == nil {
		return
	}
	var arg []int32
	if l.kind == poolMax {
		arg = c.intBuf(0, len(c.dy[0]))
	}
	l.run(c, arg, true)
}

func (l *pool) backwardRange(c *call, w window, ch int, arg []int32, n0, n1 int) {
	dx, dy := c.dx[0], c.dy[0]
	if l.fast2x2(w) {
		maxPool2x2Back(w, ch, dx, dy, arg, n0, n1)
		return
	}
	clear(dx[n0*w.inH*w.inW*ch : n1*w.inH*w.inW*ch])
	if l.kind == poolMax {
		for n := n0; n < n1; n++ {
			ds := dx[n*w.inH*w.inW*ch:]
			for o := n * w.outH * w.outW * ch; o < (n+1)*w.outH*w.outW*ch; o += ch {
				for c, t := range arg[o : o+ch] {
					ds[int(t)*ch+c] += dy[o+c]
				}
			}
		}
		return
	}
	for n := n0; n < n1; n++ {
		ds := dx[n*w.inH*w.inW*ch:]
		for oh := 0; oh < w.outH; oh++ {
			h0, h1 := windowSpan(oh, w.sh, w.dh, w.kh, w.padT, w.inH)
			for ow := 0; ow < w.outW; ow++ {
				v0, v1 := windowSpan(ow, w.sw, w.dw, w.kw, w.padL, w.inW)
				gr := dy[((n*w.outH+oh)*w.outW+ow)*ch:][:ch]
				s := 1 / float32(((h1-h0)/w.dh+1)*((v1-v0)/w.dw+1))
				for h := h0; h <= h1; h += w.dh {
					for v := v0; v <= v1; v += w.dw {
						dr := ds[(h*w.inW+v)*ch:][:ch]
						for c, g := range gr {
							dr[c] += g * s
						}
					}
				}
			}
		}
	}
}

// windowSpan returns the first and last grid position inside [0, n) that
// output position o's taps read along one axis (stride s, dilation d, k
// taps, padding pad).
func windowSpan(o, s, d, k, pad, n int) (first, last int) {
	first, last = -1, -1
	for i := 0; i < k; i++ {
		p := o*s + i*d - pad
		if p >= 0 && p < n {
			if first < 0 {
				first = p
			}
			last = p
		}
	}
	return first, last
}

// b2i is 1 for true, 0 for false (compiled without a branch).
func b2i(b bool) int32 {
	var i int32
	if b {
		i = 1
	}
	return i
}

// poolFast enables maxPool2x2; tests turn it off to compare it with the
// general loop.
var poolFast = true

// fast2x2 reports whether maxPool2x2 and maxPool2x2Back do the work.
func (l *pool) fast2x2(w window) bool {
	return poolFast && l.kind == poolMax && w.kh == 2 && w.kw == 2 && w.sh == 2 && w.sw == 2 &&
		w.dh == 1 && w.dw == 1 && w.padT == 0 && w.padL == 0
}

// maxPool2x2Back is backwardRange for maxPool2x2: the windows do not
// overlap, so each of the four taps gets dy where it held the maximum and
// zero elsewhere, written once; a last odd row or column, in no window,
// gets zero.
func maxPool2x2Back(w window, ch int, dx, dy []float32, arg []int32, n0, n1 int) {
	for n := n0; n < n1; n++ {
		ds := dx[n*w.inH*w.inW*ch : (n+1)*w.inH*w.inW*ch]
		for oh := 0; oh < w.outH; oh++ {
			r0 := ds[2*oh*w.inW*ch:]
			r1 := ds[(2*oh+1)*w.inW*ch:]
			for ow := 0; ow < w.outW; ow++ {
				o := ((n*w.outH+oh)*w.outW + ow) * ch
				gr, ar := dy[o:o+ch], arg[o:o+ch]
				a, b := r0[2*ow*ch:][:ch], r0[(2*ow+1)*ch:][:ch]
				d, e := r1[2*ow*ch:][:ch], r1[(2*ow+1)*ch:][:ch]
				t0 := int32(2*oh*w.inW + 2*ow)
				t2 := t0 + int32(w.inW)
				for c, g := range gr {
					bits, t := math.Float32bits(g), ar[c]
					a[c] = math.Float32frombits(bits & uint32(-b2i(t == t0)))
					b[c] = math.Float32frombits(bits & uint32(-b2i(t == t0+1)))
					d[c] = math.Float32frombits(bits & uint32(-b2i(t == t2)))
					e[c] = math.Float32frombits(bits & uint32(-b2i(t == t2+1)))
				}
			}
			if w.inW%2 == 1 {
				clear(r0[(w.inW-1)*ch : w.inW*ch])
				clear(r1[(w.inW-1)*ch : w.inW*ch])
			}
		}
		if w.inH%2 == 1 {
			clear(ds[(w.inH-1)*w.inW*ch:])
		}
	}
}

// maxPool2x2 is forwardRange for the most common pooling, 2×2 windows with
// stride 2 and no padding: the same maxima and argmaxes (the first maximum
// in the order (0,0), (0,1), (1,0), (1,1)), without the general loop's
// bookkeeping.
func maxPool2x2(w window, ch int, x, y []float32, arg []int32, n0, n1 int) {
	for n := n0; n < n1; n++ {
		xs := x[n*w.inH*w.inW*ch:]
		for oh := 0; oh < w.outH; oh++ {
			r0 := xs[2*oh*w.inW*ch:]
			r1 := xs[(2*oh+1)*w.inW*ch:]
			for ow := 0; ow < w.outW; ow++ {
				o := ((n*w.outH+oh)*w.outW + ow) * ch
				yr := y[o : o+ch]
				a, b := r0[2*ow*ch:][:ch], r0[(2*ow+1)*ch:][:ch]
				d, e := r1[2*ow*ch:][:ch], r1[(2*ow+1)*ch:][:ch]
				if arg == nil {
					for c := range yr {
						yr[c] = max(max(a[c], b[c]), max(d[c], e[c]))
					}
					continue
				}
				t0 := int32(2*oh*w.inW + 2*ow)
				t2 := t0 + int32(w.inW)
				ar := arg[o : o+ch]
				for c := range yr {
					m, t := a[c], t0
					k := -b2i(b[c] > m)
					m, t = max(m, b[c]), t^((t^(t0+1))&k)
					k = -b2i(d[c] > m)
					m, t = max(m, d[c]), t^((t^t2)&k)
					k = -b2i(e[c] > m)
					m, t = max(m, e[c]), t^((t^(t2+1))&k)
					yr[c], ar[c] = m, t
				}
			}
		}
	}
}
