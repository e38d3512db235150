package gokernel

import (
	"fmt"
	"sync"

	"github.com/gophas/gophas/gokernel/internal/gemm"
)

// rnn is Keras' RNN layer around one cell kind: SimpleRNN, LSTM and GRU
// (layer_simple_rnn.go, layer_lstm.go, layer_gru.go). On a sequence x of
// T steps of F features it runs the cell over the steps, in order or
// (go_backwards) from the last to the first:
//
//	(y_s, state_s) = cell(x_t, state_{s-1}),  s = 1…T,  t = s or T+1-s
//
// from a zero state (or the call's initial_state), and returns y_T, or
// with return_sequences every y_s in the order they were computed (so a
// go_backwards sequence comes reversed, as in Keras), and with
// return_state also the final states (h, and c for an LSTM).
//
// A masked step (the input's Keras mask false there) keeps the state:
// state_s = state_{s-1}, and outputs y_{s-1} as keras.backend.rnn does
// (the previous h; zeros with zero_output_for_mask; with unroll, the
// previous output, zeros before the first). As in Keras, an RNN called
// with initial_state does not receive its input's mask and ignores it.
//
// Dropout (training only) multiplies x_t by a mask drawn once per batch
// and reused at every step, recurrent_dropout the previous h likewise;
// with recurrent_dropout the cell draws one mask per gate for each (Keras'
// implementation 1), else one. The masks come from the call's random
// stream, not the numbers Keras draws.
//
// Speed: the input projection x_t·W + b of every step is one matrix
// product over all T·rows rows, each step then adds its recurrent product
// h·U; the backward pass mirrors it (dW, db and dx in one product each).
// The layer works time-major internally (step, row, feature) so that each
// step's rows are contiguous; the buffers are kept between batches.
type rnn struct {
	kind                          string // Keras' class name
	cell                          rnnCell
	units                         int
	act, recAct                   activation
	useBias                       bool
	returnSeq, returnState        bool
	goBackwards, unroll, zeroOut  bool
	dropout, recDropout           float64
	seedArg                       int64
	hasSeed                       bool
	kernelInit, recInit, biasInit initSpec
	kernelReg, recReg, biasReg    regSpec
	unitForgetBias                bool
	initState                     []int // per call: the inputs holding the initial states (none: zeros)
	forceZeroOut                  bool  // inside Bidirectional: zero_output_for_mask is return_sequences
}

// rnnCell is the math of one step of a cell kind, on the rows of one
// step laid out contiguously (see rnnStep).
type rnnCell interface {
	// name is Keras' name of the cell: the weights are "<name>/kernel",
	// "<name>/recurrent_kernel" and "<name>/bias".
	name() string
	// gates is G: the kernel is (F, G·units), the recurrent kernel
	// (units, G·units).
	gates() int
	// carry reports a second state (an LSTM's c).
	carry() bool
	// saves is the number of values per unit and row a step keeps for
	// its backward pass.
	saves() int
	// biasShape is the bias's shape; inputBias the part added to the
	// input projection.
	biasShape(units int) []int
	inputBias(b []float32) []float32
	// step computes s.h (and s.c) from s.z (the input projection of this
	// step, which it may overwrite with the full pre-activations) and
	// s.hp (s.cp), keeping what back needs in s.save.
	step(l *rnn, s *rnnStep)
	// back sets s.dz (∂L/∂ of the input projection), s.dhp (and s.dcp)
	// from s.dh (and s.dc), and adds the recurrent kernel's (and
	// recurrent bias's) gradients into s.dU (s.dRecBias) when not nil.
	back(l *rnn, s *rnnStep)
	// rows runs phase phase of step or back on rows [lo, hi): the
	// elementwise work between the matrix products, which s.each splits
	// over the call's threads.
	rows(l *rnn, s *rnnStep, phase, lo, hi int)
}

// rowJob runs a phase of a cell's elementwise work over ranges of rows
// (see parallelFor).
type rowJob struct {
	l     *rnn
	s     *rnnStep
	phase int
	wg    sync.WaitGroup
}

func (j *rowJob) runRange(lo, hi int) { j.l.cell.rows(j.l, j.s, j.phase, lo, hi) }

