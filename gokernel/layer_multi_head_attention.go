package gokernel

import (
	"encoding/json"
	"fmt"
	"math"
	"sync"

	"github.com/gophas/gophas/gokernel/internal/gemm"
)

// multiHeadAttention is Keras' MultiHeadAttention on sequences: a query
// (T, dq), a value (S, dv) and a key (S, dk) (the value when not given),
// with H heads of key_dim kd and value_dim vd:
//
//	Q = query·W_q + b_q   (T, H, kd)     K = key·W_k + b_k   (S, H, kd)
//	V = value·W_v + b_v   (S, H, vd)
//	s_h = Q_h·K_hᵀ / √kd                 (T, S) per head
//	p_h = softmax(s_h) over S, with masked pairs left out
//	O_h = p_h·V_h,  y = O·W_o + b_o      (T, output_shape or dq)
//
// A pair (i, j) is masked where the query's mask masks i, the value's or
// the key's mask masks j, use_causal_mask and j > i, or the attention_mask
// input (T, S) is 0. A row with every pair masked gets uniform weights,
// as Keras' dot_product_attention gives; with dropout > 0 Keras computes
// the weights with its Softmax layer instead, which gives such a row
// zeros, and so does this layer. Dropout (training only) drops weights
// with the call's random stream. The output carries the query's mask as
// the call sees it, and the call removes its query's, value's and key's
// masks (see maskEraser): Keras' MultiHeadAttention.call does.
//
// The projections are one matrix product each over all rows; the scores
// and the weighted sums one per sample and head (gemm, strided views, no
// copies).
type multiHeadAttention struct {
	heads, keyDim, valueDim int
	dropout                 float64
	useBias                 bool
	outShape                []int // nil: the query's last dim
	kernelInit, biasInit    initSpec
	kernelReg, biasReg      regSpec
	seedArg                 int64
	hasSeed                 bool
	// per call (withKwargs)
	bound           bool
	qi, vi, ki, ami int // inputs: query, value, key (-1: the value), attention_mask (-1: none)
	causal          bool
}

