package gokernel

import (
	"fmt"

	"github.com/gophas/gophas/gokernel/internal/gemm"
)

// convTranspose is Keras' Conv1DTranspose and Conv2DTranspose: the
// adjoint of a convolution, each input position spreading its values over
// the output through kernel K of shape (kh, kw, F, C). Along each axis,
// with keff = (k-1)·d + 1, the output length L and the offset P are
// Keras' (and its JAX backend's):
//
//	valid: L = (in-1)·s + max(keff, s) (+ output_padding - max(keff,s) + keff if given), P = 0
//	same:  L = in·s, or (in-1)·s + keff mod 2 + output_padding if given;
//	       P = keff-1 - min(⌈q/2⌉, keff-1), q = s + keff - 2 (keff + keff mod 2 - 2 + output_padding if given)
//
// and
//
//	z[n, i·sh+a·dh-Ph, j·sw+b·dw-Pw, f] += Σ_c x[n,i,j,c]·K[a,b,f,c],  y = act(z + b)
//
// positions outside [0, L) dropped. That is col2im (with the output as the
// grid and the input as the window positions) of x·Kᵀ, K a (kh·kw·F, C)
// matrix. Backward, with dz = act'(z)⊙dy and dcol = im2col(dz):
//
//	dK += dcolᵀ·x,  db += Σ dz,  dx = dcol·K
type convTranspose struct {
	win     windowArgs
	filters int
	outPad  []int // nil: none
	convCommon
}

func convTransposeParser(rank int) layerParser {
	return func(c *obj) (Layer, error) {
		l := &convTranspose{}
		var err error
		if l.win, err = parseWindowArgs(c, rank, "kernel_size", false, true, "valid", "same"); err != nil {
			return nil, err
		}
		f, ok, err := c.integer("filters")
		if err != nil {
			return nil, err
		}
		if !ok || f < 1 {
			return nil, c.errf("filters must be a positive integer")
		}
		l.filters = int(f)
		if l.outPad, err = tupleFrom(c, "output_padding", rank, nil, 0); err != nil {
			return nil, err
		}
		if l.outPad != nil {
			for i, p := range l.outPad {
				if p >= l.win.strides[i] {
					return nil, c.errf("output_padding %v must be less than strides %v", l.outPad, l.win.strides)
				}
			}
		}
		return l, l.parseCommon(c, "kernel")
	}
}

// transposeLen returns an axis's output length and offset P (see
// convTranspose); op < 0 for no output_padding.
func transposeLen(in, k, s, d int, padding string, op int) (out, p int) {
	keff := (k-1)*d + 1
	if padding == "valid" {
		if op < 0 {
			return (in-1)*s + max(keff, s), 0
		}
		return (in-1)*s + keff + op, 0
	}
	var q int
	if op < 0 {
		q = s + keff - 2
		out = in * s
	} else {
		q = keff + keff%2 - 2 + op
		out = (in-1)*s + keff%2 + op
	}
	left := min(q/2+q%2, keff-1)
	return out, keff - 1 - left
}

// window returns the window of a call: the output is its grid, the input
// its positions.
func (l *convTranspose) window(in []int) (window, error) {
	sp := in[:len(in)-1]
	if len(sp) != l.win.rank {
		return window{}, fmt.Errorf("want %d spatial axes and channels, got a sample of rank %d", l.win.rank, len(in))
	}
	w := window{inH: 1, outH: 1, kh: 1, sh: 1, dh: 1}
	op := func(i int) int {
		if l.outPad == nil {
			return -1
		}
		return l.outPad[i]
	}
	a := l.win
	if a.rank == 2 {
		w.outH, w.kh, w.sh, w.dh = sp[0], a.size[0], a.strides[0], a.dilation[0]
		w.inH, w.padT = transposeLen(sp[0], w.kh, w.sh, w.dh, a.padding, op(0))
	}
	i := a.rank - 1
	w.outW, w.kw, w.sw, w.dw = sp[i], a.size[i], a.strides[i], a.dilation[i]
	w.inW, w.padL = transposeLen(sp[i], w.kw, w.sw, w.dw, a.padding, op(i))
	if w.inH < 1 || w.inW < 1 {
		return w, fmt.Errorf("the output would be empty")
	}
	return w, nil
}