// each runs phase of the cell's elementwise work on every row, split over
// the call's threads.
func (s *rnnStep) each(l *rnn, phase int) {
	j := s.job
	j.l, j.s, j.phase = l, s, phase
	parallelFor(s.threads, s.rows, s.rows*s.u*l.cell.gates()*4, j, &j.wg)
}

// rnnStep is one step of a cell on rows rows (all contiguous, rows×units
// unless said).
type rnnStep struct {
	rows, u, threads int
	z                []float32   // rows×G·u: x·W + b of this step; the cell leaves its pre-activations there
	hp, cp, h, c     []float32   // previous and new states
	save             []float32   // rows×saves·u
	U, bias          []float32   // the recurrent kernel (u×G·u) and the whole bias (nil without)
	rmask            [][]float32 // recurrent dropout masks (one, or one per gate), nil without
	tmp, tmp2        []float32   // the cell's scratch, rows×G·u each
	scr, scr2        []float32   // recProduct's and recBack's scratch, rows×u each
	job              *rowJob

	dh, dc, dz, dhp, dcp []float32 // backward: dz is rows×G·u
	dU, dRecBias         []float32 // gradients to add to; nil when not trained
}

// recProduct sets (beta 0) or adds (beta 1) into dst (rows×(g1-g0)·u,
// leading dimension ld) the recurrent product of gates [g0, g1):
// (hsrc⊙rmask_g)·U_g per gate with recurrent dropout, else one
// hsrc·U[:, g0·u:g1·u].
func (s *rnnStep) recProduct(l *rnn, dst []float32, ld int, g0, g1 int, hsrc []float32, beta float32) {
	G, u := l.cell.gates(), s.u
	if s.rmask == nil {
		gemm.Sgemm(s.threads, false, false, s.rows, (g1-g0)*u, u, 1, hsrc, u, s.U[g0*u:], G*u, beta, dst, ld)
		return
	}
	for g := g0; g < g1; g++ {
		hm := s.maskedH(l, g, hsrc)
		gemm.Sgemm(s.threads, false, false, s.rows, u, u, 1, hm, u, s.U[g*u:], G*u, beta, dst[(g-g0)*u:], ld)
	}
}

// maskedH returns hsrc⊙rmask_g (in s.tmp2), the h a gate's recurrent
// product reads under recurrent dropout.
func (s *rnnStep) maskedH(l *rnn, g int, hsrc []float32) []float32 {
	m := s.rmask[min(g, len(s.rmask)-1)]
	out := s.scr[:s.rows*s.u]
	for i, v := range hsrc[:len(out)] {
		out[i] = v * m[i]
	}
	return out
}

// recBack is recProduct's backward for gates [g0, g1) from dpre
// (rows×(g1-g0)·u, leading dimension ld): it adds into dh the gradient of
// hsrc, and into dU (if not nil) that of U.
func (s *rnnStep) recBack(l *rnn, dpre []float32, ld int, g0, g1 int, hsrc, dh []float32) {
	G, u := l.cell.gates(), s.u
	if s.rmask == nil {
		gemm.Sgemm(s.threads, false, true, s.rows, u, (g1-g0)*u, 1, dpre, ld, s.U[g0*u:], G*u, 1, dh, u)
		if s.dU != nil {
			gemm.Sgemm(s.threads, true, false, u, (g1-g0)*u, s.rows, 1, hsrc, u, dpre, ld, 1, s.dU[g0*u:], G*u)
		}
		return
	}
	for g := g0; g < g1; g++ {
		m := s.rmask[min(g, len(s.rmask)-1)]
		d := s.scr2[:s.rows*u]
		gemm.Sgemm(s.threads, false, true, s.rows, u, u, 1, dpre[(g-g0)*u:], ld, s.U[g*u:], G*u, 0, d, u)
		for i, v := range d {
			dh[i] += v * m[i]
		}
		if s.dU != nil {
			hm := s.maskedH(l, g, hsrc)
			gemm.Sgemm(s.threads, true, false, u, u, s.rows, 1, hm, u, dpre[(g-g0)*u:], ld, 1, s.dU[g*u:], G*u)
		}
	}
}

