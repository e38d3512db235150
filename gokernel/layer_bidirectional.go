package gokernel

import "fmt"

// bidirectional is Keras' Bidirectional: a recurrent layer run forwards
// and a copy of it (its own weights, go_backwards) run backwards over the
// same sequence, their outputs y_f and y_b merged (with
// return_sequences, y_b is first reversed so that both are in time
// order):
//
//	concat  y = [y_f, y_b]  (last axis)       sum  y = y_f + y_b
//	mul     y = y_f ⊙ y_b                      ave  y = (y_f + y_b) / 2
//	None    two outputs, y_f and y_b
//
// With return_state the final states follow: the forward layer's, then
// the backward layer's. Both layers get the input's mask (not when called
// with initial_state, whose first half starts the forward layer and second
// half the backward one), and, as Keras forces it, output zeros at masked
// steps when they return sequences. The weights are the forward layer's,
// then the backward layer's.
type bidirectional struct {
	fwd, bwd     *rnn
	fname, bname string
	merge        string // "concat", "sum", "mul", "ave", or "" for None
	initState    []int
	// fInit and bInit are the inputs holding each direction's initial
	// states (its own call numbers them from 1).
	fInit, bInit []int
}

func init() { layerKinds["Bidirectional"] = parseBidirectional }

func parseBidirectional(c *obj) (Layer, error) {
	l := &bidirectional{}
	mode, err := c.str("merge_mode", "")
	if err != nil {
		return nil, err
	}
	if r := c.m["merge_mode"]; r == nil {
		mode = "concat" // absent: Keras' default; null: None
	}
	switch mode {
	case "concat", "sum", "mul", "ave", "":
	default:
		return nil, c.errf("merge_mode %q is not supported (concat, sum, mul, ave or null are)", mode)
	}
	l.merge = mode
	inner := func(key string) (*rnn, string, error) {
		ly, name, cls, err := parseInner(c, key)
		if err != nil {
			return nil, "", err
		}
		r, ok := ly.(*rnn)
		if !ok {
			return nil, "", c.errf("%s: Bidirectional takes a recurrent layer (SimpleRNN, LSTM, GRU), got %s", key, cls)
		}
		cp := *r
		cp.forceZeroOut = true
		return &cp, name, nil
	}
	if l.fwd, l.fname, err = inner("layer"); err != nil {
		return nil, err
	}
	if c.has("backward_layer") && !isNull(c.m["backward_layer"]) {
		if l.bwd, l.bname, err = inner("backward_layer"); err != nil {
			return nil, err
		}
	} else {
		// Keras makes the backward layer from the forward one's config.
		c.get("backward_layer")
		cp := *l.fwd
		cp.goBackwards = !cp.goBackwards
		l.bwd, l.bname = &cp, "backward_"+l.fname
	}
	if l.fwd.goBackwards == l.bwd.goBackwards {
		return nil, c.errf("the forward and backward layers must differ in go_backwards")
	}
	if l.fwd.returnSeq != l.bwd.returnSeq || l.fwd.returnState != l.bwd.returnState {
		return nil, c.errf("the forward and backward layers must agree in return_sequences and return_state")
	}
	if l.merge != "concat" && l.merge != "" && l.fwd.units != l.bwd.units {
		return nil, c.errf("merge_mode %q needs layers of one width, got %d and %d units", l.merge, l.fwd.units, l.bwd.units)
	}
	if err := refuse(c, "weights"); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *bidirectional) seed() (int64, bool) { return l.fwd.seed() }

func (l *bidirectional) merged() int {
	if l.merge == "" {
		return 2
	}
	return 1
}

func (l *bidirectional) outputs() int {
	n := l.merged()
	if l.fwd.returnState {
		n += l.fwd.outputs() - 1 + l.bwd.outputs() - 1
	}
	return n
}

// withKwargs reads the call's initial_state: the forward layer's states,
// then the backward layer's.
func (l *bidirectional) withKwargs(k *kwargs) (Layer, error) {
	ids, err := k.tensors("initial_state")
	if err != nil || ids == nil {
		return l, err
	}
	nf, nb := l.fwd.outputs()-1, l.bwd.outputs()-1
	if !l.fwd.returnState {
		nf, nb = 1, 1
		if l.fwd.cell.carry() {
			nf, nb = 2, 2
		}
	}
	if len(ids) != nf+nb {
		return nil, k.errf("initial_state: takes %d state tensors, got %d", nf+nb, len(ids))
	}
	cp := *l
	f, b := *l.fwd, *l.bwd
	f.initState, b.initState = []int{}, []int{}
	for i := range nf {
		f.initState = append(f.initState, 1+i)
		cp.fInit = append(cp.fInit, ids[i])
	}
	for i := range nb {
		b.initState = append(b.initState, 1+i)
		cp.bInit = append(cp.bInit, ids[nf+i])
	}
	cp.fwd, cp.bwd, cp.initState = &f, &b, ids
	return &cp, nil
}

