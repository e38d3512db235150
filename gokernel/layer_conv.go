package gokernel

import (
	"fmt"

	"github.com/gophas/gophas/gokernel/internal/gemm"
)

// conv is Keras' Conv1D and Conv2D (channels last; a 1-D one is a 2-D one
// of height 1). With the window of the layer (see window) and kernel K of
// shape (kh, kw, C/G, F) for G groups of C/G input channels and F/G
// filters each:
//
//	z[n,oh,ow,f] = b[f] + Σ_{i,j,c} x[n, oh·sh+i·dh-padT, ow·sw+j·dw-padL, g·C/G+c]·K[i,j,c,f],  g = f/(F/G)
//	y = act(z)
//
// x outside the input reads zero. The fast path is a matrix product per
// group: the patches of a chunk of samples (im2col) as the rows of a
// matrix times K as a (kh·kw·C/G, F) matrix, written straight into the
// channels-last output; a 1×1 kernel with stride 1 multiplies x itself.
// Backward, with dz = act'(z)⊙dy:
//
//	dK += patchesᵀ·dz,  db += Σ dz,  dx = col2im(dz·Kᵀ)
//
// convRef is the plain loop beside it.
type conv struct {
	win             windowArgs
	filters, groups int
	convCommon
}

// convCommon are the arguments the convolutions share.
type convCommon struct {
	act                  activation
	useBias              bool
	kernelInit, biasInit initSpec
	kernelReg, biasReg   regSpec
}

func convParser(rank int) layerParser {
	return func(c *obj) (Layer, error) {
		paddings := []string{"valid", "same"}
		if rank == 1 {
			paddings = append(paddings, "causal")
		}
		l := &conv{}
		var err error
		if l.win, err = parseWindowArgs(c, rank, "kernel_size", false, true, paddings...); err != nil {
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
		g, ok, err := c.integer("groups")
		if err != nil {
			return nil, err
		}
		l.groups = 1
		if ok {
			l.groups = int(g)
		}
		if l.groups < 1 || l.filters%l.groups != 0 {
			return nil, c.errf("groups %d must be positive and divide filters %d", l.groups, l.filters)
		}
		if err := l.parseCommon(c, "kernel"); err != nil {
			return nil, err
		}
		return l, nil
	}
}

// parseCommon reads activation, use_bias and the kernel's (named kernel)
// and bias's initializers and regularizers, and refuses constraints and
// an activity regularizer.
func (l *convCommon) parseCommon(c *obj, kernel string) error {
	var err error
	if l.act, err = layerActivation(c); err != nil {
		return err
	}
	if l.useBias, err = c.boolean("use_bias", true); err != nil {
		return err
	}
	if l.kernelInit, err = parseInit(c, kernel+"_initializer", "glorot_uniform"); err != nil {
		return err
	}
	if l.biasInit, err = parseInit(c, "bias_initializer", "zeros"); err != nil {
		return err
	}
	if l.kernelReg, err = parseReg(c, kernel+"_regularizer"); err != nil {
		return err
	}
	if l.biasReg, err = parseReg(c, "bias_regularizer"); err != nil {
		return err
	}
	return refuse(c, "activity_regularizer", kernel+"_constraint", "bias_constraint")
}

func (l *conv) window(in []int) (window, error) {
	return newWindow(l.win, in[:len(in)-1])
}

func (l *conv) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	w, err := l.window(s)
	if err != nil {
		return nil, err
	}
	if ch := s[len(s)-1]; ch%l.groups != 0 {
		return nil, fmt.Errorf("%d input channels do not split into %d groups", ch, l.groups)
	}
	return [][]int{w.outShape(l.win.rank, l.filters)}, nil
}

func (l *conv) weights(in [][]int) []weightSpec {
	ch := lastDim(in[0]) / l.groups
	shape := append(append([]int(nil), l.win.size...), ch, l.filters)
	ws := []weightSpec{{name: "kernel", shape: shape, init: l.kernelInit, reg: l.kernelReg}}
	if l.useBias {
		ws = append(ws, weightSpec{name: "bias", shape: []int{l.filters}, init: l.biasInit, reg: l.biasReg})
	}
	return ws
}

// dims returns the window and the channel counts of a call.
func (l *conv) dims(c *call) (w window, ch, cg, fg, kg int) {
	w, _ = l.window(c.in[0])
	ch = lastDim(c.in[0])
	cg, fg = ch/l.groups, l.filters/l.groups
	return w, ch, cg, fg, w.kh * w.kw * cg
}

// kept reports whether a training pass keeps the whole batch's patches
// (one block per group) for the backward pass instead of building them
// again: when they take at most colKeep values.
func (l *conv) kept(c *call, p, kg int) bool {
	return c.training && c.dw[0] != nil && c.rows*p*kg*l.groups <= colKeep
}