func (l *convTranspose) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	w, err := l.window(s)
	if err != nil {
		return nil, err
	}
	if l.win.rank == 1 {
		return [][]int{{w.inW, l.filters}}, nil
	}
	return [][]int{{w.inH, w.inW, l.filters}}, nil
}

func (l *convTranspose) weights(in [][]int) []weightSpec {
	shape := append(append([]int(nil), l.win.size...), l.filters, lastDim(in[0]))
	ws := []weightSpec{{name: "kernel", shape: shape, init: l.kernelInit, reg: l.kernelReg}}
	if l.useBias {
		ws = append(ws, weightSpec{name: "bias", shape: []int{l.filters}, init: l.biasInit, reg: l.biasReg})
	}
	return ws
}

func (l *convTranspose) forward(c *call) {
	w, _ := l.window(c.in[0])
	ch, f := lastDim(c.in[0]), l.filters
	kf := w.kh * w.kw * f
	p := w.outH * w.outW // input positions
	z := l.act.preact(c)
	clear(z)
	chunk := chunkSamples(c.rows, p*kf, colLimit)
	for n0 := 0; n0 < c.rows; n0 += chunk {
		n1 := min(c.rows, n0+chunk)
		r := (n1 - n0) * p
		col := c.shared(r * kf)
		gemm.Sgemm(c.threads, false, true, r, kf, ch, 1, c.x[0][n0*p*ch:], ch, c.w[0], ch, 0, col, kf)
		c.patches(w, z, f, n0, n1, 0, f, col, true)
	}
	if l.useBias {
		c.addBias(z, c.w[1])
	}
	l.act.apply(c, z, f)
}

func (l *convTranspose) backward(c *call) {
	w, _ := l.window(c.in[0])
	ch, f := lastDim(c.in[0]), l.filters
	kf := w.kh * w.kw * f
	p := w.outH * w.outW
	var db []float32
	if l.useBias {
		db = c.dw[1]
	}
	dz := l.act.gradBias(c, f, db)
	dk, dx := c.dw[0], c.dx[0]
	if dk == nil && dx == nil {
		return
	}
	chunk := chunkSamples(c.rows, p*kf, colLimit)
	for n0 := 0; n0 < c.rows; n0 += chunk {
		n1 := min(c.rows, n0+chunk)
		r := (n1 - n0) * p
		dcol := c.shared(r * kf)
		c.patches(w, dz, f, n0, n1, 0, f, dcol, false)
		if dk != nil {
			gemm.Sgemm(c.threads, true, false, kf, ch, r, 1, dcol, kf, c.x[0][n0*p*ch:], ch, 1, dk, ch)
		}
		if dx != nil {
			gemm.Sgemm(c.threads, false, false, r, ch, kf, 1, dcol, kf, c.w[0], ch, 0, dx[n0*p*ch:], ch)
		}
	}
}

// convTransposeRef is the plain scatter loop of convTranspose's forward
// pass (without bias and activation) over window w (output as the grid).
func convTransposeRef(x []float32, rows int, w window, ch, filters int, k []float32) []float32 {
	y := make([]float32, rows*w.inH*w.inW*filters)
	for n := 0; n < rows; n++ {
		for i := 0; i < w.outH; i++ {
			for j := 0; j < w.outW; j++ {
				for a := 0; a < w.kh; a++ {
					for b := 0; b < w.kw; b++ {
						h, v := i*w.sh+a*w.dh-w.padT, j*w.sw+b*w.dw-w.padL
						if h < 0 || h >= w.inH || v < 0 || v >= w.inW {
							continue
						}
						for f := 0; f < filters; f++ {
							var s float64
							for c := 0; c < ch; c++ {
								s += float64(x[((n*w.outH+i)*w.outW+j)*ch+c]) * float64(k[((a*w.kw+b)*filters+f)*ch+c])
							}
							y[((n*w.inH+h)*w.inW+v)*filters+f] += float32(s)
						}
					}
				}
			}
		}
	}
	return y
}
