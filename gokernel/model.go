package gokernel

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"

	"github.com/gophas/gophas/gokernel/internal/gemm"
)

// Option configures NewModel and LoadModel.
type Option func(*config)

type config struct {
	seed    int64
	threads int
}

// WithSeed seeds the weight initializers and the Dropout masks. The default
// is 0: two models built from the same spec start from the same weights.
func WithSeed(seed int64) Option { return func(c *config) { c.seed = seed } }

// WithThreads sets how many goroutines a matrix multiply may use. The
// default (and any n < 1) is runtime.GOMAXPROCS(0).
func WithThreads(n int) Option { return func(c *config) { c.threads = n } }

// Model is a spec with its weights, its optimizer (if the spec has a compile
// config) and the buffers for its forward and backward passes, allocated for
// the largest batch seen and reused. A Model is not safe for concurrent use.
type Model struct {
	spec   *Spec
	cfg    config
	layers []*layer
	outDim int

	params, grads [][]float32 // in Keras get_weights() order
	names         []string
	shapes        [][]int
	regs          []regSpec

	opt     Optimizer
	loss    *lossSpec
	metrics []metricSpec // accuracy resolved
	sparse  bool         // targets are integer labels

	capRows    int
	lossGrad   []float32 // ∂L/∂output, capRows×outDim
	xbuf, ybuf []float32 // gathered batches for Fit
	msum       []float64 // metric sums of one batch

	reuseMask bool // tests: Dropout applies the masks of the previous pass
}

// layer is one compute layer with its parameters and its per-batch buffers.
type layer struct {
	spec    *layerSpec
	in, out int // widths
	w, b    []float32
	dw, db  []float32

	z, a   []float32 // pre-activation and output buffers (capRows rows)
	gin    []float32 // ∂L/∂input, when a layer below needs it
	mask   []float32 // Dropout
	rng    *rand.Rand
	inp    []float32 // this pass: the input and output seen
	outp   []float32
	needIn bool // a Dense layer lies below, so ∂L/∂input is needed
	active bool // Dropout: the mask was applied in this pass
}

// NewModel builds a model from spec with freshly initialized weights. If the
// spec has a compile config it also builds the optimizer, the loss and the
// metrics; without one the model can Predict but not train or evaluate.
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
	m := &Model{spec: spec, cfg: cfg, outDim: spec.OutputDim()}
	denseBelow := false
	for i := range spec.layers {
		ls := &spec.layers[i]
		l := &layer{spec: ls, in: prod(ls.inShape), out: prod(ls.outShape), needIn: denseBelow}
		switch ls.kind {
		case kindDense:
			denseBelow = true
			l.w, l.dw = make([]float32, l.in*l.out), make([]float32, l.in*l.out)
			m.addParam(ls.name+"/kernel", []int{l.in, l.out}, l.w, l.dw, ls.kernelReg)
			ls.kernelInit.fill(l.w, l.in, l.out, initRNG(cfg.seed, len(m.params)-1, ls.kernelInit))
			if ls.useBias {
				l.b, l.db = make([]float32, l.out), make([]float32, l.out)
				m.addParam(ls.name+"/bias", []int{l.out}, l.b, l.db, ls.biasReg)
				ls.biasInit.fill(l.b, l.in, l.out, initRNG(cfg.seed, len(m.params)-1, ls.biasInit))
			}
		case kindDropout:
			s := uint64(0)
			if ls.hasSeed {
				s = uint64(ls.seed)
			}
			l.rng = rand.New(rand.NewPCG(uint64(cfg.seed)^0x5eed_d50f, uint64(ls.index)<<32^s))
		}
		m.layers = append(m.layers, l)
	}
	if spec.compile != nil {
		var err error
		if m.opt, err = NewOptimizer(spec.optimizer); err != nil {
			return nil, fmt.Errorf("gokernel: NewModel: %w", err)
		}
		m.loss = spec.loss
		if m.loss != nil {
			m.sparse = m.loss.kind == lossSparseCCE
		}
		for _, ms := range spec.metrics {
			if ms.kind == metAccuracy {
				switch {
				case m.outDim == 1:
					ms.kind = metBinaryAccuracy
				case m.sparse:
					ms.kind = metSparseCategoricalAccuracy
				default:
					ms.kind = metCategoricalAccuracy
				}
			}
			if (ms.kind == metSparseCategoricalAccuracy) != m.sparse {
				return nil, fmt.Errorf("gokernel: NewModel: metric %q does not fit the loss %v (integer labels go with sparse_categorical_crossentropy and sparse_categorical_accuracy only)", ms.name, spec.Loss())
			}
			m.metrics = append(m.metrics, ms)
		}
		m.msum = make([]float64, len(m.metrics))
	}
	return m, nil
}