func (l *conv) forward(c *call) {
	w, ch, cg, fg, kg := l.dims(c)
	f, x, k := l.filters, c.x[0], c.w[0]
	z := l.act.preact(c)
	p := w.outH * w.outW
	// product computes the rows [r0, r0+r) of group g's output from the
	// matrix a (lda per row); the product adds the bias and, with one group
	// (whole rows), applies the activation to each band it finishes.
	product := func(r0, r int, g int, a []float32, lda int) {
		var bias []float32
		if l.useBias {
			bias = c.w[1][g*fg : (g+1)*fg]
		}
		ep := gemm.Epilogue{Bias: bias}
		if l.groups == 1 {
			ep = c.epilogue(l.act, z, f, r0, bias)
		}
		gemm.SgemmFused(c.threads, false, false, r, fg, lda, 1, a, lda, k[g*fg:], f, 0, z[r0*f+g*fg:], f, ep)
	}
	switch {
	case w.identity():
		for g := 0; g < l.groups; g++ {
			l.identityProduct(c, g, x, ch, cg, fg, z)
		}
	case l.kept(c, p, kg):
		r := c.rows * p
		cols := c.buf(1, r*kg*l.groups)
		for g := 0; g < l.groups; g++ {
			col := cols[g*r*kg : (g+1)*r*kg]
			c.patches(w, x, ch, 0, c.rows, g*cg, cg, col, false)
			product(0, r, g, col, kg)
		}
	default:
		chunk := chunkSamples(c.rows, p*kg, colLimit)
		for n0 := 0; n0 < c.rows; n0 += chunk {
			n1 := min(c.rows, n0+chunk)
			r := (n1 - n0) * p
			col := c.shared(r * kg)
			for g := 0; g < l.groups; g++ {
				c.patches(w, x, ch, n0, n1, g*cg, cg, col, false)
				product(n0*p, r, g, col, kg)
			}
		}
	}
	if l.groups > 1 {
		l.act.apply(c, z, f)
	}
}

// identityProduct is a 1×1 stride-1 convolution of group g: x itself
// (rows of ch channels, the group's cg from g·cg) times the kernel, with
// the bias, and the activation when there is one group.
func (l *conv) identityProduct(c *call, g int, x []float32, ch, cg, fg int, z []float32) {
	f := l.filters
	var bias []float32
	if l.useBias {
		bias = c.w[1][g*fg : (g+1)*fg]
	}
	ep := gemm.Epilogue{Bias: bias}
	if l.groups == 1 {
		ep = c.epilogue(l.act, z, f, 0, bias)
	}
	gemm.SgemmFused(c.threads, false, false, len(z)/f, fg, cg, 1, x[g*cg:], ch, c.w[0][g*fg:], f, 0, z[g*fg:], f, ep)
}

func (l *conv) backward(c *call) {
	w, ch, cg, fg, kg := l.dims(c)
	f, x, k, dk, dx := l.filters, c.x[0], c.w[0], c.dw[0], c.dx[0]
	var db []float32
	if l.useBias {
		db = c.dw[1]
	}
	dz := l.act.gradBias(c, f, db)
	p := w.outH * w.outW
	if w.identity() {
		for g := 0; g < l.groups; g++ {
			if dk != nil {
				gemm.Sgemm(c.threads, true, false, cg, fg, c.rows*p, 1, x[g*cg:], ch, dz[g*fg:], f, 1, dk[g*fg:], f)
			}
			if dx != nil {
				gemm.Sgemm(c.threads, false, true, c.rows*p, cg, fg, 1, dz[g*fg:], f, k[g*fg:], f, 0, dx[g*cg:], ch)
			}
		}
		return
	}
	if dx != nil {
		clear(dx)
	}
	kept := l.kept(c, p, kg)
	chunk := c.rows
	if !kept {
		chunk = chunkSamples(c.rows, 2*p*kg, 2*colLimit)
	}
	for n0 := 0; n0 < c.rows; n0 += chunk {
		n1 := min(c.rows, n0+chunk)
		r := (n1 - n0) * p
		var col, dcol []float32
		if kept {
			dcol = c.shared(r * kg)
		} else {
			buf := c.shared(2 * r * kg)
			col, dcol = buf[:r*kg], buf[r*kg:]
		}
		for g := 0; g < l.groups; g++ {
			dzg := dz[n0*p*f+g*fg:]
			if dk != nil {
				if kept {
					col = c.buf(1, r*kg*l.groups)[g*r*kg : (g+1)*r*kg]
				} else {
					c.patches(w, x, ch, n0, n1, g*cg, cg, col, false)
				}
				gemm.Sgemm(c.threads, true, false, kg, fg, r, 1, col, kg, dzg, f, 1, dk[g*fg:], f)
			}
			if dx != nil {
				gemm.Sgemm(c.threads, false, true, r, kg, fg, 1, dzg, f, k[g*fg:], f, 0, dcol, kg)
				c.patches(w, dx, ch, n0, n1, g*cg, cg, dcol, true)
			}
		}
	}
}

// convRef is the plain loop of a convolution's forward pass (without
// activation): y = b + Σ x·K over the window, as conv states it. With dy
// it also returns the backward pass: dx and dK.
func convRef(x []float32, rows int, w window, ch, filters, groups int, k, b, dy []float32) (y, dx, dk []float32) {
	cg, fg := ch/groups, filters/groups
	y = make([]float32, rows*w.outH*w.outW*filters)
	if dy != nil {
		dx = make([]float32, len(x))
		dk = make([]float32, len(k))
	}
	for n := 0; n < rows; n++ {
		for oh := 0; oh < w.outH; oh++ {
			for ow := 0; ow < w.outW; ow++ {
				o := ((n*w.outH+oh)*w.outW + ow) * filters
				for f := 0; f < filters; f++ {
					g := f / fg
					var s float64
					if b != nil {
						s = float64(b[f])
					}
					for i := 0; i < w.kh; i++ {
						for j := 0; j < w.kw; j++ {
							h, v := oh*w.sh+i*w.dh-w.padT, ow*w.sw+j*w.dw-w.padL
							if h < 0 || h >= w.inH || v < 0 || v >= w.inW {
								continue
							}
							for c := 0; c < cg; c++ {
								xi := ((n*w.inH+h)*w.inW+v)*ch + g*cg + c
								ki := ((i*w.kw+j)*cg+c)*filters + f
								s += float64(x[xi]) * float64(k[ki])
								if dy != nil {
									dx[xi] += dy[o+f] * k[ki]
									dk[ki] += dy[o+f] * x[xi]
								}
							}
						}
					}
					y[o+f] = float32(s)
				}
			}
		}
	}
	return y, dx, dk
}