// parseRNN reads the arguments every RNN kind has.
func parseRNN(c *obj, kind string, cell rnnCell, recAct bool) (*rnn, error) {
	l := &rnn{kind: kind, cell: cell, recAct: actSigmoid}
	units, ok, err := c.integer("units")
	if err != nil {
		return nil, err
	}
	if !ok || units < 1 {
		return nil, c.errf("units must be a positive integer")
	}
	l.units = int(units)
	a, err := c.str("activation", "tanh")
	if err != nil {
		return nil, err
	}
	if l.act, err = parseActivation(c, a); err != nil {
		return nil, err
	}
	if recAct {
		a, err := c.str("recurrent_activation", "sigmoid")
		if err != nil {
			return nil, err
		}
		if l.recAct, err = parseActivation(c, a); err != nil {
			return nil, err
		}
	}
	if l.act == actSoftmax || l.recAct == actSoftmax {
		return nil, c.errf("softmax as a recurrent layer's activation is not supported")
	}
	bools := []struct {
		key string
		p   *bool
		def bool
	}{{"use_bias", &l.useBias, true}, {"return_sequences", &l.returnSeq, false}, {"return_state", &l.returnState, false},
		{"go_backwards", &l.goBackwards, false}, {"unroll", &l.unroll, false}, {"zero_output_for_mask", &l.zeroOut, false}}
	for _, b := range bools {
		if *b.p, err = c.boolean(b.key, b.def); err != nil {
			return nil, err
		}
	}
	if stateful, err := c.boolean("stateful", false); err != nil {
		return nil, err
	} else if stateful {
		return nil, c.errf("stateful true is not supported: a %s's state starts from zero (or its initial_state) in every batch", kind)
	}
	for _, r := range []struct {
		key string
		p   *float64
	}{{"dropout", &l.dropout}, {"recurrent_dropout", &l.recDropout}} {
		if *r.p, err = c.num(r.key, 0); err != nil {
			return nil, err
		}
		// Keras clips them to [0, 1]; a rate of 1 drops everything.
		*r.p = min(1, max(0, *r.p))
		if *r.p >= 1 {
			return nil, c.errf("%s %v is not supported (want a rate below 1)", r.key, *r.p)
		}
	}
	if l.seedArg, l.hasSeed, err = c.integer("seed"); err != nil {
		return nil, err
	}
	if l.kernelInit, err = parseInit(c, "kernel_initializer", "glorot_uniform"); err != nil {
		return nil, err
	}
	if l.recInit, err = parseInit(c, "recurrent_initializer", "orthogonal"); err != nil {
		return nil, err
	}
	if l.biasInit, err = parseInit(c, "bias_initializer", "zeros"); err != nil {
		return nil, err
	}
	for _, r := range []struct {
		key string
		p   *regSpec
	}{{"kernel_regularizer", &l.kernelReg}, {"recurrent_regularizer", &l.recReg}, {"bias_regularizer", &l.biasReg}} {
		if *r.p, err = parseReg(c, r.key); err != nil {
			return nil, err
		}
	}
	if err := refuse(c, "activity_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint"); err != nil {
		return nil, err
	}
	if err := c.mustBe("use_cudnn", `"auto"`, "true", "false"); err != nil {
		return nil, err
	}
	if err := c.mustBe("implementation", "1", "2"); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *rnn) seed() (int64, bool) { return l.seedArg, l.hasSeed }

func (l *rnn) outputs() int {
	if !l.returnState {
		return 1
	}
	if l.cell.carry() {
		return 3
	}
	return 2
}

// withKwargs reads an RNN call's initial_state: one tensor per state.
func (l *rnn) withKwargs(k *kwargs) (Layer, error) {
	ids, err := k.tensors("initial_state")
	if err != nil || ids == nil {
		return l, err
	}
	want := 1
	if l.cell.carry() {
		want = 2
	}
	if len(ids) != want {
		return nil, k.errf("initial_state: a %s takes %d state tensors, got %d", l.kind, want, len(ids))
	}
	cp := *l
	cp.initState = ids
	return &cp, nil
}

func (l *rnn) outputShapes(in [][]int) ([][]int, error) {
	if len(in) != 1+len(l.initState) {
		return nil, fmt.Errorf("takes one sequence tensor and its initial states, got %d tensors", len(in))
	}
	if len(in[0]) != 2 {
		return nil, fmt.Errorf("%s needs an input of shape (batch, steps, features)", l.kind)
	}
	for _, j := range l.initState {
		if len(in[j]) != 1 || in[j][0] != l.units {
			return nil, fmt.Errorf("initial state %s does not fit %d units (want %s)", shapeStr(in[j]), l.units, shapeStr([]int{l.units}))
		}
	}
	y := []int{l.units}
	if l.returnSeq {
		y = []int{in[0][0], l.units}
	}
	out := [][]int{y}
	for k := 1; k < l.outputs(); k++ {
		out = append(out, []int{l.units})
	}
	return out, nil
}