func initRNG(seed int64, tensor int, s initSpec) *rand.Rand {
	own := uint64(0x1417)
	if s.hasSeed {
		own = uint64(s.seed)
	}
	return rand.New(rand.NewPCG(uint64(seed), uint64(tensor)<<40^own))
}

func (m *Model) addParam(name string, shape []int, w, g []float32, r regSpec) {
	m.params = append(m.params, w)
	m.grads = append(m.grads, g)
	m.names = append(m.names, name)
	m.shapes = append(m.shapes, shape)
	m.regs = append(m.regs, r)
}

// Spec returns the model's spec.
func (m *Model) Spec() *Spec { return m.spec }

// Optimizer returns the model's optimizer; nil if the spec has no compile
// config.
func (m *Model) Optimizer() Optimizer { return m.opt }

// Weights returns copies of the weights in Keras' get_weights() order: per
// Dense layer its kernel (in, out) named "<layer>/kernel", then its bias
// (out) named "<layer>/bias" if it has one.
func (m *Model) Weights() []NamedTensor {
	out := make([]NamedTensor, len(m.params))
	for i, p := range m.params {
		out[i] = NamedTensor{Name: m.names[i], Shape: append([]int(nil), m.shapes[i]...), Data: append([]float32(nil), p...)}
	}
	return out
}

// SetWeights copies w into the model's weights. Like Keras' set_weights it
// matches them by position, in Weights() order; the count and every shape
// must match.
func (m *Model) SetWeights(w []NamedTensor) error {
	if len(w) != len(m.params) {
		return fmt.Errorf("gokernel: SetWeights: got %d tensors, want %d (%v)", len(w), len(m.params), m.names)
	}
	for i, t := range w {
		if !slices.Equal(t.Shape, m.shapes[i]) || len(t.Data) != len(m.params[i]) {
			return fmt.Errorf("gokernel: SetWeights: tensor %d %q: got shape %v (%d values), want %q shape %v", i, t.Name, t.Shape, len(t.Data), m.names[i], m.shapes[i])
		}
	}
	for i, t := range w {
		copy(m.params[i], t.Data)
	}
	return nil
}

// reserve makes every buffer hold at least rows rows.
func (m *Model) reserve(rows int) {
	if rows <= m.capRows {
		return
	}
	m.capRows = rows
	for _, l := range m.layers {
		switch l.spec.kind {
		case kindDense:
			l.a = make([]float32, rows*l.out)
			if l.spec.act != actLinear {
				l.z = make([]float32, rows*l.out)
			}
		case kindActivation:
			l.a = make([]float32, rows*l.out)
		case kindDropout:
			l.a = make([]float32, rows*l.out)
			l.mask = make([]float32, rows*l.out)
		}
		if l.needIn && (l.spec.kind == kindDense) {
			l.gin = make([]float32, rows*l.in)
		}
	}
	m.lossGrad = make([]float32, rows*m.outDim)
}

