package gokernel

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
)

// Option configures NewModel and LoadModel.
type Option func(*config)

type config struct {
	seed       int64
	threads    int
	inputGrads bool // tests: compute ∂L/∂input too
}

// WithSeed seeds the weight initializers and the Dropout masks of
// TrainOnBatch and Gradients (the training loop reseeds the masks from each
// epoch's own seed). The default is 0: two models built from the same spec
// start from the same weights.
func WithSeed(seed int64) Option { return func(c *config) { c.seed = seed } }

// WithThreads sets how many goroutines a matrix multiply may use. The
// default (and any n < 1) is runtime.GOMAXPROCS(0).
func WithThreads(n int) Option { return func(c *config) { c.threads = n } }

// withInputGrads makes backward compute the gradients with respect to the
// model's inputs (gradient checks of a single layer).
func withInputGrads() Option { return func(c *config) { c.inputGrads = true } }

// Model is a spec with its weights, its optimizer (if the spec has a compile
// config) and the buffers of its forward and backward passes, allocated for
// the largest batch seen and reused. A Model is not safe for concurrent use.
//
// The forward pass runs the calls of the spec's graph in order: each call
// reads the tensors earlier calls made and fills its outputs. The backward
// pass runs them in reverse: the gradient of a tensor read by several calls
// (or twice by one) is the sum of what each reader gives back, and the
// gradient of a shared layer's weights the sum over its calls.
type Model struct {
	spec *Spec
	g    *graph
	cfg  config

	calls []*call   // per graph node
	wts   []*weight // every weight, in Keras' get_weights() order

	// params and grads are the trainable weights and their gradients, the
	// lists the optimizer updates.
	params, grads [][]float32

	// sw are the sample weights of the rows in the pass (nil: all 1), set
	// by TrainStep and EvaluateBatch (sample_weight.go).
	sw []float32

	opt     Optimizer
	heads   []*head
	loss    *lossSpec    // output 0's loss
	metrics []metricSpec // output 0's metrics, accuracy resolved
	sparse  bool         // output 0's targets are integer labels
	outDim  int          // output 0's width
	msum    []float64    // output 0's metric sums of the last step

	// The backward plan.
	needGrad []bool      // per tensor: its gradient is needed
	runsBack []bool      // per node: it runs backward
	dxPlan   [][]dxSlot  // per node, per input
	zeroGrad []int       // tensors no call gives a gradient to
	outDst   []dxSlot    // per model output: where its loss gradient goes
	outGiven []bool      // per model output: this pass wrote outDst
	temps    [][]float32 // buffers of the slots that add

	// Integer inputs and masks (ids.go, mask.go).
	bounds          []idBound   // per model input: the ids it may hold
	ids             [][]int32   // per tensor: this pass's ids (integer tensors)
	idBuf           [][]int32   // per model input: ids truncated from floats
	idFloat         []bool      // per tensor: an integer tensor some layer reads as floats
	maskVal         [][]bool    // per mask: its buffer
	sparseGrads     sparseState // SparseGradients' memory
	nodeMasks       [][]int     // per node: the masks it computes
	maskIn, maskOut [][]bool    // computeMasks' lists

	capRows, capGradRows int
	val                  [][]float32 // per tensor: this pass's values
	act                  [][]float32 // per tensor: output buffers
	grad                 [][]float32 // per tensor: ∂L/∂tensor
	scratch              []float32

	replay bool // tests: random layers repeat the draws of the last pass
}

// weight is one weight of the model.
type weight struct {
	name      string
	spec      weightSpec
	data      []float32
	grad      []float32 // nil unless trainable
	trainable bool
	frozen    bool // of a layer with trainable false
}

// dxSlot says where a gradient contribution goes: straight into the
// tensor's gradient (temp < 0; the first contribution), or into temp
// buffer temp, then added to it.
type dxSlot struct {
	tensor, temp int
}

// head is one model output with its loss.
type head struct {
	spec      *headSpec
	tensor    int
	shape     []int
	width     int // the last axis: the loss's classes or values
	positions int // rows of the loss per sample: the product of the other axes
	sparse    bool
	metrics   []metricSpec // accuracy resolved
	lsum      float64      // the last step's unweighted loss sum
	msum      []float64
	mstate    [][]float64 // per metric: the last step's state (metric_state.go), nil for a mean
	stateKeys [][]string  // per metric: the Sums keys of its state, nil for a mean
	mask      int         // the mask of the output (-1: none); see maskedLossSums

	weighted []metricSpec // weighted_metrics, accuracy resolved (sample_weight.go)
	wmsum    []float64    // their sums Σ w_r·m_r of the last step
}

