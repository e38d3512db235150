package gokernel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
)

// epsilon is Keras' backend.epsilon(), the clip bound for probabilities.
const epsilon = 1e-7

// lossKind is a Keras loss. For one sample with prediction p (the model's
// output row, width m) and target y, the losses are, as Keras 3's JAX and
// NumPy backends compute them:
//
//	categorical_crossentropy         q = p/Σp, c = clip(q, ε, 1-ε), L = -Σ y_j log c_j
//	  from_logits                    L = -Σ y_j log_softmax(p)_j
//	  label_smoothing s              y_j ← y_j(1-s) + s/m first
//	sparse_categorical_crossentropy  the same with y the one-hot row of the integer label
//	binary_crossentropy              c = clip(p, ε, 1-ε), L = mean_j -(y_j log c_j + (1-y_j) log(1-c_j))
//	  from_logits                    L = mean_j max(p_j,0) - p_j y_j + log(1 + e^-|p_j|)
//	  label_smoothing s              y_j ← y_j(1-s) + s/2 first
//	mean_squared_error               L = mean_j (p_j - y_j)²
//	mean_absolute_error              L = mean_j |p_j - y_j|
//	huber                            L = mean_j ½e² if |e| ≤ δ else δ|e| - ½δ²,  e = p_j - y_j, δ = 1
//
// with ε = 1e-7. The batch loss is the mean over samples (Keras'
// "sum_over_batch_size") plus the weight regularization penalties. Keras'
// JAX, NumPy and PyTorch backends do not fuse a softmax (sigmoid) output with
// the cross-entropy from probabilities, and neither does the kernel: the
// gradient flows through the clip (zero outside [ε, 1-ε]), the normalization
// and the softmax. (Keras' TensorFlow backend recovers the logits of a
// softmax or sigmoid output and uses the from_logits form; the two differ
// only where the clip is active.)
//
// The other losses Keras has (the percentage, logarithmic, Poisson,
// Kullback-Leibler, hinge, cosine and focal losses) are each in a
// loss_<name>.go file, listed in lossTable (loss_table.go); their kinds
// follow these.
type lossKind int

const (
	lossCCE lossKind = iota
	lossSparseCCE
	lossBCE
	lossMSE
	lossMAE
	lossHuber
)

var lossNames = []string{"categorical_crossentropy", "sparse_categorical_crossentropy", "binary_crossentropy", "mean_squared_error", "mean_absolute_error", "huber"}

func (k lossKind) String() string {
	if int(k) >= len(lossNames) {
		return lossTable[int(k)-len(lossNames)].name
	}
	return lossNames[k]
}

// supportedLosses lists every loss name the kernel takes.
func supportedLosses() []string {
	names := slices.Clone(lossNames)
	for _, d := range lossTable {
		names = append(names, d.name)
	}
	return names
}

var lossAliases = map[string]lossKind{
	"categorical_crossentropy": lossCCE, "CategoricalCrossentropy": lossCCE,
	"sparse_categorical_crossentropy": lossSparseCCE, "SparseCategoricalCrossentropy": lossSparseCCE,
	"binary_crossentropy": lossBCE, "BinaryCrossentropy": lossBCE,
	"mean_squared_error": lossMSE, "mse": lossMSE, "MeanSquaredError": lossMSE,
	"mean_absolute_error": lossMAE, "mae": lossMAE, "MeanAbsoluteError": lossMAE,
	"huber": lossHuber, "huber_loss": lossHuber, "Huber": lossHuber,
}

type lossSpec struct {
	kind       lossKind
	fromLogits bool
	delta      float64   // huber
	smoothing  float64   // label_smoothing of the cross-entropies
	alpha      float64   // focal losses
	gamma      float64   // focal losses
	balance    bool      // binary_focal_crossentropy: apply_class_balancing
	fn         batchLoss // a loss of lossTable, for these arguments
}

// metricKind is a Keras metric, averaged per sample:
//
//	categorical_accuracy         argmax y == argmax p (first maximum wins)
//	sparse_categorical_accuracy  y == argmax p
//	binary_accuracy              mean_j [(p_j > 0.5) == y_j]
//	mae, mse                     as the losses
//
// "accuracy" (or "acc") resolves the way Keras resolves it from the shapes:
// binary_accuracy for an output of width 1, sparse_categorical_accuracy for
// integer labels (the sparse categorical cross-entropy loss), else
// categorical_accuracy.
type metricKind int