func (l *rnn) weights(in [][]int) []weightSpec {
	F, G, u := in[0][1], l.cell.gates(), l.units
	n := l.cell.name() + "/"
	ws := []weightSpec{
		{name: n + "kernel", shape: []int{F, G * u}, init: l.kernelInit, reg: l.kernelReg},
		{name: n + "recurrent_kernel", shape: []int{u, G * u}, init: l.recInit, reg: l.recReg},
	}
	if l.useBias {
		bi := l.biasInit
		if l.unitForgetBias {
			bi.forgetBias = u
		}
		ws = append(ws, weightSpec{name: n + "bias", shape: l.cell.biasShape(u), init: bi, reg: l.biasReg})
	}
	return ws
}

// outputMasks: with return_sequences an RNN passes its input's mask to
// its sequence output (Keras' RNN.compute_mask); the states and a last
// output carry none.
func (l *rnn) outputMasks([]bool) []int {
	r := make([]int, l.outputs())
	for k := range r {
		r[k] = maskNone
	}
	if l.returnSeq {
		r[0] = 0
	}
	return r
}

// rnnBuffers are what an RNN call keeps between its passes and batches.
type rnnBuffers struct {
	xT, z, h, cs, save, o []float32   // time-major: xT (T·B·F), z (T·B·G·u), h and cs ((T+1)·B·u), save, o (T·B·u)
	mT, mbuf              []bool      // the mask, time-major (nil: none), and its memory
	dmask, rmask          [][]float32 // this pass's dropout masks (nil: none)
	dbuf, rbuf            [][]float32 // their memory
	step                  rnnStep     // the step being run
	xd                    []float32   // x⊙dropout mask
	dz, do, dxT           []float32
	dh, dc, dhp, dcp      []float32
	ph, pc                []float32 // the masked rows' state gradients, passed to the previous step
	tmp, tmp2, scr, scr2  []float32
	job                   rowJob
}

