package gokernel

import (
	"github.com/gophas/gophas/gokernel/internal/gemm"
	"github.com/gophas/gophas/gokernel/internal/vec"
)

// dense is Keras' Dense, on the last axis of an input of any rank. With the
// input viewed as a matrix x of r = rows·prod(shape[:-1]) rows of in values,
// kernel W (in, units) and bias b (units):
//
//	z = x·W + b,  y = f(z)
//
// and backward, from dy = ∂L/∂y:
//
//	dz = f'(z)⊙dy (softmax: row-wise),  dW += xᵀ·dz,  db += Σ_rows dz,  dx = dz·Wᵀ
//
// all three products with gemm.Sgemm.
type denseLayer struct {
	units                int
	act                  activation
	useBias              bool
	kernelInit, biasInit initSpec
	kernelReg, biasReg   regSpec
}

func parseDense(c *obj) (Layer, error) {
	l := &denseLayer{}
	units, ok, err := c.integer("units")
	if err != nil {
		return nil, err
	}
	if !ok || units < 1 {
		return nil, c.errf("units must be a positive integer")
	}
	l.units = int(units)
	if l.act, err = layerActivation(c); err != nil {
		return nil, err
	}
	if l.useBias, err = c.boolean("use_bias", true); err != nil {
		return nil, err
	}
	if l.kernelInit, err = parseInit(c, "kernel_initializer", "glorot_uniform"); err != nil {
		return nil, err
	}
	if l.biasInit, err = parseInit(c, "bias_initializer", "zeros"); err != nil {
		return nil, err
	}
	if l.kernelReg, err = parseReg(c, "kernel_regularizer"); err != nil {
		return nil, err
	}
	if l.biasReg, err = parseReg(c, "bias_regularizer"); err != nil {
		return nil, err
	}
	if err := refuse(c, "activity_regularizer", "kernel_constraint", "bias_constraint", "quantization_config", "lora_rank"); err != nil {
		return nil, err
	}
	c.ignore("lora_alpha") // meaningful only with lora_rank, which must be null
	return l, nil
}

func (l *denseLayer) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if len(s) == 0 {
		return nil, errorf("Dense needs an input with a feature axis")
	}
	out := append(append([]int(nil), s[:len(s)-1]...), l.units)
	return [][]int{out}, nil
}

func (l *denseLayer) weights(in [][]int) []weightSpec {
	n := in[0][len(in[0])-1]
	ws := []weightSpec{{name: "kernel", shape: []int{n, l.units}, init: l.kernelInit, reg: l.kernelReg}}
	if l.useBias {
		ws = append(ws, weightSpec{name: "bias", shape: []int{l.units}, init: l.biasInit, reg: l.biasReg})
	}
	return ws
}

func (l *denseLayer) forward(c *call) {
	in := c.in[0][len(c.in[0])-1]
	n := c.n(0)
	r := n / l.units
	z := l.act.preact(c)
	var bias []float32
	if l.useBias {
		bias = c.w[1]
	}
	// Bias and activation are applied by the product to each band of rows
	// it finishes.
	gemm.SgemmFused(c.threads, false, false, r, l.units, in, 1, c.x[0], in, c.w[0], l.units, 0, z, l.units, c.epilogue(l.act, z, l.units, 0, bias))
}

func (l *denseLayer) backward(c *call) {
	in := c.in[0][len(c.in[0])-1]
	n := c.n(0)
	r := n / l.units
	var db []float32
	if l.useBias {
		db = c.dw[1]
	}
	dz := l.act.gradBias(c, l.units, db)
	if c.dw[0] != nil {
		gemm.Sgemm(c.threads, true, false, in, l.units, r, 1, c.x[0], in, dz, l.units, 1, c.dw[0], l.units)
	}
	if c.dx[0] != nil {
		gemm.Sgemm(c.threads, false, true, r, in, l.units, 1, dz, l.units, c.w[0], l.units, 0, c.dx[0], in)
	}
}

// addBias adds b to every row of z.
func addBias(z, b []float32) {
	for r := 0; r < len(z); r += len(b) {
		zr := z[r : r+len(b)]
		for j, v := range b {
			zr[j] += v
		}
	}
}

// addColSum adds the column sums of the rows×len(db) block dz to db.
func addColSum(dz, db []float32) {
	vec.AddColSums(db, dz)
}

// outputMasks: Dense passes its input's mask on (Keras' supports_masking).
func (l *denseLayer) outputMasks([]bool) []int { return passMask(1) }
