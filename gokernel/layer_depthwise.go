package gokernel

import "fmt"

// depthwiseConv is Keras' DepthwiseConv1D and DepthwiseConv2D: each input
// channel c convolved with its own depth_multiplier M filters. With kernel
// K of shape (kh, kw, C, M) and the layer's window:
//
//	z[n,oh,ow,c·M+m] = b[c·M+m] + Σ_{i,j} x[n, oh·sh+i·dh-padT, ow·sw+j·dw-padL, c]·K[i,j,c,m]
//	y = act(z)
//
// Backward, with dz = act'(z)⊙dy, over the same sums:
//
//	dK[i,j,c,m] += Σ x·dz,  db += Σ dz,  dx[…, c] = Σ_{i,j,m} K[i,j,c,m]·dz
//
// The loops run over the channels innermost, contiguous in memory; there
// is no matrix product to map them onto.
type depthwiseConv struct {
	win  windowArgs
	mult int
	convCommon
}

func depthwiseParser(rank int) layerParser {
	return func(c *obj) (Layer, error) {
		l := &depthwiseConv{}
		var err error
		if l.win, err = parseWindowArgs(c, rank, "kernel_size", false, true, "valid", "same"); err != nil {
			return nil, err
		}
		if l.mult, err = depthMultiplier(c); err != nil {
			return nil, err
		}
		return l, l.parseCommon(c, "depthwise")
	}
}

func depthMultiplier(c *obj) (int, error) {
	m, ok, err := c.integer("depth_multiplier")
	if err != nil {
		return 0, err
	}
	if !ok {
		return 1, nil
	}
	if m < 1 {
		return 0, c.errf("depth_multiplier %d must be positive", m)
	}
	return int(m), nil
}

func (l *depthwiseConv) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	w, err := newWindow(l.win, s[:len(s)-1])
	if err != nil {
		return nil, err
	}
	return [][]int{w.outShape(l.win.rank, lastDim(s)*l.mult)}, nil
}

func (l *depthwiseConv) weights(in [][]int) []weightSpec {
	ch := lastDim(in[0])
	ws := []weightSpec{{name: "kernel", shape: append(append([]int(nil), l.win.size...), ch, l.mult), init: l.kernelInit, reg: l.kernelReg}}
	if l.useBias {
		ws = append(ws, weightSpec{name: "bias", shape: []int{ch * l.mult}, init: l.biasInit, reg: l.biasReg})
	}
	return ws
}

func (l *depthwiseConv) forward(c *call) {
	w, _ := newWindow(l.win, c.in[0][:len(c.in[0])-1])
	ch := lastDim(c.in[0])
	z := l.act.preact(c)
	c.depthwise(w, c.x[0], ch, l.mult, c.w[0], z)
	if l.useBias {
		c.addBias(z, c.w[1])
	}
	l.act.apply(c, z, ch*l.mult)
}

func (l *depthwiseConv) backward(c *call) {
	w, _ := newWindow(l.win, c.in[0][:len(c.in[0])-1])
	ch := lastDim(c.in[0])
	var db []float32
	if l.useBias {
		db = c.dw[1]
	}
	dz := l.act.gradBias(c, ch*l.mult, db)
	c.depthwiseBack(w, c.x[0], dz, ch, l.mult, c.w[0], c.dw[0], c.dx[0])
}

// depthJob runs a depthwise convolution's forward pass on a range of
// samples, or its backward pass on a range of parts of the samples, each
// part adding its kernel gradient into its own partial sum.
type depthJob struct {
	w                     window
	x, k, z, dz, dk, dx   []float32
	partial               []float32
	ch, mult, rows, parts int
	back                  bool
}

func (j *depthJob) runRange(lo, hi int) {
	if !j.back {
		depthwiseForward(j.w, j.x, lo, hi, j.ch, j.mult, j.k, j.z)
		return
	}
	for p := lo; p < hi; p++ {
		var dk []float32
		if j.dk != nil {
			dk = j.partial[p*len(j.dk) : (p+1)*len(j.dk)]
			clear(dk)
		}
		depthwiseBackward(j.w, j.x, j.dz, j.rows*p/j.parts, j.rows*(p+1)/j.parts, j.ch, j.mult, j.k, dk, j.dx)
	}
}

func (c *call) depthJob() *depthJob {
	j, _ := c.jobs().layer.(*depthJob)
	if j == nil {
		j = &depthJob{}
		c.jobs().layer = j
	}
	return j
}