// yWidth is the number of targets per sample.
func (h *head) yWidth() int {
	if h.sparse {
		return h.positions
	}
	return h.positions * h.width
}

// NewModel builds a model from spec with freshly initialized weights. If the
// spec has a compile config it also builds the optimizer, the losses and
// the metrics; without one the model can Predict but not train or
// evaluate.
func NewModel(spec *Spec, opts ...Option) (*Model, error) {
	if spec == nil {
		return nil, fmt.Errorf("gokernel: NewModel: nil spec")
	}
	cfg := config{}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.threads < 1 {
		cfg.threads = runtime.GOMAXPROCS(0)
	}
	g := spec.graph
	m := &Model{spec: spec, g: g, cfg: cfg, outDim: spec.OutputDim()}
	for _, e := range g.layers {
		for _, ws := range e.weights {
			w := &weight{name: e.name + "/" + ws.name, spec: ws, data: make([]float32, prod(ws.shape)), trainable: e.trainable && !ws.state,
				frozen: !e.trainable}
			in, out := fans(ws.shape)
			ws.init.fill(w.data, in, out, initRNG(cfg.seed, len(m.wts), ws.init))
			if w.trainable {
				w.grad = make([]float32, len(w.data))
				m.params = append(m.params, w.data)
				m.grads = append(m.grads, w.grad)
			}
			m.wts = append(m.wts, w)
		}
	}
	ordinal := map[*layerEntry]int{}
	for i, e := range g.layers {
		ordinal[e] = i
	}
	m.bounds = g.idBounds()
	m.nodeMasks = g.nodeMasks()
	m.idFloat = make([]bool, len(g.tensors))
	for _, n := range g.nodes {
		e := n.layer
		c := &call{entry: e, threads: cfg.threads, scratch: &m.scratch, frozen: !e.trainable,
			x: make([][]float32, len(n.in)), dx: make([][]float32, len(n.in)),
			y: make([][]float32, len(n.out)), dy: make([][]float32, len(n.out)),
			ids: make([][]int32, len(n.in)), mask: make([][]bool, len(n.in)), maskOut: make([][]bool, len(n.out))}
		for j, t := range n.in {
			if !g.tensors[t].ids {
				continue
			}
			if it, ok := n.fn.(idTaker); !ok {
				m.idFloat[t] = true
			} else if _, ok := it.takesIDs(j); !ok {
				m.idFloat[t] = true
			}
		}
		for _, t := range n.in {
			c.in = append(c.in, g.tensors[t].shape)
		}
		for _, t := range n.out {
			c.out = append(c.out, g.tensors[t].shape)
		}
		for _, w := range m.wts[e.firstW : e.firstW+len(e.weights)] {
			c.w = append(c.w, w.data)
			c.dw = append(c.dw, w.grad)
		}
		c.rng = callRNG(uint64(cfg.seed), 0, e, ordinal[e], n.call)
		m.calls = append(m.calls, c)
	}
	if spec.compile != nil {
		if err := m.compile(); err != nil {
			return nil, err
		}
	}
	m.plan()
	return m, nil
}