func parseMultiHeadAttention(c *obj) (Layer, error) {
	l := &multiHeadAttention{}
	pos := func(key string, p *int, def int64) error {
		v, ok, err := c.integer(key)
		if err != nil {
			return err
		}
		if !ok {
			v = def
		}
		if v < 1 {
			return c.errf("%s must be a positive integer", key)
		}
		*p = int(v)
		return nil
	}
	if err := pos("num_heads", &l.heads, 0); err != nil {
		return nil, err
	}
	if err := pos("key_dim", &l.keyDim, 0); err != nil {
		return nil, err
	}
	if err := pos("value_dim", &l.valueDim, int64(l.keyDim)); err != nil {
		return nil, err
	}
	var err error
	if l.dropout, err = c.num("dropout", 0); err != nil {
		return nil, err
	}
	if l.dropout < 0 || l.dropout >= 1 {
		return nil, c.errf("dropout %v must be in [0, 1)", l.dropout)
	}
	if l.useBias, err = c.boolean("use_bias", true); err != nil {
		return nil, err
	}
	if r := c.get("output_shape"); !isNull(r) {
		var v any
		if json.Unmarshal(r, &v) != nil {
			return nil, c.errf("output_shape: want an integer or a list of them, got %s", short(r))
		}
		l2, ok := v.([]any)
		if !ok {
			l2 = []any{v}
		}
		for _, e := range l2 {
			f, ok := e.(float64)
			if !ok || f < 1 || f != math.Trunc(f) {
				return nil, c.errf("output_shape: want positive integers, got %s", short(r))
			}
			l.outShape = append(l.outShape, int(f))
		}
	}
	if r := c.get("attention_axes"); !isNull(r) {
		var v any
		_ = json.Unmarshal(r, &v)
		l2, ok := v.([]any)
		if !ok {
			l2 = []any{v}
		}
		// On (batch, steps, dim) inputs the projected tensors have rank 4
		// and the default attention axis is 1 (-2).
		if len(l2) != 1 || (l2[0] != 1.0 && l2[0] != -2.0) {
			return nil, c.errf("attention_axes %s is not supported (the default, attention over the steps of (batch, steps, dim) inputs, is)", short(r))
		}
	}
	if err := c.mustBe("use_gate", "false"); err != nil {
		return nil, err
	}
	if err := c.mustBe("flash_attention", "false"); err != nil {
		return nil, err
	}
	if err := refuse(c, "sliding_window", "activity_regularizer", "kernel_constraint", "bias_constraint"); err != nil {
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
	if l.seedArg, l.hasSeed, err = c.integer("seed"); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *multiHeadAttention) seed() (int64, bool) { return l.seedArg, l.hasSeed }

// withKwargs reads the call's tensors given by name (query, value, key,
// attention_mask), use_causal_mask and the masks Keras recorded for the
// value and key (the query's mask is always the one it carries when the
// call runs: Keras' call reads it from the tensor).
func (l *multiHeadAttention) withKwargs(k *kwargs) (Layer, error) {
	cp := *l
	cp.bound = true
	p := len(k.site.refs)
	if p > 3 {
		return nil, k.errf("takes query, value and key as positional arguments, got %d", p)
	}
	idx := func(name string, at int) (int, error) {
		if p > at {
			return at, nil
		}
		return k.tensor(name)
	}
	var err error
	if cp.qi, err = idx("query", 0); err != nil {
		return nil, err
	}
	if cp.vi, err = idx("value", 1); err != nil {
		return nil, err
	}
	if cp.ki, err = idx("key", 2); err != nil {
		return nil, err
	}
	if cp.qi < 0 || cp.vi < 0 {
		return nil, k.errf("the call needs a query and a value")
	}
	if cp.ami, err = k.tensor("attention_mask"); err != nil {
		return nil, err
	}
	if cp.causal, err = k.boolean("use_causal_mask", false); err != nil {
		return nil, err
	}
	if err := k.mustBe("return_attention_scores", "false"); err != nil {
		return nil, err
	}
	k.get("query_mask")
	if err := k.maskFor("value_mask", cp.vi); err != nil {
		return nil, err
	}
	if cp.ki >= 0 {
		if err := k.maskFor("key_mask", cp.ki); err != nil {
			return nil, err
		}
	} else if err := k.mustBe("key_mask"); err != nil {
		return nil, err
	}
	return &cp, nil
}

// inputs returns the indices of the call's inputs, for n input tensors.
func (l *multiHeadAttention) inputs(n int) (q, v, k, am int) {
	if l.bound {
		return l.qi, l.vi, l.ki, l.ami
	}
	if n == 3 {
		return 0, 1, 2, -1
	}
	return 0, 1, -1, -1
}

func (l *multiHeadAttention) keyShape(in [][]int) []int {
	_, v, k, _ := l.inputs(len(in))
	if k >= 0 {
		return in[k]
	}
	return in[v]
}

func (l *multiHeadAttention) outDims(in [][]int) []int {
	if l.outShape != nil {
		return l.outShape
	}
	q, _, _, _ := l.inputs(len(in))
	return []int{in[q][len(in[q])-1]}
}

func (l *multiHeadAttention) outputShapes(in [][]int) ([][]int, error) {
	q, v, k, am := l.inputs(len(in))
	want := 2
	if k >= 0 {
		want++
	}
	if am >= 0 {
		want++
	}
	if len(in) != want || len(in) < 2 {
		return nil, fmt.Errorf("takes a query, a value and optionally a key and an attention_mask, got %d tensors", len(in))
	}
	for _, i := range []int{q, v, k} {
		if i >= 0 && len(in[i]) != 2 {
			return nil, fmt.Errorf("takes query, value and key of shape (batch, steps, dim), got %s", shapesStr(in))
		}
	}
	ks := l.keyShape(in)
	if ks[0] != in[v][0] {
		return nil, fmt.Errorf("the key %s and the value %s must have the same steps", shapeStr(ks), shapeStr(in[v]))
	}
	if am >= 0 && (len(in[am]) != 2 || in[am][0] != in[q][0] || in[am][1] != in[v][0]) {
		return nil, fmt.Errorf("attention_mask %s: want (batch, %d, %d)", shapeStr(in[am]), in[q][0], in[v][0])
	}
	return [][]int{append([]int{in[q][0]}, l.outDims(in)...)}, nil
}

func (l *multiHeadAttention) weights(in [][]int) []weightSpec {
	q, v, _, _ := l.inputs(len(in))
	H, kd, vd := l.heads, l.keyDim, l.valueDim
	proj := func(name string, dim, width int) []weightSpec {
		ws := []weightSpec{{name: name + "/kernel", shape: []int{dim, H, width}, init: l.kernelInit, reg: l.kernelReg}}
		if l.useBias {
			ws = append(ws, weightSpec{name: name + "/bias", shape: []int{H, width}, init: l.biasInit, reg: l.biasReg})
		}
		return ws
	}
	ws := proj("query", in[q][1], kd)
	ws = append(ws, proj("key", l.keyShape(in)[1], kd)...)
	ws = append(ws, proj("value", in[v][1], vd)...)
	od := l.outDims(in)
	ws = append(ws, weightSpec{name: "attention_output/kernel", shape: append([]int{H, vd}, od...), init: l.kernelInit, reg: l.kernelReg})
	if l.useBias {
		ws = append(ws, weightSpec{name: "attention_output/bias", shape: append([]int(nil), od...), init: l.biasInit, reg: l.biasReg})
	}
	return ws
}

// outputMasks: the output carries the query's mask.
func (l *multiHeadAttention) outputMasks(masked []bool) []int {
	q, _, _, _ := l.inputs(len(masked))
	return []int{q}
}

func (l *multiHeadAttention) erasesMasks(inputs int) []int {
	q, v, k, _ := l.inputs(inputs)
	out := []int{q, v}
	if k >= 0 {
		out = append(out, k)
	}
	return out
}

// mhaState keeps a call's projections and weights between the passes.
type mhaState struct {
	q, k, v, p, pd, o []float32 // Q (B,T,H,kd), K, V (B,S,H,·), p (B,H,T,S), pd p⊙dropout, O (B,T,H,vd)
	drop              []float32
	mask              []bool // (B,T,S): the pair takes part; nil: all do
	dq, dk, dv, do    []float32
	dp                []float32
	dropped           bool // this pass drops weights (pd, drop)
	job               mhaJob
	wg                sync.WaitGroup
}

// mhaDims are the sizes of a call.
type mhaDims struct {
	B, T, S, dq, dk, dv, od, H, kd, vd int
	qi, vi, ki, ami                    int
	w                                  struct{ q, bq, k, bk, v, bv, o, bo int } // weight indices (-1: none)
}

func (l *multiHeadAttention) dims(c *call) mhaDims {
	var d mhaDims
	d.qi, d.vi, d.ki, d.ami = l.inputs(len(c.in))
	ks := l.keyShape(c.in)
	d.B, d.T, d.S = c.rows, c.in[d.qi][0], c.in[d.vi][0]
	d.dq, d.dk, d.dv = c.in[d.qi][1], ks[1], c.in[d.vi][1]
	d.od, d.H, d.kd, d.vd = prod(l.outDims(c.in)), l.heads, l.keyDim, l.valueDim
	i := 0
	next := func(bias bool) int {
		if bias && !l.useBias {
			return -1
		}
		i++
		return i - 1
	}
	d.w.q, d.w.bq, d.w.k, d.w.bk = next(false), next(true), next(false), next(true)
	d.w.v, d.w.bv, d.w.o, d.w.bo = next(false), next(true), next(false), next(true)
	return d
}

// project sets out = x·W (+ b) over all rows.
func project(threads, rows, in, width int, x, w []float32, b []float32, out []float32) {
	gemm.Sgemm(threads, false, false, rows, width, in, 1, x, in, w, width, 0, out, width)
	if b != nil {
		addBias(out, b)
	}
}

func (l *multiHeadAttention) forward(c *call) {
	st, ok := c.state.(*mhaState)
	if !ok {
		st = &mhaState{}
		c.state = st
	}
	d := l.dims(c)
	B, T, S, H, kd, vd := d.B, d.T, d.S, d.H, d.kd, d.vd
	bias := func(i int) []float32 {
		if i < 0 {
			return nil
		}
		return c.w[i]
	}
	key := c.x[d.vi]
	if d.ki >= 0 {
		key = c.x[d.ki]
	}
	st.q, st.k, st.v = grow32(st.q, B*T*H*kd), grow32(st.k, B*S*H*kd), grow32(st.v, B*S*H*vd)
	project(c.threads, B*T, d.dq, H*kd, c.x[d.qi], c.w[d.w.q], bias(d.w.bq), st.q)
	project(c.threads, B*S, d.dk, H*kd, key, c.w[d.w.k], bias(d.w.bk), st.k)
	project(c.threads, B*S, d.dv, H*vd, c.x[d.vi], c.w[d.w.v], bias(d.w.bv), st.v)
	l.pairMask(c, st, d)
	st.p, st.o = grow32(st.p, B*H*T*S), grow32(st.o, B*T*H*vd)
	st.dropped = c.training && l.dropout > 0
	if st.dropped {
		st.drop, st.pd = grow32(st.drop, len(st.p)), grow32(st.pd, len(st.p))
		if !c.replay {
			drawMask(st.drop, l.dropout, c.rng)
		}
	}
	st.job = mhaJob{l: l, st: st, d: d}
	parallelFor(c.threads, B*H, B*H*T*S*(kd+vd), &st.job, &st.wg)
	project(c.threads, B*T, H*vd, d.od, st.o, c.w[d.w.o], bias(d.w.bo), c.y[0])
}

// mhaJob runs the attention of (sample, head) pairs [lo, hi), b·H + h: in
// forward the scores, the weights and the weighted sums, in backward
// their gradients; each pair's products are small and single-threaded,
// the pairs split over the call's threads.
type mhaJob struct {
	l    *multiHeadAttention
	st   *mhaState
	d    mhaDims
	back bool
}

func (j *mhaJob) runRange(lo, hi int) {
	for p := lo; p < hi; p++ {
		if j.back {
			j.l.pairBackward(j.st, j.d, p/j.d.H, p%j.d.H)
		} else {
			j.l.pairForward(j.st, j.d, p/j.d.H, p%j.d.H)
		}
	}
}

// pairForward computes head h of sample b: its scores, weights (with
// dropout: st.pd) and weighted sum.
func (l *multiHeadAttention) pairForward(st *mhaState, d mhaDims, b, h int) {
	T, S, H, kd, vd := d.T, d.S, d.H, d.kd, d.vd
	scale := float32(1 / math.Sqrt(float64(kd)))
	p := st.p[(b*H+h)*T*S : (b*H+h+1)*T*S]
	gemm.Sgemm(1, false, true, T, S, kd, scale, st.q[b*T*H*kd+h*kd:], H*kd, st.k[b*S*H*kd+h*kd:], H*kd, 0, p, S)
	l.softmax(st, d, b, p)
	pd := p
	if st.dropped {
		pd = st.pd[(b*H+h)*T*S : (b*H+h+1)*T*S]
		for i, v := range p {
			pd[i] = v * st.drop[(b*H+h)*T*S+i]
		}
	}
	gemm.Sgemm(1, false, false, T, vd, S, 1, pd, S, st.v[b*S*H*vd+h*vd:], H*vd, 0, st.o[b*T*H*vd+h*vd:], H*vd)
}

// pairMask sets st.mask: which pairs (i, j) take part, or nil for all.
func (l *multiHeadAttention) pairMask(c *call, st *mhaState, d mhaDims) {
	qm, vm := c.mask[d.qi], c.mask[d.vi]
	var km []bool
	if d.ki >= 0 {
		km = c.mask[d.ki]
	}
	var am []float32
	if d.ami >= 0 {
		am = c.x[d.ami]
	}
	if qm == nil && vm == nil && km == nil && am == nil && !l.causal {
		st.mask = nil
		return
	}
	B, T, S := d.B, d.T, d.S
	if cap(st.mask) < B*T*S {
		st.mask = make([]bool, B*T*S)
	}
	st.mask = st.mask[:B*T*S]
	for b := 0; b < B; b++ {
		for i := 0; i < T; i++ {
			for j := 0; j < S; j++ {
				ok := (qm == nil || qm[b*T+i]) && (vm == nil || vm[b*S+j]) && (km == nil || km[b*S+j]) &&
					(am == nil || am[(b*T+i)*S+j] != 0) && (!l.causal || j <= i)
				st.mask[(b*T+i)*S+j] = ok
			}
		}
	}
}

// softmax turns the scores p (T, S) of one head of sample b into
// weights, row by row, leaving out the masked pairs: Keras'
// dot_product_attention (dropout 0) sets their scores to -0.7·MaxFloat32,
// its Softmax layer (dropout > 0) to -1e9 and zeroes their weights after.
func (l *multiHeadAttention) softmax(st *mhaState, d mhaDims, b int, p []float32) {
	T, S := d.T, d.S
	var m []bool
	if st.mask != nil {
		m = st.mask[b*T*S : (b+1)*T*S]
		low := float32(-0.7 * math.MaxFloat32)
		if l.dropout > 0 {
			low = -1e9
		}
		for i, ok := range m {
			if !ok {
				p[i] = low
			}
		}
	}
	softmaxRows(p, p, S)
	if m != nil && l.dropout > 0 {
		for i, ok := range m {
			if !ok {
				p[i] = 0
			}
		}
	}
}

func (l *multiHeadAttention) backward(c *call) {
	st := c.state.(*mhaState)
	d := l.dims(c)
	B, T, S, H, kd, vd := d.B, d.T, d.S, d.H, d.kd, d.vd
	dy := c.dy[0]
	dwAdd := func(i int, x []float32, rows, in, width int, g []float32) {
		if i >= 0 && c.dw[i] != nil {
			gemm.Sgemm(c.threads, true, false, in, width, rows, 1, x, in, g, width, 1, c.dw[i], width)
		}
	}
	dbAdd := func(i int, g []float32) {
		if i >= 0 && c.dw[i] != nil {
			addColSum(g, c.dw[i])
		}
	}
	// The output projection.
	dwAdd(d.w.o, st.o, B*T, H*vd, d.od, dy)
	dbAdd(d.w.bo, dy)
	st.do = grow32(st.do, B*T*H*vd)
	gemm.Sgemm(c.threads, false, true, B*T, H*vd, d.od, 1, dy, d.od, c.w[d.w.o], d.od, 0, st.do, H*vd)
	// The weighted sums, the softmax and the scores, per (sample, head).
	st.dv, st.dp = grow32(st.dv, B*S*H*vd), grow32(st.dp, B*H*T*S)
	st.dq, st.dk = grow32(st.dq, B*T*H*kd), grow32(st.dk, B*S*H*kd)
	st.job = mhaJob{l: l, st: st, d: d, back: true}
	parallelFor(c.threads, B*H, B*H*T*S*(kd+vd), &st.job, &st.wg)
	// The input projections.
	key := c.x[d.vi]
	if d.ki >= 0 {
		key = c.x[d.ki]
	}
	dwAdd(d.w.q, c.x[d.qi], B*T, d.dq, H*kd, st.dq)
	dbAdd(d.w.bq, st.dq)
	dwAdd(d.w.k, key, B*S, d.dk, H*kd, st.dk)
	dbAdd(d.w.bk, st.dk)
	dwAdd(d.w.v, c.x[d.vi], B*S, d.dv, H*vd, st.dv)
	dbAdd(d.w.bv, st.dv)
	if dx := c.dx[d.qi]; dx != nil {
		gemm.Sgemm(c.threads, false, true, B*T, d.dq, H*kd, 1, st.dq, H*kd, c.w[d.w.q], H*kd, 0, dx, d.dq)
	}
	if dx := c.dx[d.vi]; dx != nil {
		gemm.Sgemm(c.threads, false, true, B*S, d.dv, H*vd, 1, st.dv, H*vd, c.w[d.w.v], H*vd, 0, dx, d.dv)
	}
	kdx := c.dx[d.vi] // the key is the value: its gradient adds there
	beta := float32(1)
	if d.ki >= 0 {
		kdx, beta = c.dx[d.ki], 0
	}
	if kdx != nil {
		gemm.Sgemm(c.threads, false, true, B*S, d.dk, H*kd, 1, st.dk, H*kd, c.w[d.w.k], H*kd, beta, kdx, d.dk)
	}
	if d.ami >= 0 && c.dx[d.ami] != nil {
		clear(c.dx[d.ami])
	}
}

// pairBackward is pairForward's backward pass for head h of sample b: it
// sets the head's part of st.dv, st.dq and st.dk from st.do.
func (l *multiHeadAttention) pairBackward(st *mhaState, d mhaDims, b, h int) {
	T, S, H, kd, vd := d.T, d.S, d.H, d.kd, d.vd
	o := (b*H + h) * T * S
	p, dp := st.p[o:o+T*S], st.dp[o:o+T*S]
	pd := p
	if st.dropped {
		pd = st.pd[o : o+T*S]
	}
	do := st.do[b*T*H*vd+h*vd:]
	gemm.Sgemm(1, true, false, S, vd, T, 1, pd, S, do, H*vd, 0, st.dv[b*S*H*vd+h*vd:], H*vd)
	gemm.Sgemm(1, false, true, T, S, vd, 1, do, H*vd, st.v[b*S*H*vd+h*vd:], H*vd, 0, dp, S)
	if st.dropped {
		for i := range dp {
			dp[i] *= st.drop[o+i]
		}
	}
	for r := 0; r < T; r++ {
		pr, dr := p[r*S:(r+1)*S], dp[r*S:(r+1)*S]
		var dot float64
		for j, v := range pr {
			dot += float64(v) * float64(dr[j])
		}
		for j, v := range pr {
			dr[j] = float32(float64(v) * (float64(dr[j]) - dot))
		}
	}
	if st.mask != nil {
		// A masked pair's score is a constant: no gradient.
		for i, ok := range st.mask[b*T*S : (b+1)*T*S] {
			if !ok {
				dp[i] = 0
			}
		}
	}
	scale := float32(1 / math.Sqrt(float64(kd)))
	gemm.Sgemm(1, false, false, T, kd, S, scale, dp, S, st.k[b*S*H*kd+h*kd:], H*kd, 0, st.dq[b*T*H*kd+h*kd:], H*kd)
	gemm.Sgemm(1, true, false, S, kd, T, scale, dp, S, st.q[b*T*H*kd+h*kd:], H*kd, 0, st.dk[b*S*H*kd+h*kd:], H*kd)
}
