package gokernel

import (
	"fmt"
	"math"

	"github.com/gophas/gophas/gokernel/internal/gemm"
)

// attention is Keras' Attention (and, with additive, AdditiveAttention,
// layer_additive_attention.go): for each sample, a query q (Tq, d), a
// value v (Tv, dv) and a key k (Tv, d) (the value when not given),
//
//	dot       s_ij = a · q_i·k_j                          (a = scale, or 1)
//	concat    s_ij = w · Σ_d tanh(a·(q_id + k_jd))        (w = concat_score_weight)
//	additive  s_ij = Σ_d c_d · tanh(q_id + k_jd)          (c = scale, or ones)
//	s_ij -= 1e9 where the value's mask (or, with use_causal_mask, j > i) masks j
//	p_i = softmax(s_i),  y_i = Σ_j p_ij v_j,   y_i = 0 where the query's mask masks i
//
// Dropout (training only) drops attention weights p_ij (scaled by
// 1/(1-rate)) with the call's random stream. The output carries the
// query's mask. The matrix products run per sample (gemm).
//
// Backward, from dy: dp = dy·vᵀ, dv = pᵀ·dy, ds = p ⊙ (dp - Σ_j dp⊙p), then
// through the score function (dot: dq = a·ds·k, dk = a·dsᵀ·q, da =
// Σ ds⊙q·kᵀ; the tanh forms elementwise over (i, j, d)).
type attention struct {
	mode     string // "dot", "concat", "additive"
	useScale bool
	dropout  float64
	seedArg  int64
	hasSeed  bool
	causal   bool // per call: use_causal_mask
}

func parseAttention(c *obj) (Layer, error) {
	l := &attention{}
	var err error
	if l.useScale, err = c.boolean("use_scale", false); err != nil {
		return nil, err
	}
	if l.mode, err = c.str("score_mode", "dot"); err != nil {
		return nil, err
	}
	if l.mode != "dot" && l.mode != "concat" {
		return nil, c.errf("score_mode %q is not supported (dot, concat are)", l.mode)
	}
	return l, l.parseDropout(c)
}

func (l *attention) parseDropout(c *obj) error {
	var err error
	if l.dropout, err = c.num("dropout", 0); err != nil {
		return err
	}
	if l.dropout < 0 || l.dropout >= 1 {
		return c.errf("dropout %v must be in [0, 1)", l.dropout)
	}
	l.seedArg, l.hasSeed, err = c.integer("seed")
	return err
}

func (l *attention) seed() (int64, bool) { return l.seedArg, l.hasSeed }

// withKwargs reads use_causal_mask; return_attention_scores must be
// false.
func (l *attention) withKwargs(k *kwargs) (Layer, error) {
	causal, err := k.boolean("use_causal_mask", false)
	if err != nil {
		return nil, err
	}
	if err := k.mustBe("return_attention_scores", "false"); err != nil {
		return nil, err
	}
	cp := *l
	cp.causal = causal
	return &cp, nil
}

func (l *attention) outputShapes(in [][]int) ([][]int, error) {
	if len(in) != 2 && len(in) != 3 {
		return nil, fmt.Errorf("takes [query, value] or [query, value, key], got %d tensors", len(in))
	}
	for _, s := range in {
		if len(s) != 2 {
			return nil, fmt.Errorf("takes tensors of shape (batch, steps, dim), got %s", shapesStr(in))
		}
	}
	q, v := in[0], in[1]
	k := v
	if len(in) == 3 {
		k = in[2]
	}
	if k[0] != v[0] || k[1] != q[1] {
		return nil, fmt.Errorf("the key %s must have the value's steps and the query's dim (query %s, value %s)", shapeStr(k), shapeStr(q), shapeStr(v))
	}
	return [][]int{{q[0], v[1]}}, nil
}

func (l *attention) weights(in [][]int) []weightSpec {
	var ws []weightSpec
	one := initSpec{kind: "constant", value: 1, kerasName: "ones"}
	switch {
	case l.mode == "additive" && l.useScale:
		ws = append(ws, weightSpec{name: "scale", shape: []int{in[0][1]}, init: initDefaults["glorot_uniform"]})
	case l.useScale:
		ws = append(ws, weightSpec{name: "scale", shape: []int{}, init: one})
	}
	if l.mode == "concat" {
		ws = append(ws, weightSpec{name: "concat_score_weight", shape: []int{}, init: one})
	}
	return ws
}

// outputMasks: the output carries the query's mask.
func (l *attention) outputMasks([]bool) []int { return []int{0} }

// attnState keeps the softmax weights (and what the score function's
// backward needs) between the passes.
type attnState struct {
	p, drop, raw, th []float32 // p (rows, Tq, Tv); drop the dropout mask; raw q·kᵀ (dot); th tanh values (rows, Tq, Tv, d)
	dp, dq, dk       []float32
}

