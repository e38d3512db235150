package gokernel

import "github.com/gophas/gophas/gokernel/internal/gemm"

// separableConv is Keras' SeparableConv1D and SeparableConv2D: a depthwise
// convolution (depthwise_kernel D of shape (kh, kw, C, M), the layer's
// window, no bias) then a pointwise one (pointwise_kernel P of shape
// (1, 1, C·M, F), stride 1) with the bias and activation:
//
//	u = depthwise(x, D)   (see depthwiseConv)
//	z = u·P + b,  y = act(z)
//
// Backward, with dz = act'(z)⊙dy: dP += uᵀ·dz, db += Σ dz, du = dz·Pᵀ,
// then the depthwise backward pass from du.
type separableConv struct {
	win           windowArgs
	mult, filters int
	pointInit     initSpec
	pointReg      regSpec
	convCommon    // the depthwise kernel as "kernel"
}

func separableParser(rank int) layerParser {
	return func(c *obj) (Layer, error) {
		l := &separableConv{}
		var err error
		if l.win, err = parseWindowArgs(c, rank, "kernel_size", false, true, "valid", "same"); err != nil {
			return nil, err
		}
		if l.mult, err = depthMultiplier(c); err != nil {
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
		if l.pointInit, err = parseInit(c, "pointwise_initializer", "glorot_uniform"); err != nil {
			return nil, err
		}
		if l.pointReg, err = parseReg(c, "pointwise_regularizer"); err != nil {
			return nil, err
		}
		if err := refuse(c, "pointwise_constraint"); err != nil {
			return nil, err
		}
		return l, l.parseCommon(c, "depthwise")
	}
}

func (l *separableConv) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	w, err := newWindow(l.win, s[:len(s)-1])
	if err != nil {
		return nil, err
	}
	return [][]int{w.outShape(l.win.rank, l.filters)}, nil
}

func (l *separableConv) weights(in [][]int) []weightSpec {
	ch := lastDim(in[0])
	ones := make([]int, l.win.rank)
	for i := range ones {
		ones[i] = 1
	}
	ws := []weightSpec{
		{name: "depthwise_kernel", shape: append(append([]int(nil), l.win.size...), ch, l.mult), init: l.kernelInit, reg: l.kernelReg},
		{name: "pointwise_kernel", shape: append(ones, ch*l.mult, l.filters), init: l.pointInit, reg: l.pointReg},
	}
	if l.useBias {
		ws = append(ws, weightSpec{name: "bias", shape: []int{l.filters}, init: l.biasInit, reg: l.biasReg})
	}
	return ws
}

func (l *separableConv) forward(c *call) {
	w, _ := newWindow(l.win, c.in[0][:len(c.in[0])-1])
	ch := lastDim(c.in[0])
	cm := ch * l.mult
	r := c.rows * w.outH * w.outW
	u := c.buf(1, r*cm)
	c.depthwise(w, c.x[0], ch, l.mult, c.w[0], u)
	z := l.act.preact(c)
	var bias []float32
	if l.useBias {
		bias = c.w[2]
	}
	gemm.SgemmFused(c.threads, false, false, r, l.filters, cm, 1, u, cm, c.w[1], l.filters, 0, z, l.filters, c.epilogue(l.act, z, l.filters, 0, bias))
}

func (l *separableConv) backward(c *call) {
	w, _ := newWindow(l.win, c.in[0][:len(c.in[0])-1])
	ch := lastDim(c.in[0])
	cm := ch * l.mult
	r := c.rows * w.outH * w.outW
	var db []float32
	if l.useBias {
		db = c.dw[2]
	}
	dz := l.act.gradBias(c, l.filters, db)
	u := c.buf(1, r*cm)
	if c.dw[1] != nil {
		gemm.Sgemm(c.threads, true, false, cm, l.filters, r, 1, u, cm, dz, l.filters, 1, c.dw[1], l.filters)
	}
	if c.dw[0] == nil && c.dx[0] == nil {
		return
	}
	du := c.buf(2, r*cm)
	gemm.Sgemm(c.threads, false, true, r, cm, l.filters, 1, dz, l.filters, c.w[1], l.filters, 0, du, cm)
	c.depthwiseBack(w, c.x[0], du, ch, l.mult, c.w[0], c.dw[0], c.dx[0])
}
