package gokernel

import "github.com/gophas/gophas/gokernel/internal/vec"

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
	l     *pool
	c     *call
	w     window
	ch    int
	arg   []int32 // the general loop's argmax positions
	codes []byte  // the 2×2 fast path's
	back  bool
}

func (j *poolJob) runRange(lo, hi int) {
	switch {
	case j.back && j.l.fast2x2(j.w):
		maxPool2x2Back(j.w, j.ch, j.c.dx[0], j.c.dy[0], j.codes, lo, hi)
	case j.back:
		j.l.backwardRange(j.c, j.w, j.ch, j.arg, lo, hi)
	case j.l.fast2x2(j.w):
		maxPool2x2(j.w, j.ch, j.c.x[0], j.c.y[0], j.codes, lo, hi)
	default:
		j.l.forwardRange(j.c, j.w, j.ch, j.arg, lo, hi)
	}
}

// run runs the forward or backward pass over the call's samples, split
// over its threads. In training, a max pooling keeps where each maximum
// came from for the backward pass: as codes on the 2×2 fast path, else as
// positions.
func (l *pool) run(c *call, back bool) {
	w, _ := newWindow(l.win, c.in[0][:len(c.in[0])-1])
	ch := lastDim(c.in[0])
	j, _ := c.jobs().layer.(*poolJob)
	if j == nil {
		j = &poolJob{}
		c.jobs().layer = j
	}
	*j = poolJob{l: l, c: c, w: w, ch: ch, back: back}
	switch {
	case l.kind != poolMax || !c.training && !back:
	case l.fast2x2(w):
		j.codes = l.codes(c, c.rows*w.outH*w.outW*vec.ArgBytes(ch))
	default:
		j.arg = c.intBuf(0, c.rows*w.outH*w.outW*ch)
	}
	parallelFor(c.threads, c.rows, len(c.x[0]), j, &c.jobs().wg)
}

// codes returns the call's n bytes of 2×2 argmax codes (vec.MaxPool2),
// kept between batches in the call's state.
func (l *pool) codes(c *call, n int) []byte {
	b, _ := c.state.(*[]byte)
	if b == nil {
		b = new([]byte)
		c.state = b
	}
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	return (*b)[:n]
}

func (l *pool) forward(c *call) { l.run(c, false) }

func (l *pool) forwardRange(c *call, w window, ch int, arg []int32, n0, n1 int) {
	x, y := c.x[0], c.y[0]
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
	l.run(c, true)
}

func (l *pool) backwardRange(c *call, w window, ch int, arg []int32, n0, n1 int) {
	dx, dy := c.dx[0], c.dy[0]
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
// zero elsewhere, written once (vec.MaxPool2Back, from the codes the
// forward pass kept); a last odd row or column, in no window, gets zero.
func maxPool2x2Back(w window, ch int, dx, dy []float32, codes []byte, n0, n1 int) {
	nb := w.outW * vec.ArgBytes(ch)
	for n := n0; n < n1; n++ {
		ds := dx[n*w.inH*w.inW*ch : (n+1)*w.inH*w.inW*ch]
		for oh := 0; oh < w.outH; oh++ {
			r0 := ds[2*oh*w.inW*ch:]
			r1 := ds[(2*oh+1)*w.inW*ch:]
			o := (n*w.outH + oh) * w.outW
			vec.MaxPool2Back(r0, r1, dy[o*ch:(o+w.outW)*ch], codes[o/w.outW*nb:][:nb], w.outW, ch)
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
// stride 2 and no padding, one output row at a time (vec.MaxPool2): the
// same maxima as the general loop and the same taps (the first maximum in
// the order (0,0), (0,1), (1,0), (1,1)), kept as two-bit codes, a
// sixteenth of the general loop's int32 positions.
func maxPool2x2(w window, ch int, x, y []float32, codes []byte, n0, n1 int) {
	nb := w.outW * vec.ArgBytes(ch)
	for n := n0; n < n1; n++ {
		xs := x[n*w.inH*w.inW*ch:]
		for oh := 0; oh < w.outH; oh++ {
			r0 := xs[2*oh*w.inW*ch:]
			r1 := xs[(2*oh+1)*w.inW*ch:]
			o := (n*w.outH + oh) * w.outW
			var ar []byte
			if codes != nil {
				ar = codes[o/w.outW*nb:][:nb]
			}
			vec.MaxPool2(y[o*ch:(o+w.outW)*ch], ar, r0, r1, w.outW, ch)
		}
	}
}