// subIn returns the inputs of a direction's call: the sequence, then its
// initial states.
func (l *bidirectional) subIn(in [][]int, r *rnn) [][]int {
	out := [][]int{in[0]}
	for _, j := range l.initOf(r) {
		out = append(out, in[j])
	}
	return out
}

// initOf returns the inputs holding r's initial states.
func (l *bidirectional) initOf(r *rnn) []int {
	if r == l.fwd {
		return l.fInit
	}
	return l.bInit
}

func (l *bidirectional) outputShapes(in [][]int) ([][]int, error) {
	if len(in) != 1+len(l.initState) {
		return nil, fmt.Errorf("takes one sequence tensor and its initial states, got %d tensors", len(in))
	}
	fo, err := l.fwd.outputShapes(l.subIn(in, l.fwd))
	if err != nil {
		return nil, fmt.Errorf("forward layer: %v", err)
	}
	bo, err := l.bwd.outputShapes(l.subIn(in, l.bwd))
	if err != nil {
		return nil, fmt.Errorf("backward layer: %v", err)
	}
	var out [][]int
	switch l.merge {
	case "concat":
		y := append([]int(nil), fo[0]...)
		y[len(y)-1] += bo[0][len(bo[0])-1]
		out = [][]int{y}
	case "":
		out = [][]int{fo[0], bo[0]}
	default:
		out = [][]int{fo[0]}
	}
	return append(append(out, fo[1:]...), bo[1:]...), nil
}

func (l *bidirectional) weights(in [][]int) []weightSpec {
	var ws []weightSpec
	for _, d := range []struct {
		r    *rnn
		name string
	}{{l.fwd, l.fname}, {l.bwd, l.bname}} {
		for _, w := range d.r.weights(l.subIn(in, d.r)) {
			w.name = d.name + "/" + w.name
			ws = append(ws, w)
		}
	}
	return ws
}

// outputMasks: with return_sequences each merged output carries the
// input's mask (Keras' Bidirectional.compute_mask); otherwise none.
func (l *bidirectional) outputMasks([]bool) []int {
	r := make([]int, l.outputs())
	for k := range r {
		r[k] = maskNone
		if k < l.merged() && l.fwd.returnSeq {
			r[k] = 0
		}
	}
	return r
}

// biState is what a Bidirectional call keeps: its directions' calls and
// their outputs' buffers.
type biState struct {
	ready  bool // the calls' shapes and weights are set
	f, b   *call
	fy, by [][]float32
	ybt    []float32 // the backward direction's sequence in time order
	dybt   []float32 // ... and its gradient
	dxb    []float32 // the backward direction's input gradient
}

func (l *bidirectional) state(c *call) *biState {
	st, ok := c.state.(*biState)
	if !ok {
		st = &biState{}
		c.state = st
	}
	if !st.ready {
		// The shapes and weights of the directions' calls, once.
		nf := len(l.fwd.weights(l.subIn(c.in, l.fwd)))
		for _, d := range []struct {
			p  **call
			r  *rnn
			w0 int
		}{{&st.f, l.fwd, 0}, {&st.b, l.bwd, nf}} {
			in := l.subIn(c.in, d.r)
			out, _ := d.r.outputShapes(in)
			s := subCall(d.p, c, len(in), len(out))
			s.in, s.out = in, out
			nw := len(d.r.weights(in))
			s.w, s.dw = c.w[d.w0:d.w0+nw], c.dw[d.w0:d.w0+nw]
		}
		st.ready = true
	}
	for _, d := range []struct {
		p  **call
		r  *rnn
		ys *[][]float32
	}{{&st.f, l.fwd, &st.fy}, {&st.b, l.bwd, &st.by}} {
		s := subCall(d.p, c, 0, 0)
		out := s.out
		s.x[0] = c.x[0]
		for i, j := range l.initOf(d.r) {
			s.x[1+i] = c.x[j]
		}
		s.mask[0] = c.mask[0]
		if len(*d.ys) != len(out) {
			*d.ys = make([][]float32, len(out))
		}
		for k, o := range out {
			(*d.ys)[k] = grow32((*d.ys)[k], c.rows*prod(o))
			s.y[k] = (*d.ys)[k]
		}
	}
	return st
}