const (
	metAccuracy metricKind = iota // resolved when the model is built
	metCategoricalAccuracy
	metSparseCategoricalAccuracy
	metBinaryAccuracy
	metMAE
	metMSE
	metTable // a metric of metricTable
)

var metricAliases = map[string]metricKind{
	"accuracy": metAccuracy, "acc": metAccuracy,
	"categorical_accuracy": metCategoricalAccuracy, "CategoricalAccuracy": metCategoricalAccuracy,
	"sparse_categorical_accuracy": metSparseCategoricalAccuracy, "SparseCategoricalAccuracy": metSparseCategoricalAccuracy,
	"binary_accuracy": metBinaryAccuracy, "BinaryAccuracy": metBinaryAccuracy,
	"mae": metMAE, "mean_absolute_error": metMAE, "MeanAbsoluteError": metMAE,
	"mse": metMSE, "mean_squared_error": metMSE, "MeanSquaredError": metMSE,
}

type metricSpec struct {
	name string // the History key
	kind metricKind
	// A metric of metricTable (metric_table.go): a mean of a per-sample
	// value (mean), or a metric whose result is not a mean (st).
	def  *metricDef
	mean rowMetric
	st   metricState
}

// headSpec is the training configuration of one model output: its loss
// (nil: the output is not trained), the loss's weight in the total and its
// metrics. The model's loss is Σ weight·loss over the outputs (plus the
// regularization penalties); with several outputs Keras also reports each
// output's unweighted loss as "<output>_loss" and its metrics as
// "<output>_<metric>".
type headSpec struct {
	name    string
	loss    *lossSpec
	weight  float64
	metrics []metricSpec

	weighted     []metricSpec // weighted_metrics (sample_weight.go)
	weightedKeys []string     // their History keys
}

// metricKey is the History key of metric m of this output.
func (h *headSpec) metricKey(m metricSpec, outputs int) string {
	if outputs == 1 {
		return m.name
	}
	return h.name + "_" + m.name
}

// perOutput reads a compile entry given per output: as a list with one
// entry per output, as a dict keyed by output name, or (loss and
// loss_weights: shared) as one entry for every output. It calls set(output,
// entry) for each output with a non-null entry.
func (s *Spec) perOutput(c *obj, key string, raw json.RawMessage, shared bool, set func(i int, r json.RawMessage) error) error {
	names := s.graph.outputNames
	t := bytes.TrimSpace(raw)
	var dict map[string]json.RawMessage
	switch {
	case t[0] == '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return c.errf("%s: %v", key, err)
		}
		if len(list) != len(names) {
			return c.errf("%s: %d entries for the %d outputs %v", key, len(list), len(names), names)
		}
		for i, r := range list {
			if !isNull(r) {
				if err := set(i, r); err != nil {
					return err
				}
			}
		}
		return nil
	case t[0] == '{' && json.Unmarshal(raw, &dict) == nil && (!shared || dict["class_name"] == nil):
		for k := range dict {
			if !slices.Contains(names, k) {
				return c.errf("%s: %q is not an output of the model (%v are)", key, k, names)
			}
		}
		for i, n := range names {
			if r, ok := dict[n]; ok && !isNull(r) {
				if err := set(i, r); err != nil {
					return err
				}
			}
		}
		return nil
	case !shared:
		return c.errf("%s: want a list with one entry per output or a dict keyed by the outputs %v, got %s", key, names, short(raw))
	}
	for i := range names {
		if err := set(i, raw); err != nil {
			return err
		}
	}
	return nil
}