// forward runs the layers on rows rows of x (rows×InputDim) and returns the
// output (rows×OutputDim), a view of a model buffer. Dropout is active only
// when training.
//
// Dense computes z = x·W + b with gemm.Sgemm, then a = f(z). Dropout keeps
// each value with probability 1-rate and scales it by 1/(1-rate) (inverted
// dropout), so inference needs no rescaling.
func (m *Model) forward(x []float32, rows int, training bool) []float32 {
	m.reserve(rows)
	cur := x[:rows*m.spec.InputDim()]
	for _, l := range m.layers {
		l.inp = cur
		n := rows * l.out
		switch l.spec.kind {
		case kindDense:
			z := l.a[:n]
			if l.z != nil {
				z = l.z[:n]
			}
			gemm.Sgemm(m.cfg.threads, false, false, rows, l.out, l.in, 1, cur, l.in, l.w, l.out, 0, z, l.out)
			if l.b != nil {
				addBias(z, l.b)
			}
			if l.z != nil {
				l.spec.act.forward(z, l.a[:n], l.out)
			}
			cur = l.a[:n]
		case kindActivation:
			l.spec.act.forward(cur, l.a[:n], l.out)
			cur = l.a[:n]
		case kindDropout:
			l.active = training && l.spec.rate > 0
			if l.active {
				if m.reuseMask {
					for j, v := range l.mask[:n] {
						l.a[j] = cur[j] * v
					}
				} else {
					dropout(cur, l.a[:n], l.mask[:n], l.spec.rate, l.rng)
				}
				cur = l.a[:n]
			}
		case kindFlatten:
			// Row-major rows are already flat.
		}
		l.outp = cur
	}
	return cur
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

// dropout sets mask to 0 (probability rate) or 1/(1-rate) and out = in·mask.
func dropout(in, out, mask []float32, rate float64, rng *rand.Rand) {
	keep := float32(1 / (1 - rate))
	threshold := uint64(rate * (1 << 53))
	for i, v := range in {
		if rng.Uint64()>>11 < threshold {
			mask[i], out[i] = 0, 0
		} else {
			mask[i], out[i] = keep, v*keep
		}
	}
}

// backward propagates g = ∂L/∂output (rows×OutputDim, overwritten) through
// the layers of the last forward pass and sets the weight gradients:
//
//	∂L/∂z = f'(z)·g,  ∂L/∂W = xᵀ·∂L/∂z,  ∂L/∂b = Σ_rows ∂L/∂z,  ∂L/∂x = ∂L/∂z·Wᵀ
//
// Dropout multiplies g by its mask.
func (m *Model) backward(g []float32, rows int) {
	for i := len(m.layers) - 1; i >= 0; i-- {
		l := m.layers[i]
		switch l.spec.kind {
		case kindDense:
			dz := g
			if l.z != nil {
				l.spec.act.backward(l.z[:rows*l.out], l.outp, g, dz, l.out)
			}
			gemm.Sgemm(m.cfg.threads, true, false, l.in, l.out, rows, 1, l.inp, l.in, dz, l.out, 0, l.dw, l.out)
			if l.db != nil {
				colSum(dz, l.db)
			}
			if !l.needIn {
				return
			}
			gin := l.gin[:rows*l.in]
			gemm.Sgemm(m.cfg.threads, false, true, rows, l.in, l.out, 1, dz, l.out, l.w, l.out, 0, gin, l.in)
			g = gin
		case kindActivation:
			l.spec.act.backward(l.inp, l.outp, g, g, l.out)
		case kindDropout:
			if l.active {
				for j, v := range l.mask[:len(g)] {
					g[j] *= v
				}
			}
		}
	}
}

// colSum sets db to the column sums of the rows×len(db) block dz.
func colSum(dz, db []float32) {
	clear(db)
	for r := 0; r < len(dz); r += len(db) {
		for j, v := range dz[r : r+len(db)] {
			db[j] += v
		}
	}
}

// regularize adds the regularization gradients to the weight gradients and
// returns the penalty.
func (m *Model) regularize(addGrad bool) float64 {
	var pen float64
	for i, r := range m.regs {
		if r.zero() {
			continue
		}
		pen += r.penalty(m.params[i])
		if addGrad {
			r.addGrad(m.params[i], m.grads[i])
		}
	}
	return pen
}

// step runs forward and backward on one batch (training mode) and leaves
// the batch-mean gradients in m.grads. It returns the summed per-sample loss
// (regularization included, once per sample) and fills m.msum.
func (m *Model) step(x, y []float32, rows int) float64 {
	out := m.forward(x, rows, true)
	g := m.lossGrad[:rows*m.outDim]
	loss := m.loss.lossSum(out, y, rows, m.outDim, g, 1/float64(rows))
	for k, ms := range m.metrics {
		m.msum[k] = ms.kind.metricSum(out, y, rows, m.outDim, m.sparse)
	}
	m.backward(g, rows)
	return loss + float64(rows)*m.regularize(true)
}