func (l *attention) dims(c *call) (Tq, Tv, d, dv int) {
	return c.in[0][0], c.in[1][0], c.in[0][1], c.in[1][1]
}

// key returns the key input's index (the value when not given).
func (l *attention) key(c *call) int {
	if len(c.x) == 3 {
		return 2
	}
	return 1
}

func (l *attention) forward(c *call) {
	st, ok := c.state.(*attnState)
	if !ok {
		st = &attnState{}
		c.state = st
	}
	Tq, Tv, d, dv := l.dims(c)
	B := c.rows
	q, v, k := c.x[0], c.x[1], c.x[l.key(c)]
	st.p = grow32(st.p, B*Tq*Tv)
	s := st.p // the scores, then the weights, in place
	switch l.mode {
	case "dot":
		st.raw = grow32(st.raw, B*Tq*Tv)
		for b := 0; b < B; b++ {
			gemm.Sgemm(c.threads, false, true, Tq, Tv, d, 1, q[b*Tq*d:], d, k[b*Tv*d:], d, 0, st.raw[b*Tq*Tv:], Tv)
		}
		a := float32(1)
		if l.useScale {
			a = c.w[0][0]
		}
		for i, r := range st.raw[:B*Tq*Tv] {
			s[i] = a * r
		}
	default:
		st.th = grow32(st.th, B*Tq*Tv*d)
		a, w := float32(1), float32(1)
		var cs []float32
		switch {
		case l.mode == "additive" && l.useScale:
			cs = c.w[0]
		case l.mode == "concat" && l.useScale:
			a, w = c.w[0][0], c.w[1][0]
		case l.mode == "concat":
			w = c.w[0][0]
		}
		for b := 0; b < B; b++ {
			for i := 0; i < Tq; i++ {
				qi := q[(b*Tq+i)*d : (b*Tq+i+1)*d]
				for j := 0; j < Tv; j++ {
					kj := k[(b*Tv+j)*d : (b*Tv+j+1)*d]
					th := st.th[((b*Tq+i)*Tv+j)*d : ((b*Tq+i)*Tv+j+1)*d]
					var sum float32
					for e := range th {
						t := float32(math.Tanh(float64(a * (qi[e] + kj[e]))))
						th[e] = t
						if cs != nil {
							t *= cs[e]
						}
						sum += t
					}
					s[(b*Tq+i)*Tv+j] = w * sum
				}
			}
		}
	}
	vm := c.mask[1]
	for b := 0; b < B; b++ {
		for i := 0; i < Tq; i++ {
			row := s[(b*Tq+i)*Tv : (b*Tq+i+1)*Tv]
			for j := range row {
				if (vm != nil && !vm[b*Tv+j]) || (l.causal && j > i) {
					row[j] -= 1e9
				}
			}
		}
	}
	softmaxRows(s[:B*Tq*Tv], s[:B*Tq*Tv], Tv)
	p := st.p[:B*Tq*Tv]
	if c.training && l.dropout > 0 {
		st.drop = grow32(st.drop, len(p))
		if !c.replay {
			drawMask(st.drop, l.dropout, c.rng)
		}
		// Keep p for backward; y uses p⊙drop, built in dq's buffer.
		st.dq = grow32(st.dq, len(p))
		for i, v := range p {
			st.dq[i] = v * st.drop[i]
		}
		p = st.dq[:len(p)]
	}
	y := c.y[0]
	for b := 0; b < B; b++ {
		gemm.Sgemm(c.threads, false, false, Tq, dv, Tv, 1, p[b*Tq*Tv:], Tv, v[b*Tv*dv:], dv, 0, y[b*Tq*dv:], dv)
	}
	if qm := c.mask[0]; qm != nil {
		for i, ok := range qm[:B*Tq] {
			if !ok {
				clear(y[i*dv : (i+1)*dv])
			}
		}
	}
}

