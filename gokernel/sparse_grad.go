package gokernel

import "slices"

// SparseGradient is the gradient of a weight that a training step touched
// in a few rows only: an Embedding's table, whose rows a batch's ids pick.
// Its other rows are zero in the dense gradient.
type SparseGradient struct {
	Weight int       // the weight's index in Weights() order
	Rows   []int32   // the rows the step touched, ascending, distinct
	Width  int       // values per row: the product of the weight's other axes
	Values []float32 // len(Rows)·Width: those rows of the gradient
}

// rowSparse is implemented by the layer kinds whose weight gradients touch
// only some rows (Embedding): gradRows returns the rows of weight j (in
// the layer's weights() order) that the call's last backward pass added
// to, in any order, without repeats, and ok false if it does not know.
type rowSparse interface {
	gradRows(c *call, j int) (rows []int32, ok bool)
}

// sparseState is SparseGradients' memory, kept between steps.
type sparseState struct {
	ready bool
	calls []sparseCall // the (call, weight) pairs that may be sparse
	at    []int        // per weight: its entry in out this step, or -1
	grad  [][]float32  // per weight: its dense gradient (nil: not trainable)
	out   []SparseGradient
	seen  [][]uint32 // per weight: the step that last listed each row
	step  uint32
}

// sparseCall is a call of a rowSparse layer and one of its weights.
type sparseCall struct {
	node, j, weight int
}

func (st *sparseState) init(m *Model) {
	st.ready = true
	st.at = make([]int, len(m.wts))
	st.grad = make([][]float32, len(m.wts))
	st.seen = make([][]uint32, len(m.wts))
	k := 0
	for i, w := range m.wts {
		if w.trainable {
			st.grad[i] = m.grads[k]
			k++
		}
	}
	for i, n := range m.g.nodes {
		if _, ok := n.fn.(rowSparse); !ok {
			continue
		}
		for j, ws := range n.layer.weights {
			wi := n.layer.firstW + j
			if st.grad[wi] == nil || !ws.reg.zero() {
				continue // frozen, or dense (a regularizer)
			}
			st.calls = append(st.calls, sparseCall{node: i, j: j, weight: wi})
			if st.seen[wi] == nil {
				st.seen[wi] = make([]uint32, ws.shape[0])
			}
		}
	}
}

// SparseGradients returns, after a training step, the gradients among the
// trainable weights' (Weights() order) that the step touched in some rows
// only, as rows and their values: an Embedding's table, unless it has a
// regularizer (whose gradient is dense). A worker pushes them to the
// parameter server as sparse updates (element index row·Width + j) instead
// of the whole table. The dense gradients, which the optimizer applies,
// are the same numbers with zeros elsewhere. Rows and Values are the
// model's memory, valid until its next call; after the first, a call
// allocates only when a step touches more rows than before.
func (m *Model) SparseGradients() []SparseGradient {
	st := &m.sparseGrads
	if !st.ready {
		st.init(m)
	}
	st.step++
	if st.step == 0 { // wrapped: forget every mark
		for _, s := range st.seen {
			clear(s)
		}
		st.step = 1
	}
	for i := range st.at {
		st.at[i] = -1
	}
	st.out = st.out[:0]
	for _, sc := range st.calls {
		rows, ok := m.g.nodes[sc.node].fn.(rowSparse).gradRows(m.calls[sc.node], sc.j)
		if !ok {
			continue
		}
		at := st.at[sc.weight]
		if at < 0 {
			at = len(st.out)
			st.at[sc.weight] = at
			shape := m.wts[sc.weight].spec.shape
			width := 1
			if len(shape) > 1 {
				width = prod(shape[1:])
			}
			var prev SparseGradient
			if at < cap(st.out) {
				prev = st.out[:at+1][at]
			}
			st.out = append(st.out, SparseGradient{Weight: sc.weight, Rows: prev.Rows[:0], Width: width, Values: prev.Values[:0]})
		}
		seen, g := st.seen[sc.weight], &st.out[at]
		for _, r := range rows {
			if seen[r] != st.step {
				seen[r] = st.step
				g.Rows = append(g.Rows, r)
			}
		}
	}
	for i := range st.out {
		g := &st.out[i]
		slices.Sort(g.Rows)
		dense := st.grad[g.Weight]
		for _, r := range g.Rows {
			g.Values = append(g.Values, dense[int(r)*g.Width:(int(r)+1)*g.Width]...)
		}
	}
	return st.out
}
