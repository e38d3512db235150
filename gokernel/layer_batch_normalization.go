package gokernel

import (
	"encoding/json"
	"math"
)

// batchNorm is Keras' BatchNormalization over channel axis a (default the
// last): each channel c is normalized with statistics over the batch and
// every other axis, M values per channel. In training mode (and only when
// the layer is trainable, as in Keras) it uses the batch's statistics,
//
//	μ_c = Σ x / M,  σ²_c = Σ (x - μ_c)² / M  (biased),  r_c = 1/√(σ²_c + ε)
//	x̂ = (x - μ_c)·r_c,  y = γ_c x̂ + β_c
//
// and moves its statistics, the non-trainable weights moving_mean and
// moving_variance, towards them (momentum p):
//
//	moving_mean ← p·moving_mean + (1-p)·μ,  moving_variance ← p·moving_variance + (1-p)·σ²
//
// In inference mode, and in training mode for a frozen layer, μ and σ² are
// the moving statistics and stay put. Backward, with sums over a channel's
// M values:
//
//	training:  dx = γ_c r_c (dy - Σdy/M - x̂ Σ(dy x̂)/M)
//	inference: dx = γ_c r_c dy
//	dγ_c += Σ dy x̂,  dβ_c += Σ dy
//
// Weights in Keras' order: gamma (if scale), beta (if center), moving_mean,
// moving_variance. renorm and synchronized (cross-replica statistics) are
// refused.
type batchNorm struct {
	axis                int
	momentum, epsilon   float64
	center, scale       bool
	betaInit, gammaInit initSpec
	meanInit, varInit   initSpec
	betaReg, gammaReg   regSpec
}

func parseBatchNorm(c *obj) (Layer, error) {
	l := &batchNorm{}
	axes, list, err := axesArg(c, "axis", []int{-1})
	if err != nil {
		return nil, err
	}
	if list || len(axes) != 1 {
		return nil, c.errf("axis %v: want one integer", axes)
	}
	l.axis = axes[0]
	if l.momentum, err = c.num("momentum", 0.99); err != nil {
		return nil, err
	}
	if l.epsilon, err = c.num("epsilon", 1e-3); err != nil {
		return nil, err
	}
	if l.epsilon < 0 {
		return nil, c.errf("epsilon %v must not be negative", l.epsilon)
	}
	if l.center, err = c.boolean("center", true); err != nil {
		return nil, err
	}
	if l.scale, err = c.boolean("scale", true); err != nil {
		return nil, err
	}
	if l.betaInit, l.gammaInit, l.betaReg, l.gammaReg, err = affineArgs(c); err != nil {
		return nil, err
	}
	if l.meanInit, err = parseInit(c, "moving_mean_initializer", "zeros"); err != nil {
		return nil, err
	}
	if l.varInit, err = parseInit(c, "moving_variance_initializer", "ones"); err != nil {
		return nil, err
	}
	if err := c.mustBe("synchronized", "false"); err != nil {
		return nil, c.errf("synchronized true (statistics across replicas) is not supported")
	}
	renorm, err := c.boolean("renorm", false)
	if err != nil {
		return nil, err
	}
	if renorm {
		return nil, c.errf("renorm true (batch renormalization) is not supported")
	}
	// Without renorm, Keras ignores renorm_clipping and renorm_momentum.
	if r := c.get("renorm_clipping"); !isNull(r) && !jsonEqual(r, json.RawMessage("{}")) {
		return nil, c.errf("renorm_clipping %s is not supported (renorm is off)", short(r))
	}
	if _, err := c.num("renorm_momentum", 0.99); err != nil {
		return nil, err
	}
	return l, nil
}

// channelAxis resolves the axis against a sample of rank r.
func (l *batchNorm) channelAxis(r int) (int, error) {
	a, err := sampleAxes([]int{l.axis}, r)
	if err != nil {
		return 0, err
	}
	return a[0], nil
}

func (l *batchNorm) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if _, err := l.channelAxis(len(s)); err != nil {
		return nil, err
	}
	return [][]int{s}, nil
}