// flip reverses the steps of a (rows, T, u) sequence from src into dst.
func flipSteps(dst, src []float32, rows, T, u int) {
	for r := 0; r < rows; r++ {
		for t := 0; t < T; t++ {
			copy(dst[(r*T+t)*u:(r*T+t+1)*u], src[(r*T+T-1-t)*u:(r*T+T-t)*u])
		}
	}
}

func (l *bidirectional) forward(c *call) {
	st := l.state(c)
	l.fwd.forward(st.f)
	l.bwd.forward(st.b)
	yf, yb := st.f.y[0], st.b.y[0]
	uf, ub := l.fwd.units, l.bwd.units
	n := len(yf) / uf // positions
	if l.fwd.returnSeq {
		st.ybt = grow32(st.ybt, len(yb))
		flipSteps(st.ybt, yb, c.rows, c.in[0][0], ub)
		yb = st.ybt
	}
	y := c.y[0]
	switch l.merge {
	case "concat":
		for p := 0; p < n; p++ {
			copy(y[p*(uf+ub):], yf[p*uf:(p+1)*uf])
			copy(y[p*(uf+ub)+uf:], yb[p*ub:(p+1)*ub])
		}
	case "sum", "ave", "mul":
		for i := range y {
			switch l.merge {
			case "sum":
				y[i] = yf[i] + yb[i]
			case "ave":
				y[i] = (yf[i] + yb[i]) / 2
			default:
				y[i] = yf[i] * yb[i]
			}
		}
	default:
		copy(c.y[0], yf)
		copy(c.y[1], yb)
	}
	k := l.merged()
	for _, s := range st.f.y[1:] {
		copy(c.y[k], s)
		k++
	}
	for _, s := range st.b.y[1:] {
		copy(c.y[k], s)
		k++
	}
}

func (l *bidirectional) backward(c *call) {
	st, _ := c.state.(*biState)
	f, b := st.f, st.b
	uf, ub := l.fwd.units, l.bwd.units
	for _, s := range []*call{f, b} {
		for k := range s.dy {
			s.dy[k] = grow32(s.dy[k], c.rows*prod(s.out[k]))
		}
	}
	dyf, dyb := f.dy[0], b.dy[0]
	// The backward direction's output and its gradient in time order.
	yb, dybt := b.y[0], dyb
	if l.fwd.returnSeq {
		yb = st.ybt
		st.dybt = grow32(st.dybt, len(dyb))
		dybt = st.dybt
	}
	dy := c.dy[0]
	n := len(dyf) / uf
	switch l.merge {
	case "concat":
		for p := 0; p < n; p++ {
			copy(dyf[p*uf:(p+1)*uf], dy[p*(uf+ub):])
			copy(dybt[p*ub:(p+1)*ub], dy[p*(uf+ub)+uf:])
		}
	case "sum":
		copy(dyf, dy)
		copy(dybt, dy)
	case "ave":
		for i, v := range dy[:len(dyf)] {
			dyf[i], dybt[i] = v/2, v/2
		}
	case "mul":
		yf := f.y[0]
		for i, v := range dy[:len(dyf)] {
			dyf[i], dybt[i] = v*yb[i], v*yf[i]
		}
	default:
		copy(dyf, c.dy[0])
		copy(dybt, c.dy[1])
	}
	if l.fwd.returnSeq {
		flipSteps(dyb, dybt, c.rows, c.in[0][0], ub)
	}
	k := l.merged()
	for i := 1; i < len(f.dy); i++ {
		copy(f.dy[i], c.dy[k])
		k++
	}
	for i := 1; i < len(b.dy); i++ {
		copy(b.dy[i], c.dy[k])
		k++
	}
	// The gradients of the inputs: the forward direction's straight into
	// c.dx, the backward one's added.
	for _, s := range []*call{f, b} {
		for i := range s.dx {
			s.dx[i] = nil
		}
	}
	if c.dx[0] != nil {
		f.dx[0] = c.dx[0]
		st.dxb = grow32(st.dxb, len(c.dx[0]))
		b.dx[0] = st.dxb
	}
	for i, j := range l.fInit {
		f.dx[1+i] = c.dx[j]
	}
	for i, j := range l.bInit {
		b.dx[1+i] = c.dx[j]
	}
	l.fwd.backward(f)
	l.bwd.backward(b)
	if c.dx[0] != nil {
		for i, v := range b.dx[0] {
			c.dx[0][i] += v
		}
	}
}