// compile builds the optimizer and resolves each output's loss and
// metrics.
func (m *Model) compile() error {
	var err error
	if m.opt, err = NewOptimizer(m.spec.optimizer); err != nil {
		return fmt.Errorf("gokernel: NewModel: %w", err)
	}
	if err := m.giveShapes(); err != nil {
		return fmt.Errorf("gokernel: NewModel: %w", err)
	}
	for i := range m.spec.heads {
		hs := &m.spec.heads[i]
		t := m.g.outputs[i]
		shape := m.g.tensors[t].shape
		h := &head{spec: hs, tensor: t, shape: shape, width: 1, positions: 1, mask: m.g.outMask[i]}
		if len(shape) > 0 {
			h.width = shape[len(shape)-1]
			h.positions = prod(shape[:len(shape)-1])
		}
		h.sparse = hs.loss != nil && hs.loss.kind == lossSparseCCE
		for _, ms := range hs.metrics {
			if ms.kind == metAccuracy {
				switch {
				case h.width == 1:
					ms.kind = metBinaryAccuracy
				case h.sparse:
					ms.kind = metSparseCategoricalAccuracy
				default:
					ms.kind = metCategoricalAccuracy
				}
			}
			if ms.sparseLabels() != h.sparse {
				return fmt.Errorf("gokernel: NewModel: metric %q does not fit the loss %v of output %q (integer labels go with sparse_categorical_crossentropy and sparse_categorical_accuracy or sparse_top_k_categorical_accuracy only)", ms.name, hs.loss, hs.name)
			}
			h.metrics = append(h.metrics, ms)
		}
		h.msum = make([]float64, len(h.metrics))
		h.mstate = newMetricStates(h.metrics, h.width)
		h.stateKeys = h.metricStateKeys(len(m.spec.heads))
		if err := m.compileWeighted(h); err != nil {
			return err
		}
		m.heads = append(m.heads, h)
	}
	h := m.heads[0]
	m.loss, m.metrics, m.sparse, m.msum = h.spec.loss, h.metrics, h.sparse, h.msum
	return nil
}

func initRNG(seed int64, tensor int, s initSpec) *rand.Rand {
	own := uint64(0x1417)
	if s.hasSeed {
		own = uint64(s.seed)
	}
	return rand.New(rand.NewPCG(uint64(seed), uint64(tensor)<<40^own))
}

// callRNG is the random stream of call k of layer e (ordinal in the
// model's layers): the model's seed, the layer, its own seed (if it has
// one) and the call, mixed with stream (0 for a new model; an epoch's
// stream after reseed).
func callRNG(seed, stream uint64, e *layerEntry, ordinal, k int) *rand.Rand {
	own := uint64(0)
	if s, ok := e.layer.(seeded); ok {
		if v, has := s.seed(); has {
			own = uint64(v)
		}
	}
	return rand.New(rand.NewPCG(seed^0x5eed_d50f, uint64(ordinal)<<32^own^stream^uint64(k)<<56))
}

// reseed restarts the random streams of every call from seed and stream:
// the training loop calls it when an epoch starts, so that an epoch's
// Dropout masks depend on the epoch's seeds alone.
func (m *Model) reseed(seed, stream uint64) {
	ordinal := map[*layerEntry]int{}
	for i, e := range m.g.layers {
		ordinal[e] = i
	}
	for i, n := range m.g.nodes {
		m.calls[i].rng = callRNG(seed, stream, n.layer, ordinal[n.layer], n.call)
	}
}

// plan decides which gradients the backward pass computes and where each
// contribution goes. A tensor needs its gradient when a trainable weight
// lies upstream of it (or, for gradient checks, a model input); a node
// runs backward when its outputs need theirs.
func (m *Model) plan() {
	g := m.g
	m.needGrad = make([]bool, len(g.tensors))
	m.runsBack = make([]bool, len(g.nodes))
	if m.cfg.inputGrads {
		for _, t := range g.inputs {
			m.needGrad[t] = !g.tensors[t].ids
		}
	}
	for i, n := range g.nodes {
		need := false
		for _, dw := range m.calls[i].dw {
			need = need || dw != nil
		}
		for _, t := range n.in {
			need = need || m.needGrad[t]
		}
		for _, t := range n.out {
			m.needGrad[t] = need
		}
		m.runsBack[i] = need
	}
	written := make([]bool, len(g.tensors))
	slot := func(t int) dxSlot {
		if !written[t] {
			written[t] = true
			return dxSlot{tensor: t, temp: -1}
		}
		m.temps = append(m.temps, nil)
		return dxSlot{tensor: t, temp: len(m.temps) - 1}
	}
	m.outDst = make([]dxSlot, len(g.outputs))
	m.outGiven = make([]bool, len(g.outputs))
	for i, t := range g.outputs {
		m.outDst[i] = noSlot
		if m.needGrad[t] {
			m.outDst[i] = slot(t)
		}
	}
	m.dxPlan = make([][]dxSlot, len(g.nodes))
	for i := len(g.nodes) - 1; i >= 0; i-- {
		n := g.nodes[i]
		m.dxPlan[i] = make([]dxSlot, len(n.in))
		for j, t := range n.in {
			m.dxPlan[i][j] = noSlot
			if m.runsBack[i] && m.needGrad[t] {
				m.dxPlan[i][j] = slot(t)
			}
		}
	}
	for t, need := range m.needGrad {
		if need && !written[t] {
			m.zeroGrad = append(m.zeroGrad, t)
		}
	}
}