func (l *attention) backward(c *call) {
	st := c.state.(*attnState)
	Tq, Tv, d, dv := l.dims(c)
	B := c.rows
	q, v, k := c.x[0], c.x[1], c.x[l.key(c)]
	dy := c.dy[0]
	if qm := c.mask[0]; qm != nil {
		for i, ok := range qm[:B*Tq] {
			if !ok {
				clear(dy[i*dv : (i+1)*dv])
			}
		}
	}
	p := st.p[:B*Tq*Tv]
	pd := p // the weights y used
	drop := c.training && l.dropout > 0
	if drop {
		pd = st.dq[:len(p)]
	}
	// dv = pdᵀ·dy (before dq's buffer is reused).
	dvb := c.dx[1]
	if dvb != nil {
		for b := 0; b < B; b++ {
			gemm.Sgemm(c.threads, true, false, Tv, dv, Tq, 1, pd[b*Tq*Tv:], Tv, dy[b*Tq*dv:], dv, 0, dvb[b*Tv*dv:], dv)
		}
	}
	st.dp = grow32(st.dp, len(p))
	dp := st.dp
	for b := 0; b < B; b++ {
		gemm.Sgemm(c.threads, false, true, Tq, Tv, dv, 1, dy[b*Tq*dv:], dv, v[b*Tv*dv:], dv, 0, dp[b*Tq*Tv:], Tv)
	}
	if drop {
		for i := range dp[:len(p)] {
			dp[i] *= st.drop[i]
		}
	}
	// ds = p ⊙ (dp - Σ_j dp⊙p), in dp.
	for r := 0; r < B*Tq; r++ {
		pr, dr := p[r*Tv:(r+1)*Tv], dp[r*Tv:(r+1)*Tv]
		var dot float64
		for j, v := range pr {
			dot += float64(v) * float64(dr[j])
		}
		for j, v := range pr {
			dr[j] = float32(float64(v) * (float64(dr[j]) - dot))
		}
	}
	ds := dp[:len(p)]
	ki := l.key(c)
	dq := c.dx[0]
	dk := c.dx[ki]
	if ki == 1 && dk != nil {
		// The key is the value: its gradient adds to dv.
		st.dk = grow32(st.dk, B*Tv*d)
		dk = st.dk
	}
	switch l.mode {
	case "dot":
		a := float32(1)
		if l.useScale {
			a = c.w[0][0]
			if c.dw[0] != nil {
				var g float64
				for i, v := range ds {
					g += float64(v) * float64(st.raw[i])
				}
				c.dw[0][0] += float32(g)
			}
		}
		for b := 0; b < B; b++ {
			if dq != nil {
				gemm.Sgemm(c.threads, false, false, Tq, d, Tv, a, ds[b*Tq*Tv:], Tv, k[b*Tv*d:], d, 0, dq[b*Tq*d:], d)
			}
			if dk != nil {
				gemm.Sgemm(c.threads, true, false, Tv, d, Tq, a, ds[b*Tq*Tv:], Tv, q[b*Tq*d:], d, 0, dk[b*Tv*d:], d)
			}
		}
	default:
		l.backTanh(c, st, ds, dq, dk)
	}
	if ki == 1 && dvb != nil && dk != nil {
		for i, g := range dk[:B*Tv*d] {
			dvb[i] += g
		}
	}
}

// backTanh is the backward pass of the concat and additive scores.
func (l *attention) backTanh(c *call, st *attnState, ds, dq, dk []float32) {
	Tq, Tv, d, _ := l.dims(c)
	B := c.rows
	q, k := c.x[0], c.x[l.key(c)]
	a, w := float32(1), float32(1)
	var cs, dcs []float32
	var da, dw *float32
	switch {
	case l.mode == "additive" && l.useScale:
		cs, dcs = c.w[0], c.dw[0]
	case l.mode == "concat" && l.useScale:
		a, w = c.w[0][0], c.w[1][0]
		if c.dw[0] != nil {
			da, dw = &c.dw[0][0], &c.dw[1][0]
		}
	case l.mode == "concat":
		w = c.w[0][0]
		if c.dw[0] != nil {
			dw = &c.dw[0][0]
		}
	}
	if dq != nil {
		clear(dq[:B*Tq*d])
	}
	if dk != nil {
		clear(dk[:B*Tv*d])
	}
	var gda, gdw float64
	for b := 0; b < B; b++ {
		for i := 0; i < Tq; i++ {
			qi := q[(b*Tq+i)*d : (b*Tq+i+1)*d]
			for j := 0; j < Tv; j++ {
				g := ds[(b*Tq+i)*Tv+j]
				kj := k[(b*Tv+j)*d : (b*Tv+j+1)*d]
				th := st.th[((b*Tq+i)*Tv+j)*d : ((b*Tq+i)*Tv+j+1)*d]
				var sum float64
				for e, t := range th {
					ce := float32(1)
					if cs != nil {
						ce = cs[e]
						if dcs != nil {
							dcs[e] += g * t
						}
					}
					sum += float64(t)
					gt := g * w * ce * (1 - t*t) // ∂L/∂ of tanh's argument / a
					if da != nil {
						gda += float64(gt) * float64(qi[e]+kj[e])
					}
					if dq != nil {
						dq[(b*Tq+i)*d+e] += a * gt
					}
					if dk != nil {
						dk[(b*Tv+j)*d+e] += a * gt
					}
				}
				gdw += float64(g) * sum
			}
		}
	}
	if da != nil {
		*da += float32(gda)
	}
	if dw != nil {
		*dw += float32(gdw)
	}
}