func (l *batchNorm) weights(in [][]int) []weightSpec {
	a, _ := l.channelAxis(len(in[0]))
	shape := []int{in[0][a]}
	var ws []weightSpec
	if l.scale {
		ws = append(ws, weightSpec{name: "gamma", shape: shape, init: l.gammaInit, reg: l.gammaReg})
	}
	if l.center {
		ws = append(ws, weightSpec{name: "beta", shape: shape, init: l.betaInit, reg: l.betaReg})
	}
	return append(ws,
		weightSpec{name: "moving_mean", shape: shape, init: l.meanInit, state: true},
		weightSpec{name: "moving_variance", shape: shape, init: l.varInit, state: true})
}

// bnState is a call's geometry (the batch seen as (outer, C, inner)) and
// its float64 accumulators, made at its first batch.
type bnState struct {
	ch, inner int
	sum, sq   []float64
}

func (l *batchNorm) state(c *call) *bnState {
	if s, ok := c.state.(*bnState); ok {
		return s
	}
	a, _ := l.channelAxis(len(c.in[0]))
	ch := c.in[0][a]
	s := &bnState{ch: ch, inner: prod(c.in[0][a+1:]), sum: make([]float64, ch), sq: make([]float64, ch)}
	c.state = s
	return s
}

// weightsOf returns γ, β (nil when absent) and the moving statistics.
func (l *batchNorm) weightsOf(w [][]float32) (gamma, beta, mm, mv []float32) {
	k := 0
	if l.scale {
		gamma = w[k]
		k++
	}
	if l.center {
		beta = w[k]
		k++
	}
	return gamma, beta, w[k], w[k+1]
}

// batchStats reports whether this pass normalizes with the batch's
// statistics.
func (l *batchNorm) batchStats(c *call) bool { return c.training && !c.frozen }

// channelSum sets acc_c = Σ (x - shift_c)^pow over channel c's values
// (pow 1 or 2; shift nil for 0): the batch is blocks of ch channels of
// inner values each.
func channelSum(x []float32, ch, inner int, shift []float32, pow int, acc []float64) {
	clear(acc)
	blk := ch * inner
	for b := 0; b < len(x); b += blk {
		xb := x[b : b+blk]
		if inner == 1 {
			switch {
			case pow == 1:
				for k, v := range xb {
					acc[k] += float64(v)
				}
			default:
				for k, v := range xb {
					d := float64(v) - float64(shift[k])
					acc[k] += d * d
				}
			}
			continue
		}
		for k := 0; k < ch; k++ {
			var s float64
			if pow == 1 {
				for _, v := range xb[k*inner : (k+1)*inner] {
					s += float64(v)
				}
			} else {
				m := float64(shift[k])
				for _, v := range xb[k*inner : (k+1)*inner] {
					d := float64(v) - m
					s += d * d
				}
			}
			acc[k] += s
		}
	}
}

func (l *batchNorm) forward(c *call) {
	st := l.state(c)
	ch, inner := st.ch, st.inner
	gamma, beta, mm, mv := l.weightsOf(c.w)
	mean, inv := c.buf(0, ch), c.buf(1, ch)
	scale, shift := c.buf(2, ch), c.buf(3, ch)
	x := c.x[0][:c.n(0)]
	if l.batchStats(c) {
		m := float64(len(x) / ch)
		channelSum(x, ch, inner, nil, 1, st.sum)
		for k := range mean {
			mean[k] = float32(st.sum[k] / m)
		}
		channelSum(x, ch, inner, mean, 2, st.sq)
		p, q := float32(l.momentum), float32(1-l.momentum)
		for k := range mean {
			v := st.sq[k] / m
			inv[k] = float32(1 / math.Sqrt(v+l.epsilon))
			mm[k] = mm[k]*p + mean[k]*q
			mv[k] = mv[k]*p + float32(v)*q
		}
	} else {
		copy(mean, mm)
		for k, v := range mv {
			inv[k] = float32(1 / math.Sqrt(float64(v)+l.epsilon))
		}
	}
	for k := range scale {
		s := inv[k]
		if gamma != nil {
			s *= gamma[k]
		}
		scale[k] = s
		shift[k] = -mean[k] * s
		if beta != nil {
			shift[k] += beta[k]
		}
	}
	applyChannelAffine(x, c.y[0], ch, inner, scale, shift)
}