func (m *Model) weightNames() []string {
	names := make([]string, len(m.wts))
	for i, w := range m.wts {
		names[i] = w.name
	}
	return names
}

// Spec returns the model's spec.
func (m *Model) Spec() *Spec { return m.spec }

// Optimizer returns the model's optimizer; nil if the spec has no compile
// config.
func (m *Model) Optimizer() Optimizer { return m.opt }

// Weights returns copies of the weights in Keras' get_weights() order:
// layer by layer as Keras lists them (a model inside the model in its
// place), each layer's weights in its own order (Dense: kernel (in, units)
// then bias; BatchNormalization: gamma, beta, moving_mean,
// moving_variance), named "<layer>/<weight>" as Keras' variable paths.
// Non-trainable weights (moving statistics, frozen layers) are included.
func (m *Model) Weights() []NamedTensor {
	out := make([]NamedTensor, len(m.wts))
	for i, w := range m.wts {
		out[i] = NamedTensor{Name: w.name, Shape: append([]int(nil), w.spec.shape...), Data: append([]float32(nil), w.data...)}
	}
	return out
}

// Trainable reports, in Weights() order, which weights the optimizer
// updates: false for the moving statistics of a normalization and for
// every weight of a frozen layer (trainable false).
func (m *Model) Trainable() []bool {
	out := make([]bool, len(m.wts))
	for i, w := range m.wts {
		out[i] = w.trainable
	}
	return out
}

// Role says what training does to a weight, so that whoever merges the
// weights of several trainers (the parameter server, package ps) knows how
// to merge each one.
type Role uint8

const (
	// Trainable weights are moved by the optimizer.
	Trainable Role = iota
	// Moving weights are non-trainable statistics that the forward pass in
	// training mode moves (BatchNormalization's moving mean and variance,
	// Keras' non-trainable variables of a trainable layer); the optimizer
	// never does. A Normalization layer's adapted statistics are Moving
	// too, though no training moves them.
	Moving
	// Frozen weights belong to a layer with trainable false: nothing in
	// training moves them, not even a BatchNormalization's statistics.
	Frozen
)