func (s *Spec) parseCompile(raw json.RawMessage) error {
	c, err := newObj("compile config", raw)
	if err != nil {
		return err
	}
	s.optimizer = c.get("optimizer")
	if isNull(s.optimizer) {
		s.optimizer = json.RawMessage(`"rmsprop"`)
	}
	s.heads = make([]headSpec, len(s.graph.outputNames))
	for i, n := range s.graph.outputNames {
		s.heads[i] = headSpec{name: n, weight: 1}
	}
	if lr := c.get("loss"); !isNull(lr) {
		// A single loss (a name or a serialized loss) applies to every
		// output, as in Keras.
		err := s.perOutput(c, "loss", lr, true, func(i int, r json.RawMessage) error {
			l, err := parseLoss(c, r)
			s.heads[i].loss = l
			return err
		})
		if err != nil {
			return err
		}
	}
	if lw := c.get("loss_weights"); !isNull(lw) {
		var one float64
		if json.Unmarshal(lw, &one) == nil {
			for i := range s.heads {
				s.heads[i].weight = one
			}
		} else if err := s.perOutput(c, "loss_weights", lw, true, func(i int, r json.RawMessage) error {
			if err := json.Unmarshal(r, &s.heads[i].weight); err != nil {
				return c.errf("loss_weights: want numbers, got %s", short(r))
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if mr := c.get("metrics"); !isNull(mr) {
		var list []json.RawMessage
		if len(s.heads) == 1 {
			if err := json.Unmarshal(mr, &list); err != nil {
				return c.errf("metrics: want a list, got %s", short(mr))
			}
			for _, m := range list {
				ms, err := parseMetric(c, m)
				if err != nil {
					return err
				}
				s.heads[0].metrics = append(s.heads[0].metrics, ms)
			}
		} else if err := s.perOutput(c, "metrics", mr, false, func(i int, r json.RawMessage) error {
			var each []json.RawMessage
			if json.Unmarshal(r, &each) != nil {
				each = []json.RawMessage{r}
			}
			for _, m := range each {
				ms, err := parseMetric(c, m)
				if err != nil {
					return err
				}
				s.heads[i].metrics = append(s.heads[i].metrics, ms)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	for _, h := range s.heads {
		if h.loss == nil && len(h.metrics) > 0 && s.hasLoss() {
			return c.errf("output %q has metrics but no loss", h.name)
		}
	}
	s.loss, s.metrics = s.heads[0].loss, s.heads[0].metrics
	if err := s.parseWeightedMetrics(c, c.get("weighted_metrics")); err != nil {
		return err
	}
	// These change how Keras runs a step, not what it computes.
	c.ignore("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss")
	return c.done()
}

// hasLoss reports whether any output has a loss.
func (s *Spec) hasLoss() bool {
	for _, h := range s.heads {
		if h.loss != nil {
			return true
		}
	}
	return false
}

func parseLoss(c *obj, raw json.RawMessage) (*lossSpec, error) {
	l := &lossSpec{delta: 1}
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		if k, ok := lossAliases[name]; ok {
			l.kind = k
			return l, nil
		}
		if d, k := tableLoss(name); d != nil {
			l.kind = k
			return l, d.setDefaults(l)
		}
		return nil, c.errf("loss %q is not supported (%v are)", name, supportedLosses())
	}
	o, err := newObj("compile config: loss", raw)
	if err != nil {
		return nil, err
	}
	cls, err := o.str("class_name", "")
	if err != nil {
		return nil, err
	}
	o.ignore("module", "registered_name")
	if fn, ok := functionName(o, cls); ok {
		return parseLoss(c, fn)
	}
	k, ok := lossAliases[cls]
	def, tk := tableLoss(cls)
	if !ok && def == nil {
		return nil, o.errf("loss %s is not supported (%v are)", cls, supportedLosses())
	}
	if def != nil {
		k = tk
	}
	l.kind = k
	cfg, err := newObj("compile config: loss "+cls, o.get("config"))
	if err != nil {
		return nil, err
	}
	if err := o.done(); err != nil {
		return nil, err
	}
	cfg.ignore("name")
	if err := cfg.mustBe("reduction", `"sum_over_batch_size"`); err != nil {
		return nil, err
	}
	if err := cfg.mustBe("dtype", `"float32"`); err != nil {
		return nil, err
	}
	if def != nil {
		if err := def.parseArgs(cfg, l); err != nil {
			return nil, err
		}
		return l, cfg.done()
	}
	switch k {
	case lossCCE, lossSparseCCE, lossBCE:
		if l.fromLogits, err = cfg.boolean("from_logits", false); err != nil {
			return nil, err
		}
		if k == lossSparseCCE {
			if err := cfg.mustBe("label_smoothing", "0"); err != nil {
				return nil, err
			}
		} else if l.smoothing, err = smoothing(cfg); err != nil {
			return nil, err
		}
		if err := cfg.mustBe("axis", "-1"); err != nil {
			return nil, err
		}
		if err := cfg.mustBe("ignore_class"); err != nil {
			return nil, err
		}
	case lossHuber:
		if l.delta, err = cfg.num("delta", 1); err != nil {
			return nil, err
		}
		if l.delta <= 0 {
			return nil, cfg.errf("delta %v must be positive", l.delta)
		}
	}
	return l, cfg.done()
}

// smoothing reads label_smoothing, which must be in [0, 1].
func smoothing(cfg *obj) (float64, error) {
	s, err := cfg.num("label_smoothing", 0)
	if err != nil {
		return 0, err
	}
	if !(s >= 0 && s <= 1) {
		return 0, cfg.errf("label_smoothing %v must be in [0, 1]", s)
	}
	return s, nil
}

func parseMetric(c *obj, raw json.RawMessage) (metricSpec, error) {
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		if k, ok := metricAliases[name]; ok {
			return metricSpec{name: name, kind: k}, nil
		}
		if d := tableMetric(name); d != nil {
			return d.spec(name, nil)
		}
		return metricSpec{}, c.errf("metric %q is not supported (%v are)", name, supportedMetrics())
	}
	o, err := newObj("compile config: metric", raw)
	if err != nil {
		return metricSpec{}, err
	}
	cls, err := o.str("class_name", "")
	if err != nil {
		return metricSpec{}, err
	}
	o.ignore("module", "registered_name")
	if fn, ok := functionName(o, cls); ok {
		return parseMetric(c, fn)
	}
	k, ok := metricAliases[cls]
	d := tableMetric(cls)
	if !ok && d == nil {
		return metricSpec{}, o.errf("metric %s is not supported (%v are)", cls, supportedMetrics())
	}
	cfg, err := newObj("compile config: metric "+cls, o.get("config"))
	if err != nil {
		return metricSpec{}, err
	}
	if err := o.done(); err != nil {
		return metricSpec{}, err
	}
	def := snake(cls)
	if d != nil {
		def = d.name
	}
	name, err = cfg.str("name", def)
	if err != nil {
		return metricSpec{}, err
	}
	if err := cfg.mustBe("dtype", `"float32"`); err != nil {
		return metricSpec{}, err
	}
	if d != nil {
		ms, err := d.spec(name, cfg)
		if err != nil {
			return metricSpec{}, err
		}
		return ms, cfg.done()
	}
	if k == metBinaryAccuracy {
		if err := cfg.mustBe("threshold", "0.5"); err != nil {
			return metricSpec{}, err
		}
	}
	return metricSpec{name: name, kind: k}, cfg.done()
}

// functionName returns, for a loss or metric serialized as a plain function
// ({"class_name": "function", "config": "categorical_crossentropy", ...},
// as Keras 3 writes a compile config it read from an HDF5 file), the JSON
// string of the function's name.
func functionName(o *obj, cls string) (json.RawMessage, bool) {
	if cls != "function" {
		return nil, false
	}
	cfg := o.get("config")
	var name string
	if json.Unmarshal(cfg, &name) != nil {
		return nil, false
	}
	return cfg, true
}

// lossSum returns Σ over the rows of the per-sample loss and, if grad is
// not nil, sets grad = scale·∂(Σ loss)/∂out. out is rows×m; y is rows×m, or
// rows labels for the sparse loss.
func (l *lossSpec) lossSum(out, y []float32, rows, m int, grad []float32, scale float64) float64 {
	if l.fn != nil {
		return l.fn(out[:rows*m], y[:rows*m], rows, m, grad, scale)
	}
	var total float64
	for r := 0; r < rows; r++ {
		p := out[r*m : (r+1)*m]
		var g []float32
		if grad != nil {
			g = grad[r*m : (r+1)*m]
		}
		var yr []float32
		label := -1
		if l.kind == lossSparseCCE {
			label = int(y[r])
		} else {
			yr = y[r*m : (r+1)*m]
		}
		switch l.kind {
		case lossCCE, lossSparseCCE:
			total += crossEntropy(p, yr, label, l.fromLogits, l.smoothing, g, scale)
		case lossBCE:
			total += binaryCrossEntropy(p, yr, l.fromLogits, l.smoothing, g, scale)
		default:
			total += l.regression(p, yr, g, scale)
		}
	}
	return total
}

// target is y_j, or the one-hot row of label if yr is nil, smoothed by
// ls: y_j(1-ls) + ls/m for a row of width m.
func target(yr []float32, label, j int, ls float64, m int) float64 {
	var t float64
	switch {
	case yr != nil:
		t = float64(yr[j])
	case j == label:
		t = 1
	}
	if ls != 0 {
		t = t*(1-ls) + ls/float64(m)
	}
	return t
}

// crossEntropy is categorical_crossentropy of one sample, its targets
// smoothed by ls (y ← y(1-ls) + ls/m).
func crossEntropy(p, yr []float32, label int, fromLogits bool, ls float64, g []float32, scale float64) float64 {
	var loss float64
	m := len(p)
	if fromLogits {
		mx := p[0]
		for _, v := range p {
			mx = max(mx, v)
		}
		var se, sy float64
		for _, v := range p {
			se += math.Exp(float64(v - mx))
		}
		lse := float64(mx) + math.Log(se)
		for j, v := range p {
			t := target(yr, label, j, ls, m)
			sy += t
			loss -= t * (float64(v) - lse)
		}
		if g != nil {
			// ∂L/∂p_j = softmax(p)_j Σy - y_j
			for j, v := range p {
				g[j] = float32(scale * (math.Exp(float64(v)-lse)*sy - target(yr, label, j, ls, m)))
			}
		}
		return loss
	}
	var sum float64
	for _, v := range p {
		sum += float64(v)
	}
	// dq = ∂L/∂q_j, zero where the clip is active; then
	// ∂L/∂p_k = (dq_k - Σ_j dq_j q_j) / Σp.
	var dot float64
	for j, v := range p {
		q := float64(v) / sum
		c := min(max(q, epsilon), 1-epsilon)
		t := target(yr, label, j, ls, m)
		loss -= t * math.Log(c)
		if g != nil {
			var dq float64
			if q >= epsilon && q <= 1-epsilon {
				dq = -t / q
			}
			dot += dq * q
			g[j] = float32(dq)
		}
	}
	if g != nil {
		for j := range g {
			g[j] = float32(scale * (float64(g[j]) - dot) / sum)
		}
	}
	return loss
}

// binaryCrossEntropy is binary_crossentropy of one sample, its targets
// smoothed by ls (y ← y(1-ls) + ls/2).
func binaryCrossEntropy(p, yr []float32, fromLogits bool, ls float64, g []float32, scale float64) float64 {
	m := float64(len(p))
	var loss float64
	for j, v := range p {
		x, t := float64(v), float64(yr[j])*(1-ls)+0.5*ls
		if fromLogits {
			loss += math.Max(x, 0) - x*t + math.Log1p(math.Exp(-math.Abs(x)))
			if g != nil {
				g[j] = float32(scale * (sigmoid(x) - t) / m)
			}
			continue
		}
		c := min(max(x, epsilon), 1-epsilon)
		loss -= t*math.Log(c) + (1-t)*math.Log(1-c)
		if g != nil {
			var d float64
			if x >= epsilon && x <= 1-epsilon {
				d = -t/c + (1-t)/(1-c)
			}
			g[j] = float32(scale * d / m)
		}
	}
	return loss / m
}

func (l *lossSpec) regression(p, yr []float32, g []float32, scale float64) float64 {
	m := float64(len(p))
	var loss float64
	for j, v := range p {
		e := float64(v) - float64(yr[j])
		var d float64
		switch l.kind {
		case lossMSE:
			loss += e * e
			d = 2 * e
		case lossMAE:
			loss += math.Abs(e)
			d = sign(e)
		case lossHuber:
			if math.Abs(e) <= l.delta {
				loss += 0.5 * e * e
				d = e
			} else {
				loss += l.delta*math.Abs(e) - 0.5*l.delta*l.delta
				d = l.delta * sign(e)
			}
		}
		if g != nil {
			g[j] = float32(scale * d / m)
		}
	}
	return loss / m
}

func sign(x float64) float64 {
	switch {
	case x > 0:
		return 1
	case x < 0:
		return -1
	}
	return 0
}

// metricSum returns Σ over the rows of the per-sample metric value.
func (k metricKind) metricSum(out, y []float32, rows, m int, sparse bool) float64 {
	var total float64
	for r := 0; r < rows; r++ {
		p := out[r*m : (r+1)*m]
		switch k {
		case metCategoricalAccuracy:
			if argmax(p) == argmax(y[r*m:(r+1)*m]) {
				total++
			}
		case metSparseCategoricalAccuracy:
			if float32(argmax(p)) == y[r] {
				total++
			}
		case metBinaryAccuracy:
			var hit float64
			for j, v := range p {
				var pred float32
				if v > 0.5 {
					pred = 1
				}
				if pred == y[r*m+j] {
					hit++
				}
			}
			total += hit / float64(m)
		case metMAE, metMSE:
			var s float64
			for j, v := range p {
				e := float64(v) - float64(y[r*m+j])
				if k == metMAE {
					s += math.Abs(e)
				} else {
					s += e * e
				}
			}
			total += s / float64(m)
		default:
			panic(fmt.Sprintf("gokernel: unresolved metric kind %d", k))
		}
	}
	return total
}

func argmax(v []float32) int {
	best := 0
	for j, x := range v {
		if x > v[best] {
			best = j
		}
	}
	return best
}