// applyChannelAffine sets y = x·scale_c + shift_c per channel c.
func applyChannelAffine(x, y []float32, ch, inner int, scale, shift []float32) {
	blk := ch * inner
	for b := 0; b < len(x); b += blk {
		xb, yb := x[b:b+blk], y[b:b+blk]
		if inner == 1 {
			for k, v := range xb {
				yb[k] = v*scale[k] + shift[k]
			}
			continue
		}
		for k := 0; k < ch; k++ {
			s, t := scale[k], shift[k]
			ys := yb[k*inner : (k+1)*inner]
			for i, v := range xb[k*inner : (k+1)*inner] {
				ys[i] = v*s + t
			}
		}
	}
}

func (l *batchNorm) backward(c *call) {
	st := l.state(c)
	ch, inner := st.ch, st.inner
	gamma, _, _, _ := l.weightsOf(c.w)
	var dgamma, dbeta []float32
	k := 0
	if l.scale {
		dgamma = c.dw[k]
		k++
	}
	if l.center {
		dbeta = c.dw[k]
	}
	mean, inv, scale := c.buf(0, ch), c.buf(1, ch), c.buf(2, ch)
	x, dy := c.x[0][:c.n(0)], c.dy[0]
	m := float64(len(x) / ch)
	// sum: Σ dy; sq: Σ dy·x̂ per channel, one pass over the batch.
	clear(st.sum)
	clear(st.sq)
	blk := ch * inner
	for b := 0; b < len(x); b += blk {
		xb, db := x[b:b+blk], dy[b:b+blk]
		for k := 0; k < ch; k++ {
			mu, r := mean[k], float64(inv[k])
			var s, sx float64
			for i, v := range xb[k*inner : (k+1)*inner] {
				d := float64(db[k*inner+i])
				s += d
				sx += d * float64(v-mu)
			}
			st.sum[k] += s
			st.sq[k] += sx * r
		}
	}
	for k := 0; k < ch; k++ {
		if dgamma != nil {
			dgamma[k] += float32(st.sq[k])
		}
		if dbeta != nil {
			dbeta[k] += float32(st.sum[k])
		}
	}
	dx := c.dx[0]
	if dx == nil {
		return
	}
	if !l.batchStats(c) {
		applyChannelAffine(dy, dx, ch, inner, scale, zeroBuf(c, 4, ch))
		return
	}
	// dx = a_c·dy + b_c + d_c·(x - μ_c) with a_c = γ_c r_c,
	// b_c = -a_c Σdy/M, d_c = -a_c r_c Σ(dy x̂)/M.
	a, bb, d := c.buf(5, ch), c.buf(6, ch), c.buf(7, ch)
	for k := 0; k < ch; k++ {
		g := float64(inv[k])
		if gamma != nil {
			g *= float64(gamma[k])
		}
		sdx := st.sq[k] / m
		a[k] = float32(g)
		d[k] = float32(-g * float64(inv[k]) * sdx)
		bb[k] = float32(-g * st.sum[k] / m)
	}
	for b := 0; b < len(x); b += blk {
		xb, db, dxb := x[b:b+blk], dy[b:b+blk], dx[b:b+blk]
		if inner == 1 {
			for k, v := range xb {
				dxb[k] = a[k]*db[k] + bb[k] + d[k]*(v-mean[k])
			}
			continue
		}
		for k := 0; k < ch; k++ {
			ak, bk, dk, mu := a[k], bb[k], d[k], mean[k]
			ds := db[k*inner : (k+1)*inner]
			for i, v := range xb[k*inner : (k+1)*inner] {
				dxb[k*inner+i] = ak*ds[i] + bk + dk*(v-mu)
			}
		}
	}
}

// zeroBuf returns the call's buffer i of n zeros.
func zeroBuf(c *call, i, n int) []float32 {
	z := c.buf(i, n)
	clear(z)
	return z
}

// outputMasks: BatchNormalization passes its input's mask on (Keras' supports_masking).
func (l *batchNorm) outputMasks([]bool) []int { return passMask(1) }

// checkMasks refuses a masked input: Keras' BatchNormalization computes
// its batch statistics over the unmasked positions only, which this layer
// does not.
func (l *batchNorm) checkMasks(masked []bool) error {
	if masked[0] {
		return errorf("a masked input (from Embedding(mask_zero=True) or Masking) to BatchNormalization is not supported (its statistics would have to skip the masked steps)")
	}
	return nil
}
