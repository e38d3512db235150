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
	out  []SparseGradient
	seen map[int][]uint32 // per weight: the step that last listed each row
	step uint32
}

// SparseGradients returns, after a training step, the gradients among the
// trainable weights' (Weights() order) that the step touched in some rows
// only, as rows and their values: an Embedding's table, unless it has a
// regularizer (whose gradient is dense). A worker pushes them to the
// parameter server as sparse updates (element index row·Width + j) instead
// of the whole table. The dense gradients, which the optimizer applies,
// are the same numbers with zeros elsewhere. Rows and Values are the
// model's memory, valid until its next step.
func (m *Model) SparseGradients() []SparseGradient {
	st := &m.sparseGrads
	if st.seen == nil {
		st.seen = map[int][]uint32{}
	}
	st.step++
	if st.step == 0 { // wrapped: forget every mark
		clear(st.seen)
		st.step = 1
	}
	st.out = st.out[:0]
	index := map[int]int{} // weight → its entry in out
	grads := map[int][]float32{}
	k := 0
	for i, w := range m.wts {
		if w.trainable {
			grads[i] = m.grads[k]
			k++
		}
	}
	for i, n := range m.g.nodes {
		rs, ok := n.fn.(rowSparse)
		if !ok {
			continue
		}
		e := n.layer
		for j, ws := range e.weights {
			wi := e.firstW + j
			w := m.wts[wi]
			if !w.trainable || !ws.reg.zero() {
				continue
			}
			rows, ok := rs.gradRows(m.calls[i], j)
			if !ok {
				continue
			}
			at, listed := index[wi]
			if !listed {
				at = len(st.out)
				index[wi] = at
				width := 1
				if len(ws.shape) > 1 {
					width = prod(ws.shape[1:])
				}
				var prev SparseGradient
				if at < cap(st.out) {
					prev = st.out[:at+1][at]
				}
				st.out = append(st.out, SparseGradient{Weight: wi, Rows: prev.Rows[:0], Width: width, Values: prev.Values[:0]})
			}
			seen := st.seen[wi]
			if len(seen) != ws.shape[0] {
				seen = make([]uint32, ws.shape[0])
				st.seen[wi] = seen
			}
			g := &st.out[at]
			for _, r := range rows {
				if seen[r] != st.step {
					seen[r] = st.step
					g.Rows = append(g.Rows, r)
				}
			}
		}
	}
	for i := range st.out {
		g := &st.out[i]
		slices.Sort(g.Rows)
		dense := grads[g.Weight]
		for _, r := range g.Rows {
			g.Values = append(g.Values, dense[int(r)*g.Width:(int(r)+1)*g.Width]...)
		}
	}
	return st.out
}