func grow32(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// zeroOutput reports whether a masked step outputs zeros.
func (l *rnn) zeroOutput() bool {
	if l.forceZeroOut {
		return l.returnSeq
	}
	return l.zeroOut
}

func (l *rnn) buffers(c *call) *rnnBuffers {
	if b, ok := c.state.(*rnnBuffers); ok {
		return b
	}
	b := &rnnBuffers{}
	c.state = b
	return b
}

// stepArgs fills s for step t (processing order) of the forward pass.
func (l *rnn) stepArgs(c *call, b *rnnBuffers, s *rnnStep, t int) {
	B, u, G := c.rows, l.units, l.cell.gates()
	*s = rnnStep{rows: B, u: u, threads: c.threads, U: c.w[1], tmp: b.tmp, tmp2: b.tmp2, scr: b.scr, scr2: b.scr2, rmask: b.rmask, job: &b.job}
	if l.useBias {
		s.bias = c.w[2]
	}
	s.z = b.z[t*B*G*u : (t+1)*B*G*u]
	s.hp, s.h = b.h[t*B*u:(t+1)*B*u], b.h[(t+1)*B*u:(t+2)*B*u]
	if l.cell.carry() {
		s.cp, s.c = b.cs[t*B*u:(t+1)*B*u], b.cs[(t+1)*B*u:(t+2)*B*u]
	}
	S := l.cell.saves()
	s.save = b.save[t*B*S*u : (t+1)*B*S*u]
}

func (l *rnn) forward(c *call) {
	b := l.buffers(c)
	B, T, F := c.rows, c.in[0][0], c.in[0][1]
	u, G := l.units, l.cell.gates()
	x := c.x[0]
	b.xT = grow32(b.xT, T*B*F)
	b.z = grow32(b.z, T*B*G*u)
	b.h = grow32(b.h, (T+1)*B*u)
	if l.cell.carry() {
		b.cs = grow32(b.cs, (T+1)*B*u)
	}
	b.save = grow32(b.save, T*B*l.cell.saves()*u)
	b.o = grow32(b.o, T*B*u)
	b.tmp = grow32(b.tmp, B*G*u)
	b.tmp2 = grow32(b.tmp2, B*G*u)
	b.scr = grow32(b.scr, B*u)
	b.scr2 = grow32(b.scr2, B*u)
	src := func(s int) int { // the input step of processing step s
		if l.goBackwards {
			return T - 1 - s
		}
		return s
	}
	for s := 0; s < T; s++ {
		t := src(s)
		for r := 0; r < B; r++ {
			copy(b.xT[(s*B+r)*F:(s*B+r+1)*F], x[(r*T+t)*F:(r*T+t+1)*F])
		}
	}
	b.mT = nil
	if m := c.mask[0]; m != nil && len(l.initState) == 0 {
		if cap(b.mbuf) < T*B {
			b.mbuf = make([]bool, T*B)
		}
		b.mT = b.mbuf[:T*B]
		for s := 0; s < T; s++ {
			for r := 0; r < B; r++ {
				b.mT[s*B+r] = m[r*T+src(s)]
			}
		}
	}
	l.drawMasks(c, b, F)
	// The input projection of every step at once.
	l.project(c, b, T*B, F)
	// The initial states.
	h0 := b.h[:B*u]
	clear(h0)
	if len(l.initState) > 0 {
		copy(h0, c.x[l.initState[0]][:B*u])
	}
	if l.cell.carry() {
		c0 := b.cs[:B*u]
		clear(c0)
		if len(l.initState) > 1 {
			copy(c0, c.x[l.initState[1]][:B*u])
		}
	}
	s := &b.step
	zero := l.zeroOutput()
	for t := 0; t < T; t++ {
		l.stepArgs(c, b, s, t)
		l.cell.step(l, s)
		o := b.o[t*B*u : (t+1)*B*u]
		copy(o, s.h)
		if b.mT == nil {
			continue
		}
		for r := 0; r < B; r++ {
			if b.mT[t*B+r] {
				continue
			}
			copy(s.h[r*u:(r+1)*u], s.hp[r*u:(r+1)*u])
			if s.c != nil {
				copy(s.c[r*u:(r+1)*u], s.cp[r*u:(r+1)*u])
			}
			or := o[r*u : (r+1)*u]
			switch {
			case l.unroll && t == 0:
				clear(or)
			case l.unroll:
				copy(or, b.o[((t-1)*B+r)*u:((t-1)*B+r+1)*u])
			case zero:
				clear(or)
			default:
				copy(or, s.hp[r*u:(r+1)*u])
			}
		}
	}
	// The outputs, batch-major.
	y := c.y[0]
	if l.returnSeq {
		for t := 0; t < T; t++ {
			for r := 0; r < B; r++ {
				copy(y[(r*T+t)*u:(r*T+t+1)*u], b.o[(t*B+r)*u:(t*B+r+1)*u])
			}
		}
	} else {
		copy(y[:B*u], b.o[(T-1)*B*u:T*B*u])
	}
	if l.returnState {
		copy(c.y[1][:B*u], b.h[T*B*u:(T+1)*B*u])
		if l.cell.carry() {
			copy(c.y[2][:B*u], b.cs[T*B*u:(T+1)*B*u])
		}
	}
}

// drawMasks draws the dropout masks of a training pass (one per batch,
// for every step) or clears them.
func (l *rnn) drawMasks(c *call, b *rnnBuffers, F int) {
	B, u := c.rows, l.units
	count := 1
	if l.recDropout > 0 && l.cell.gates() > 1 {
		count = l.cell.gates() // Keras' implementation 1
	}
	draw := func(ms *[][]float32, rate float64, n int) [][]float32 {
		if !c.training || rate == 0 {
			return nil
		}
		if len(*ms) != count {
			*ms = make([][]float32, count)
		}
		for i := range *ms {
			(*ms)[i] = grow32((*ms)[i], n)
			if !c.replay {
				drawMask((*ms)[i], rate, c.rng)
			}
		}
		return *ms
	}
	b.dmask = draw(&b.dbuf, l.dropout, B*F)
	b.rmask = draw(&b.rbuf, l.recDropout, B*u)
}

// project sets b.z = x·W + b_in for every step (rows = T·B rows), with
// the input dropout masks applied (one mask, or one per gate).
func (l *rnn) project(c *call, b *rnnBuffers, rows, F int) {
	u, G := l.units, l.cell.gates()
	W := c.w[0]
	var bias []float32
	if l.useBias {
		bias = l.cell.inputBias(c.w[2])
	}
	if b.dmask == nil {
		gemm.SgemmFused(c.threads, false, false, rows, G*u, F, 1, b.xT, F, W, G*u, 0, b.z, G*u, gemm.Epilogue{Bias: bias})
		return
	}
	b.xd = grow32(b.xd, rows*F)
	for gi, m := range b.dmask {
		l.maskRows(b.xd, b.xT, m, rows, F, c.rows)
		g0, g1 := gi, gi+1
		if len(b.dmask) == 1 {
			g0, g1 = 0, G
		}
		var ep gemm.Epilogue
		if bias != nil {
			ep.Bias = bias[g0*u : g1*u]
		}
		gemm.SgemmFused(c.threads, false, false, rows, (g1-g0)*u, F, 1, b.xd, F, W[g0*u:], G*u, 0, b.z[g0*u:], G*u, ep)
	}
}

// maskRows sets dst = src⊙m for a time-major block of rows rows of width
// w, the mask m (B×w) repeating every B rows.
func (l *rnn) maskRows(dst, src, m []float32, rows, w, B int) {
	for r := 0; r < rows; r++ {
		mr := m[(r%B)*w : (r%B+1)*w]
		sr, dr := src[r*w:(r+1)*w], dst[r*w:(r+1)*w]
		for j, v := range sr {
			dr[j] = v * mr[j]
		}
	}
}

func (l *rnn) backward(c *call) {
	b := l.buffers(c)
	B, T, F := c.rows, c.in[0][0], c.in[0][1]
	u, G := l.units, l.cell.gates()
	b.dz = grow32(b.dz, T*B*G*u)
	b.do = grow32(b.do, T*B*u)
	for _, p := range []*[]float32{&b.dh, &b.dc, &b.dhp, &b.dcp} {
		*p = grow32(*p, B*u)
	}
	// ∂L/∂ of each step's output, time-major.
	dy := c.dy[0]
	if l.returnSeq {
		for t := 0; t < T; t++ {
			for r := 0; r < B; r++ {
				copy(b.do[(t*B+r)*u:(t*B+r+1)*u], dy[(r*T+t)*u:(r*T+t+1)*u])
			}
		}
	} else {
		clear(b.do[:(T-1)*B*u])
		copy(b.do[(T-1)*B*u:T*B*u], dy[:B*u])
	}
	// ∂L/∂ of the final states.
	clear(b.dh)
	clear(b.dc)
	if l.returnState {
		copy(b.dh, c.dy[1][:B*u])
		if l.cell.carry() {
			copy(b.dc, c.dy[2][:B*u])
		}
	}
	s := &b.step
	var dU, dRecBias []float32
	if c.dw[1] != nil {
		dU = c.dw[1]
	}
	if l.useBias && c.dw[2] != nil {
		dRecBias = c.dw[2]
	}
	if b.mT != nil {
		b.ph, b.pc = grow32(b.ph, B*u), grow32(b.pc, B*u)
	}
	outToPrev := !l.zeroOutput() && !l.unroll
	for t := T - 1; t >= 0; t-- {
		l.stepArgs(c, b, s, t)
		s.dU, s.dRecBias = dU, dRecBias
		s.dz = b.dz[t*B*G*u : (t+1)*B*G*u]
		s.dh, s.dc, s.dhp, s.dcp = b.dh, b.dc, b.dhp, b.dcp
		do := b.do[t*B*u : (t+1)*B*u]
		var masked []bool
		if b.mT != nil {
			masked = b.mT[t*B : (t+1)*B]
			// A masked row kept its state and output the previous h
			// (or zeros, or the previous output): its gradients pass
			// to the previous step, and the cell sees none.
			for r, ok := range masked {
				if ok {
					continue
				}
				ph, pc := b.ph[r*u:(r+1)*u], b.pc[r*u:(r+1)*u]
				dh, dc, dor := b.dh[r*u:(r+1)*u], b.dc[r*u:(r+1)*u], do[r*u:(r+1)*u]
				copy(ph, dh)
				copy(pc, dc)
				if outToPrev {
					for j, v := range dor {
						ph[j] += v
					}
				} else if l.unroll && t > 0 {
					prev := b.do[((t-1)*B+r)*u : ((t-1)*B+r+1)*u]
					for j, v := range dor {
						prev[j] += v
					}
				}
				clear(dh)
				clear(dc)
				clear(dor)
			}
		}
		// An unmasked row output its new h.
		for i, v := range do {
			b.dh[i] += v
		}
		l.cell.back(l, s)
		for r, ok := range masked {
			if !ok {
				copy(b.dhp[r*u:(r+1)*u], b.ph[r*u:(r+1)*u])
				copy(b.dcp[r*u:(r+1)*u], b.pc[r*u:(r+1)*u])
			}
		}
		b.dh, b.dhp = b.dhp, b.dh
		b.dc, b.dcp = b.dcp, b.dc
	}
	// The initial states' gradients.
	if len(l.initState) > 0 && c.dx[l.initState[0]] != nil {
		copy(c.dx[l.initState[0]], b.dh[:B*u])
	}
	if len(l.initState) > 1 && c.dx[l.initState[1]] != nil {
		copy(c.dx[l.initState[1]], b.dc[:B*u])
	}
	l.projectBack(c, b, T*B, F)
	if c.dx[0] != nil {
		dx := c.dx[0]
		for s := 0; s < T; s++ {
			t := s
			if l.goBackwards {
				t = T - 1 - s
			}
			for r := 0; r < B; r++ {
				copy(dx[(r*T+t)*F:(r*T+t+1)*F], b.dxT[(s*B+r)*F:(s*B+r+1)*F])
			}
		}
	}
}

// projectBack is project's backward: dW and the input bias's gradient
// from dz over every step, and dxT.
func (l *rnn) projectBack(c *call, b *rnnBuffers, rows, F int) {
	u, G := l.units, l.cell.gates()
	if c.dw[0] != nil {
		if b.dmask == nil {
			gemm.Sgemm(c.threads, true, false, F, G*u, rows, 1, b.xT, F, b.dz, G*u, 1, c.dw[0], G*u)
		} else {
			for gi, m := range b.dmask {
				l.maskRows(b.xd, b.xT, m, rows, F, c.rows)
				g0, g1 := gi, gi+1
				if len(b.dmask) == 1 {
					g0, g1 = 0, G
				}
				gemm.Sgemm(c.threads, true, false, F, (g1-g0)*u, rows, 1, b.xd, F, b.dz[g0*u:], G*u, 1, c.dw[0][g0*u:], G*u)
			}
		}
	}
	if l.useBias && c.dw[2] != nil {
		addColSum(b.dz, l.cell.inputBias(c.dw[2]))
	}
	if c.dx[0] == nil {
		return
	}
	b.dxT = grow32(b.dxT, rows*F)
	W := c.w[0]
	if b.dmask == nil {
		gemm.Sgemm(c.threads, false, true, rows, F, G*u, 1, b.dz, G*u, W, G*u, 0, b.dxT, F)
		return
	}
	clear(b.dxT)
	b.xd = grow32(b.xd, rows*F)
	for gi, m := range b.dmask {
		g0, g1 := gi, gi+1
		if len(b.dmask) == 1 {
			g0, g1 = 0, G
		}
		gemm.Sgemm(c.threads, false, true, rows, F, (g1-g0)*u, 1, b.dz[g0*u:], G*u, W[g0*u:], G*u, 0, b.xd, F)
		for r := 0; r < rows; r++ {
			mr := m[(r%c.rows)*F : (r%c.rows+1)*F]
			for j, v := range b.xd[r*F : (r+1)*F] {
				b.dxT[r*F+j] += v * mr[j]
			}
		}
	}
}

// gemmAdd adds a·b into c (a m×k, b k×n, row-major with the given
// leading dimensions).
func gemmAdd(threads, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	gemm.Sgemm(threads, false, false, m, n, k, 1, a, lda, b, ldb, 1, c, ldc)
}

// gemmNT sets c = a·bᵀ (a m×k, b n×k).
func gemmNT(threads, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	gemm.Sgemm(threads, false, true, m, n, k, 1, a, lda, b, ldb, 0, c, ldc)
}

// gemmTNAdd adds aᵀ·b into c (a k×m, b k×n).
func gemmTNAdd(threads, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	gemm.Sgemm(threads, true, false, m, n, k, 1, a, lda, b, ldb, 1, c, ldc)
}