// depthwise runs depthwiseForward over the call's samples, split over its
// threads.
func (c *call) depthwise(w window, x []float32, ch, mult int, k, z []float32) {
	j := c.depthJob()
	*j = depthJob{w: w, x: x, k: k, z: z, ch: ch, mult: mult}
	parallelFor(c.threads, c.rows, len(z)*w.kh*w.kw, j, &c.jobs().wg)
}

// depthwiseBack runs depthwiseBackward over the call's samples in up to
// threads parts, then adds the parts' kernel gradients into dk.
func (c *call) depthwiseBack(w window, x, dz []float32, ch, mult int, k, dk, dx []float32) {
	parts := max(1, min(c.threads, c.rows))
	if len(dz)*w.kh*w.kw < minParallelWork {
		parts = 1
	}
	j := c.depthJob()
	*j = depthJob{w: w, x: x, k: k, dz: dz, dk: dk, dx: dx, ch: ch, mult: mult, rows: c.rows, parts: parts, back: true}
	if dk != nil {
		j.partial = c.buf(3, parts*len(dk))
	}
	parallelFor(parts, parts, parts*minParallelWork, j, &c.jobs().wg)
	if dk != nil {
		for p := 0; p < parts; p++ {
			for i, v := range j.partial[p*len(dk) : (p+1)*len(dk)] {
				dk[i] += v
			}
		}
	}
}

// depthwiseForward sets z[n,o,c·M+m] = Σ_taps x[n, tap(o), c]·K[tap,c,m]
// for the samples [n0, n1).
func depthwiseForward(w window, x []float32, n0, n1, ch, mult int, k, z []float32) {
	cm := ch * mult
	for n := n0; n < n1; n++ {
		xs := x[n*w.inH*w.inW*ch:]
		for oh := 0; oh < w.outH; oh++ {
			for ow := 0; ow < w.outW; ow++ {
				zr := z[((n*w.outH+oh)*w.outW+ow)*cm:][:cm]
				clear(zr)
				for i := 0; i < w.kh; i++ {
					h := oh*w.sh + i*w.dh - w.padT
					if h < 0 || h >= w.inH {
						continue
					}
					for j := 0; j < w.kw; j++ {
						v := ow*w.sw + j*w.dw - w.padL
						if v < 0 || v >= w.inW {
							continue
						}
						xr := xs[(h*w.inW+v)*ch:][:ch]
						kr := k[(i*w.kw+j)*cm:][:cm]
						if mult == 1 {
							for c, xv := range xr {
								zr[c] += xv * kr[c]
							}
							continue
						}
						for c, xv := range xr {
							for m := c * mult; m < (c+1)*mult; m++ {
								zr[m] += xv * kr[m]
							}
						}
					}
				}
			}
		}
	}
}

// depthwiseBackward adds ∂L/∂K into dk (if not nil) and sets dx (if not
// nil) from dz, for the samples [n0, n1).
func depthwiseBackward(w window, x, dz []float32, n0, n1, ch, mult int, k, dk, dx []float32) {
	if dx != nil {
		clear(dx[n0*w.inH*w.inW*ch : n1*w.inH*w.inW*ch])
	}
	cm := ch * mult
	for n := n0; n < n1; n++ {
		base := n * w.inH * w.inW * ch
		for oh := 0; oh < w.outH; oh++ {
			for ow := 0; ow < w.outW; ow++ {
				gr := dz[((n*w.outH+oh)*w.outW+ow)*cm:][:cm]
				for i := 0; i < w.kh; i++ {
					h := oh*w.sh + i*w.dh - w.padT
					if h < 0 || h >= w.inH {
						continue
					}
					for j := 0; j < w.kw; j++ {
						v := ow*w.sw + j*w.dw - w.padL
						if v < 0 || v >= w.inW {
							continue
						}
						o := base + (h*w.inW+v)*ch
						xr := x[o:][:ch]
						t := (i*w.kw + j) * cm
						if dk != nil {
							kr := dk[t:][:cm]
							for c, xv := range xr {
								for m := c * mult; m < (c+1)*mult; m++ {
									kr[m] += xv * gr[m]
								}
							}
						}
						if dx != nil {
							kr := k[t:][:cm]
							xr := dx[o:][:ch]
							for c := range xr {
								var s float32
								for m := c * mult; m < (c+1)*mult; m++ {
									s += kr[m] * gr[m]
								}
								xr[c] += s
							}
						}
					}
				}
			}
		}
	}
}

// String names the window for test names.
func (w window) String() string {
	return fmt.Sprintf("%dx%d→%dx%d k%dx%d s%dx%d d%dx%d pad%d,%d", w.inH, w.inW, w.outH, w.outW, w.kh, w.kw, w.sh, w.sw, w.dh, w.dw, w.padT, w.padL)
}
