package gokernel

// embedding is Keras' Embedding: each id k of its input (ids of any
// shape) becomes row k of the table E (input_dim, output_dim):
//
//	y[…, :] = E[id[…], :],   dE[k, :] += Σ_{positions with id k} dy[…, :]
//
// The input is an integer tensor (its ids read as int32, see ids.go) or a
// float one, truncated as Keras' cast does. Ids outside [0, input_dim) in
// a model input are an error of the batch (checkIDs); one computed inside
// the model gives a row of zeros. The ids get no gradient.
//
// The gradient touches the rows the batch uses only: backward adds into
// those rows of dE and lists them (see Model.SparseGradients), so that a
// push of the table's gradient to the parameter server can be sparse.
//
// With mask_zero the output carries a mask, true where the id is not 0.
type embedding struct {
	inputDim, outputDim int
	init                initSpec
	reg                 regSpec
	maskZero            bool
}

func parseEmbedding(c *obj) (Layer, error) {
	l := &embedding{}
	for _, k := range []struct {
		key string
		p   *int
	}{{"input_dim", &l.inputDim}, {"output_dim", &l.outputDim}} {
		v, ok, err := c.integer(k.key)
		if err != nil {
			return nil, err
		}
		if !ok || v < 1 || v > 1<<31-1 {
			return nil, c.errf("%s must be a positive integer below 2³¹", k.key)
		}
		*k.p = int(v)
	}
	var err error
	if l.init, err = parseInit(c, "embeddings_initializer", "random_uniform"); err != nil {
		return nil, err
	}
	if l.reg, err = parseReg(c, "embeddings_regularizer"); err != nil {
		return nil, err
	}
	if l.maskZero, err = c.boolean("mask_zero", false); err != nil {
		return nil, err
	}
	if err := refuse(c, "activity_regularizer", "embeddings_constraint", "quantization_config", "lora_rank", "input_length", "weights"); err != nil {
		return nil, err
	}
	c.ignore("lora_alpha") // meaningful only with lora_rank, which must be null
	return l, nil
}

func (l *embedding) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	return [][]int{append(append([]int(nil), s...), l.outputDim)}, nil
}

func (l *embedding) weights([][]int) []weightSpec {
	return []weightSpec{{name: "embeddings", shape: []int{l.inputDim, l.outputDim}, init: l.init, reg: l.reg}}
}

func (l *embedding) takesIDs(i int) (int, bool) { return l.inputDim, i == 0 }

// outputMasks: with mask_zero the output's mask is id ≠ 0; without, the
// layer does not support masking (Keras sets supports_masking to
// mask_zero).
func (l *embedding) outputMasks([]bool) []int {
	if l.maskZero {
		return []int{maskComputed}
	}
	return []int{maskNone}
}

// embeddingState keeps the ids of the last pass and the rows its
// gradient touched.
type embeddingState struct {
	ids  []int32
	seen []uint32 // per row: the pass that last listed it
	pass uint32
	rows []int32 // the rows touched by the last backward pass, unsorted
}

// idsOf returns the call's ids: the integer input's, or the float
// input's truncated (Keras casts floats to int32), with the mask of
// mask_zero (computed on the input as given, as Keras' not_equal(x, 0)
// does).
func (l *embedding) idsOf(c *call) []int32 {
	n := c.rows * prod(c.in[0])
	if ids := c.ids[0]; ids != nil {
		if m := c.maskOut[0]; m != nil {
			for i, v := range ids[:n] {
				m[i] = v != 0
			}
		}
		return ids[:n]
	}
	st := l.state(c)
	st.ids = growInt32(st.ids, n)
	truncIDs(st.ids, c.x[0][:n])
	if m := c.maskOut[0]; m != nil {
		for i, v := range c.x[0][:n] {
			m[i] = v != 0
		}
	}
	return st.ids
}

func growInt32(s []int32, n int) []int32 {
	if cap(s) < n {
		return make([]int32, n)
	}
	return s[:n]
}

func (l *embedding) state(c *call) *embeddingState {
	if st, ok := c.state.(*embeddingState); ok {
		return st
	}
	st := &embeddingState{}
	c.state = st
	return st
}

func (l *embedding) forward(c *call) {
	ids := l.idsOf(c)
	d, E, y := l.outputDim, c.w[0], c.y[0]
	for i, k := range ids {
		yr := y[i*d : (i+1)*d]
		if k < 0 || int(k) >= l.inputDim {
			clear(yr)
			continue
		}
		copy(yr, E[int(k)*d:(int(k)+1)*d])
	}
}

func (l *embedding) backward(c *call) {
	if c.dx[0] != nil {
		clear(c.dx[0]) // ids have no gradient
	}
	dE := c.dw[0]
	if dE == nil {
		return
	}
	n := c.rows * prod(c.in[0])
	var ids []int32
	if c.ids[0] != nil {
		ids = c.ids[0][:n]
	} else {
		ids = l.state(c).ids[:n]
	}
	st := l.state(c)
	if len(st.seen) != l.inputDim {
		st.seen = make([]uint32, l.inputDim)
	}
	st.pass++
	if st.pass == 0 { // wrapped: forget every mark
		clear(st.seen)
		st.pass = 1
	}
	st.rows = st.rows[:0]
	d, dy := l.outputDim, c.dy[0]
	for i, k := range ids {
		if k < 0 || int(k) >= l.inputDim {
			continue
		}
		if st.seen[k] != st.pass {
			st.seen[k] = st.pass
			st.rows = append(st.rows, k)
		}
		row := dE[int(k)*d : (int(k)+1)*d]
		for j, v := range dy[i*d : (i+1)*d] {
			row[j] += v
		}
	}
}

// gradRows returns the rows of weight j the call's last backward pass
// added to (any order, no repeats), and ok true: see
// Model.SparseGradients.
func (l *embedding) gradRows(c *call, j int) ([]int32, bool) {
	st, ok := c.state.(*embeddingState)
	if !ok || j != 0 {
		return nil, false
	}
	return st.rows, true
}