// String returns the role's name: "trainable", "moving" or "frozen".
func (r Role) String() string {
	switch r {
	case Trainable:
		return "trainable"
	case Moving:
		return "moving"
	case Frozen:
		return "frozen"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Roles returns, in Weights() order, what training does to each weight:
// Frozen for every weight of a frozen layer (trainable false), Moving for
// the statistics of a trainable layer, Trainable for the rest.
func (m *Model) Roles() []Role {
	out := make([]Role, len(m.wts))
	for i, w := range m.wts {
		switch {
		case w.trainable:
			out[i] = Trainable
		case w.frozen:
			out[i] = Frozen
		default:
			out[i] = Moving
		}
	}
	return out
}

// SetWeights copies w into the model's weights. Like Keras' set_weights it
// matches them by position, in Weights() order; the count and every shape
// must match.
func (m *Model) SetWeights(w []NamedTensor) error {
	if len(w) != len(m.wts) {
		return fmt.Errorf("gokernel: SetWeights: got %d tensors, want %d (%v)", len(w), len(m.wts), strings.Join(m.weightNames(), ", "))
	}
	for i, t := range w {
		mw := m.wts[i]
		if !slices.Equal(t.Shape, mw.spec.shape) || len(t.Data) != len(mw.data) {
			return fmt.Errorf("gokernel: SetWeights: tensor %d %q: got shape %v (%d values), want %q shape %v", i, t.Name, t.Shape, len(t.Data), mw.name, mw.spec.shape)
		}
	}
	for i, t := range w {
		copy(m.wts[i].data, t.Data)
	}
	return nil
}

// reserve makes the forward buffers hold at least rows rows.
func (m *Model) reserve(rows int) {
	if rows <= m.capRows {
		return
	}
	m.capRows = rows
	if m.val == nil {
		m.val = make([][]float32, len(m.g.tensors))
		m.act = make([][]float32, len(m.g.tensors))
		m.ids = make([][]int32, len(m.g.tensors))
		m.idBuf = make([][]int32, len(m.g.inputs))
		m.maskVal = make([][]bool, len(m.g.masks))
	}
	for t, ti := range m.g.tensors {
		if ti.node >= 0 || m.idFloat[t] {
			m.act[t] = make([]float32, rows*prod(ti.shape))
		}
	}
	for i, t := range m.g.inputs {
		if m.g.tensors[t].ids {
			m.idBuf[i] = make([]int32, rows*prod(m.g.tensors[t].shape))
		}
	}
	for i, mi := range m.g.masks {
		m.maskVal[i] = make([]bool, rows*prod(mi.shape))
	}
}

// StepBytes is the memory one row takes in the buffers a training step
// holds, as reserve and reserveGrads size them: every computed tensor's
// value (4 bytes an element), integer inputs' ids (4), masks (1), every
// gradient the backward pass computes and its temporaries (4). A step of
// rows rows holds rows·StepBytes bytes at least; layers' own scratch (a
// convolution's patches, a recurrent layer's gates) comes on top.
func (m *Model) StepBytes() int64 {
	var n int64
	for t, ti := range m.g.tensors {
		if ti.node >= 0 || m.idFloat[t] {
			n += 4 * int64(prod(ti.shape))
		}
		if m.needGrad[t] {
			n += 4 * int64(prod(ti.shape))
		}
	}
	for _, t := range m.g.inputs {
		if m.g.tensors[t].ids {
			n += 4 * int64(prod(m.g.tensors[t].shape))
		}
	}
	for _, mi := range m.g.masks {
		n += int64(prod(mi.shape))
	}
	temp := func(s dxSlot) {
		if s.temp >= 0 {
			n += 4 * int64(prod(m.g.tensors[s.tensor].shape))
		}
	}
	for _, p := range m.dxPlan {
		for _, s := range p {
			temp(s)
		}
	}
	for _, s := range m.outDst {
		temp(s)
	}
	return n
}

// reserveGrads makes the backward buffers hold at least rows rows.
func (m *Model) reserveGrads(rows int) {
	m.reserve(rows)
	if rows <= m.capGradRows {
		return
	}
	m.capGradRows = rows
	if m.grad == nil {
		m.grad = make([][]float32, len(m.g.tensors))
	}
	for t, need := range m.needGrad {
		if need {
			m.grad[t] = make([]float32, rows*prod(m.g.tensors[t].shape))
		}
	}
	size := func(s dxSlot) {
		if s.temp >= 0 {
			m.temps[s.temp] = make([]float32, rows*prod(m.g.tensors[s.tensor].shape))
		}
	}
	for _, p := range m.dxPlan {
		for _, s := range p {
			size(s)
		}
	}
	for _, s := range m.outDst {
		size(s)
	}
}

// dst returns the buffer of a gradient slot for rows rows (nil for none).
func (m *Model) dst(s dxSlot, rows int) []float32 {
	switch {
	case s.tensor < 0:
		return nil
	case s.temp < 0:
		return m.grad[s.tensor][:rows*prod(m.g.tensors[s.tensor].shape)]
	}
	return m.temps[s.temp][:rows*prod(m.g.tensors[s.tensor].shape)]
}

// addSlot adds a temp slot's contribution into its tensor's gradient.
func (m *Model) addSlot(s dxSlot, rows int) {
	if s.tensor < 0 || s.temp < 0 {
		return
	}
	src := m.dst(s, rows)
	g := m.grad[s.tensor][:len(src)]
	for i, v := range src {
		g[i] += v
	}
}

// run is the forward pass of the graph on rows rows of the model's inputs
// (each rows×prod(input shape)); afterwards m.val holds every tensor.
func (m *Model) run(inputs [][]float32, rows int, training bool) {
	m.runIDs(inputs, nil, rows, training)
}

// runIDs is run with the ids of the integer inputs: ids[i] (rows×prod(
// input shape) int32 values) for an integer input i, where xs[i] is not
// used; where ids is nil or ids[i] is nil, xs[i] is truncated to ids.
func (m *Model) runIDs(xs [][]float32, ids [][]int32, rows int, training bool) {
	m.reserve(rows)
	g := m.g
	for i, t := range g.inputs {
		n := rows * prod(g.tensors[t].shape)
		if !g.tensors[t].ids {
			m.val[t] = xs[i][:n]
			continue
		}
		if ids != nil && ids[i] != nil {
			m.ids[t] = ids[i][:n]
		} else {
			m.ids[t] = m.idBuf[i][:n]
			truncIDs(m.ids[t], xs[i])
		}
		m.val[t] = nil
		if m.idFloat[t] {
			m.val[t] = m.act[t][:n]
			floatIDs(m.val[t], m.ids[t])
		}
	}
	for i, n := range g.nodes {
		c := m.calls[i]
		c.rows, c.training, c.replay = rows, training, m.replay
		for j, t := range n.in {
			c.x[j], c.ids[j] = m.val[t], nil
			if g.tensors[t].ids && !m.idFloat[t] {
				c.ids[j] = m.ids[t]
			} else if g.tensors[t].ids {
				if it, ok := n.fn.(idTaker); ok {
					if _, ok := it.takesIDs(j); ok {
						c.ids[j] = m.ids[t]
					}
				}
			}
			c.mask[j] = nil
			if id := n.inMask[j]; id >= 0 {
				c.mask[j] = m.maskVal[id][:rows*prod(g.masks[id].shape)]
			}
		}
		for k, t := range n.out {
			c.y[k] = m.act[t][:rows*prod(c.out[k])]
		}
		m.computeMasks(i, c, rows)
		n.fn.forward(c)
		for k, t := range n.out {
			m.val[t] = c.y[k]
		}
	}
}

// forward runs the model on rows rows of x (rows×InputDim) and returns the
// first output (rows×OutputDim), a view of a model buffer. Dropout is
// active only when training.
func (m *Model) forward(x []float32, rows int, training bool) []float32 {
	m.run([][]float32{x}, rows, training)
	return m.val[m.g.outputs[0]]
}

// backprop runs the backward pass of the last forward pass on rows rows,
// the loss gradients being in place (see outDst), and leaves the weight
// gradients in m.grads.
func (m *Model) backprop(rows int) {
	for _, g := range m.grads {
		clear(g)
	}
	for _, t := range m.zeroGrad {
		clear(m.grad[t][:rows*prod(m.g.tensors[t].shape)])
	}
	for i, s := range m.outDst {
		switch {
		case m.outGiven[i]:
			m.addSlot(s, rows)
		case s.tensor >= 0 && s.temp < 0:
			clear(m.dst(s, rows)) // an output without a loss
		}
		m.outGiven[i] = false
	}
	for i := len(m.g.nodes) - 1; i >= 0; i-- {
		if !m.runsBack[i] {
			continue
		}
		n, c := m.g.nodes[i], m.calls[i]
		for k, t := range n.out {
			c.dy[k] = m.grad[t][:rows*prod(c.out[k])]
		}
		for j, s := range m.dxPlan[i] {
			c.dx[j] = m.dst(s, rows)
		}
		n.fn.backward(c)
		for _, s := range m.dxPlan[i] {
			m.addSlot(s, rows)
		}
	}
}

// regularize adds the regularization gradients to the weight gradients and
// returns the penalty. Only trainable weights are regularized, as in Keras.
func (m *Model) regularize(addGrad bool) float64 {
	var pen float64
	for _, w := range m.wts {
		r := w.spec.reg
		if r.zero() || !w.trainable {
			continue
		}
		pen += r.penalty(w.data)
		if addGrad {
			r.addGrad(w.data, w.grad)
		}
	}
	return pen
}

// addedLoss sums the loss terms the layers add (lossAdder) on the last
// forward pass: per batch, like the regularization penalty.
func (m *Model) addedLoss() float64 {
	var s float64
	for i, n := range m.g.nodes {
		if a, ok := n.fn.(lossAdder); ok {
			s += a.addedLoss(m.calls[i])
		}
	}
	return s
}

// stepAll runs forward and backward on one batch (training mode): xs per
// model input, ys per output (nil for an output without a loss). It leaves
// the batch-mean gradients in m.grads, each head's loss and metric sums in
// its lsum and msum, and returns the summed per-sample total loss (the
// weighted sum over the outputs, regularization and the layers' added
// losses included once per sample).
func (m *Model) stepAll(xs, ys [][]float32, rows int) float64 {
	m.reserveGrads(rows)
	m.run(xs, rows, true)
	loss := m.lossSums(ys, rows, true)
	m.backprop(rows)
	return loss + float64(rows)*(m.regularize(true)+m.addedLoss())
}

// lossSums computes each head's loss and metric sums on the last forward
// pass and, with grads, writes the loss gradients; it returns the summed
// weighted loss without regularization.
//
// For an output of shape (..., width), the loss and metrics are computed
// on each of the positions = prod(...) rows of width values and averaged
// over the positions, as Keras does; the gradient is scaled by the loss
// weight over rows·positions (Keras' "sum_over_batch_size").
func (m *Model) lossSums(ys [][]float32, rows int, grads bool) float64 {
	var total float64
	for i, h := range m.heads {
		if h.spec.loss == nil {
			continue
		}
		out := m.val[h.tensor]
		y := ys[i]
		n := rows * h.positions
		var g []float32
		if grads {
			g = m.dst(m.outDst[i], rows)
			m.outGiven[i] = g != nil
		}
		if h.mask >= 0 {
			m.maskedLossSums(h, y, rows, g)
			total += h.spec.weight * h.lsum
			continue
		}
		if m.sw != nil || h.weighted != nil {
			m.weightedHeadSums(h, y, rows, g)
			total += h.spec.weight * h.lsum
			continue
		}
		h.lsum = h.spec.loss.lossSum(out, y, n, h.width, g, h.spec.weight/float64(n)) / float64(h.positions)
		total += h.spec.weight * h.lsum
		h.batchMetrics(out, y, n)
	}
	return total
}

// step runs forward and backward on one batch of the model's one input and
// one output (training mode) and leaves the batch-mean gradients in
// m.grads. It returns the summed per-sample loss (regularization included,
// once per sample) and fills m.msum.
func (m *Model) step(x, y []float32, rows int) float64 {
	return m.stepAll([][]float32{x}, [][]float32{y}, rows)
}

// singleIO reports an error for a model with several inputs or outputs,
// which the tensor methods (Predict, Fit, ...) do not take.
func (m *Model) singleIO(op string) error {
	if len(m.g.inputs) == 1 && len(m.g.outputs) == 1 {
		return nil
	}
	var in, out []string
	for _, io := range m.spec.Inputs() {
		in = append(in, fmt.Sprintf("%s %s", io.Name, shapeStr(io.Shape)))
	}
	for _, io := range m.spec.Outputs() {
		out = append(out, fmt.Sprintf("%s %s", io.Name, shapeStr(io.Shape)))
	}
	return fmt.Errorf("gokernel: %s: the model has %d inputs (%s) and %d outputs (%s); %s takes a model with one of each", op, len(in), strings.Join(in, ", "), len(out), strings.Join(out, ", "), op)
}

// backpropFrom runs the backward pass of the last forward pass from the
// given output gradients dys[i] = ∂L/∂output i (gradient checks).
func (m *Model) backpropFrom(dys [][]float32, rows int) {
	m.reserveGrads(rows)
	for i, s := range m.outDst {
		if d := m.dst(s, rows); d != nil {
			copy(d, dys[i])
			m.outGiven[i] = true
		}
	}
	m.backprop(rows)
}

// noSlot is the slot of a gradient nobody needs.
var noSlot = dxSlot{tensor: -1, temp: -1}

// addSums adds a batch of rows to s: its rows to Count and, to Sums, the
// batch's summed per-row values of the last lossSums: "loss" (the total
// loss, regularization included), with several outputs each trained
// output's unweighted "<output>_loss", each mean metric under its History
// key ("<output>_<metric>" with several outputs) and the state of each
// other metric (AUC, Precision, ...) under its keys "<key>[<i>]"
// (Model.SumKeys).
func (m *Model) addSums(s *Sums, rows int, loss float64) {
	if s.Sums == nil {
		s.Sums = map[string]float64{}
	}
	s.Count += rows
	s.Sums["loss"] += loss
	for _, h := range m.heads {
		if h.spec.loss == nil {
			continue
		}
		if len(m.heads) > 1 {
			s.Sums[h.spec.name+"_loss"] += h.lsum
		}
		for k, ms := range h.metrics {
			if ms.st == nil {
				s.Sums[h.spec.metricKey(ms, len(m.heads))] += h.msum[k]
			}
		}
		h.addStates(s.Sums)
	}
	m.addWeightedSums(s, rows)
}
