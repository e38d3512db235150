package gokernel

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Sample weights, class weights and weighted metrics, as Keras 3 defines
// them.
//
// A batch's sample weight w_r per row (Batch.W; Keras' sample_weight) scales
// the row's loss: with the "sum_over_batch_size" reduction the batch loss is
//
//	L = Σ_r w_r·loss_r / n        (n the batch's rows, not Σ w_r)
//
// and its gradient is w_r/n·∂loss_r per row (an output with several
// positions per row spreads w_r over them, as Keras broadcasts it). The
// loss Fit and Evaluate report is then Σ w_r·loss_r over the rows divided
// by their number, plus the regularization (Keras' loss tracker weighs each
// batch's loss by its size). The compiled metrics ignore the weights; the
// weighted_metrics are Σ w_r·m_r / Σ w_r. Without weights every w_r is 1.
//
// A class_weight dict turns into sample weights from the labels, as Keras'
// class_weight_to_sample_weights does: the class of a row is its label
// rounded (one target per row) or the index of its largest target
// (one-hot rows), and its weight class_weight[class], 1 for a class not in
// the dict. Keras refuses class_weight and sample_weight together, and
// class_weight on a model with several outputs; so does the kernel.

// WeightKey is the Sums key of Σ w_r, the denominator of the weighted
// metrics; Sums hold it when the spec has weighted metrics. It is not a
// History key (see Sums.Result).
const WeightKey = "#weight"

// checkWeights reports sample weights that are too few for the batch's rows,
// negative or not finite.
func (b *Batch) checkWeights() error {
	if b.W == nil {
		return nil
	}
	if len(b.W) < b.Rows {
		return fmt.Errorf("gokernel: batch of %d rows has %d sample weights", b.Rows, len(b.W))
	}
	for r, w := range b.W[:b.Rows] {
		if !(w >= 0) || math.IsInf(float64(w), 1) {
			return fmt.Errorf("gokernel: sample weight %v of row %d is not a finite number >= 0", w, r)
		}
	}
	return nil
}

// gatherWeights returns rows idx of src (nil for no weights) in dst's memory.
func gatherWeights(dst, src []float32, idx []int) []float32 {
	if src == nil {
		return nil
	}
	dst = grow(dst, len(idx))
	for i, r := range idx {
		dst[i] = src[r]
	}
	return dst
}

// ClassWeight is Keras' class_weight: a weight per class index. A class
// not in the map weighs 1.
type ClassWeight map[int]float64

// ParseClassWeight reads a class_weight dict from JSON, as Python's
// json.dumps writes one ({"0": 1.0, "1": 5.0}: class indexes as keys).
func ParseClassWeight(raw []byte) (ClassWeight, error) {
	var m map[string]float64
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("gokernel: class_weight: want an object of class index to weight, got %s: %w", short(raw), err)
	}
	cw := ClassWeight{}
	for k, v := range m {
		var c int
		if _, err := fmt.Sscanf(k, "%d", &c); err != nil || fmt.Sprint(c) != strings.TrimSpace(k) {
			return nil, fmt.Errorf("gokernel: class_weight: key %q is not a class index", k)
		}
		cw[c] = v
	}
	return cw, cw.check()
}

// check refuses negative, infinite and NaN weights.
func (cw ClassWeight) check() error {
	keys := make([]int, 0, len(cw))
	for c := range cw {
		keys = append(keys, c)
	}
	sort.Ints(keys)
	for _, c := range keys {
		if w := cw[c]; !(w >= 0) || math.IsInf(w, 1) {
			return fmt.Errorf("gokernel: class_weight: the weight %v of class %d is not a finite number >= 0", w, c)
		}
	}
	return nil
}

// classSampleWeights sets b.W from its targets: the weight of each row's
// class (see the file comment). The model has passed checkClassWeight.
func (m *Model) classSampleWeights(cw ClassWeight, b *Batch) {
	w := b.YWidths[0]
	y := b.Y[0]
	b.W = grow(b.W, b.Rows)
	for r := range b.Rows {
		row := y[r*w : (r+1)*w]
		var c int
		if w == 1 {
			c = int(math.RoundToEven(float64(row[0])))
		} else {
			c = argmax(row)
		}
		weight, ok := cw[c]
		if !ok {
			weight = 1
		}
		b.W[r] = float32(weight)
	}
}

// parseWeightedMetrics reads the compile config's weighted_metrics as
// metrics are read (a list for one output; a list or dict per output for
// several) and names them as Keras' History does: a weighted metric whose
// key a metric already has is "weighted_<name>" (with several outputs
// "<output>_weighted_<name>").
func (s *Spec) parseWeightedMetrics(c *obj, raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	add := func(i int, r json.RawMessage) error {
		ms, err := parseMetric(c, r)
		if err != nil {
			return fmt.Errorf("%w (in weighted_metrics)", err)
		}
		s.heads[i].weighted = append(s.heads[i].weighted, ms)
		return nil
	}
	if len(s.heads) == 1 {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return c.errf("weighted_metrics: want a list, got %s", short(raw))
		}
		for _, r := range list {
			if err := add(0, r); err != nil {
				return err
			}
		}
	} else if err := s.perOutput(c, "weighted_metrics", raw, false, func(i int, r json.RawMessage) error {
		var each []json.RawMessage
		if json.Unmarshal(r, &each) != nil {
			each = []json.RawMessage{r}
		}
		for _, m := range each {
			if err := add(i, m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	keys := s.Metrics()
	for i := range s.heads {
		h := &s.heads[i]
		if h.loss == nil && len(h.weighted) > 0 {
			return c.errf("output %q has weighted metrics but no loss", h.name)
		}
		h.weightedKeys = make([]string, len(h.weighted))
		for k, ms := range h.weighted {
			key := h.metricKey(ms, len(s.heads))
			if slices.Contains(keys, key) {
				key = h.metricKey(metricSpec{name: "weighted_" + ms.name}, len(s.heads))
			}
			h.weightedKeys[k] = key
			keys = append(keys, key)
		}
	}
	return nil
}

// WeightedKeys are the keys of the weighted metrics, in EvaluateKeys'
// order; each is Σ w_r·m_r / Σ w_r, the sum divided by the WeightKey sum.
func (s *Spec) WeightedKeys() []string {
	out := []string{}
	for _, h := range s.heads {
		out = append(out, h.weightedKeys...)
	}
	return out
}

// compileWeighted resolves head h's weighted metrics as its metrics are
// resolved ("accuracy" by the output's shape and loss).
func (m *Model) compileWeighted(h *head) error {
	h.weighted = nil
	for _, ms := range h.spec.weighted {
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
			return fmt.Errorf("gokernel: NewModel: weighted metric %q does not fit the loss %v of output %q (integer labels go with sparse_categorical_crossentropy and sparse_categorical_accuracy or sparse_top_k_categorical_accuracy only)", ms.name, h.spec.loss, h.spec.name)
		}
		if ms.st != nil {
			return fmt.Errorf("gokernel: NewModel: weighted metric %q of output %q keeps a state (AUC, Precision, ...); weighted_metrics takes mean metrics (accuracy, mse, ...)", ms.name, h.spec.name)
		}
		if h.mask >= 0 {
			return fmt.Errorf("gokernel: NewModel: output %q carries a mask; weighted_metrics on a masked output are not supported", h.spec.name)
		}
		h.weighted = append(h.weighted, ms)
	}
	h.wmsum = make([]float64, len(h.weighted))
	return nil
}

// weightedHeadSums is lossSums for output h when the batch has sample
// weights m.sw (nil: all 1) or the output has weighted metrics: the loss
// and its gradient weigh row r by w_r (see the file comment); the metrics
// do not, the weighted metrics do. lsum, msum and wmsum are per row, as
// lossSums leaves them.
func (m *Model) weightedHeadSums(h *head, y []float32, rows int, grad []float32) {
	out := m.val[h.tensor]
	p, w := h.positions, h.width
	yw := w
	if h.sparse {
		yw = 1
	}
	scale := h.spec.weight / float64(rows*p)
	var lsum float64
	clear(h.wmsum)
	for r := range rows {
		sw := 1.0
		if m.sw != nil {
			sw = float64(m.sw[r])
		}
		o, t := out[r*p*w:(r+1)*p*w], y[r*p*yw:(r+1)*p*yw]
		var g []float32
		if grad != nil {
			g = grad[r*p*w : (r+1)*p*w]
		}
		l := h.spec.loss.lossSum(o, t, p, w, g, scale*sw)
		if sw != 0 {
			lsum += sw * l
		}
		if sw != 0 {
			for k, ms := range h.weighted {
				h.wmsum[k] += sw * ms.metricSum(o, t, p, w, h.sparse)
			}
		}
	}
	h.lsum = lsum / float64(p)
	h.batchMetrics(out, y, rows*p) // the compiled metrics ignore the weights
	for k := range h.wmsum {
		h.wmsum[k] /= float64(p)
	}
}

// weightSum is Σ w_r over the batch's rows: rows without sample weights.
func (m *Model) weightSum(rows int) float64 {
	if m.sw == nil {
		return float64(rows)
	}
	var s float64
	for _, w := range m.sw[:rows] {
		s += float64(w)
	}
	return s
}

// hasWeighted reports whether some output has weighted metrics.
func (s *Spec) hasWeighted() bool {
	for _, h := range s.heads {
		if len(h.weighted) > 0 {
			return true
		}
	}
	return false
}

// setSampleWeights makes b's sample weights those of the next pass. An
// output that carries a mask does not take them (Keras would multiply
// the two; the kernel does not yet).
func (m *Model) setSampleWeights(b *Batch) error {
	m.sw = nil
	if b.W == nil {
		return nil
	}
	for _, h := range m.heads {
		if h.spec.loss != nil && h.mask >= 0 {
			return fmt.Errorf("gokernel: output %q carries a mask; sample weights and class_weight with a masked output are not supported", h.spec.name)
		}
	}
	m.sw = b.W[:b.Rows]
	return nil
}

// weightedSums readies s for weighted metrics: their keys, and WeightKey.
func (m *Model) weightedSums(s *Sums) {
	if !m.spec.hasWeighted() {
		return
	}
	s.weighted = m.spec.WeightedKeys()
	s.Sums[WeightKey] = 0
	for _, k := range s.weighted {
		s.Sums[k] = 0
	}
}

// addWeightedSums adds the last pass's weighted metric sums and Σ w_r of
// its rows rows to sums.
func (m *Model) addWeightedSums(sums *Sums, rows int) {
	if !m.spec.hasWeighted() {
		return
	}
	if sums.weighted == nil {
		sums.weighted = m.spec.WeightedKeys()
	}
	sums.Sums[WeightKey] += m.weightSum(rows)
	for _, h := range m.heads {
		for k, key := range h.spec.weightedKeys {
			sums.Sums[key] += h.wmsum[k]
		}
	}
}

// weightedResult replaces out's weighted keys (see Sums.Result) and drops
// WeightKey.
func (s Sums) weightedResult(out map[string]float64) {
	wsum, ok := s.Sums[WeightKey]
	if !ok {
		return
	}
	delete(out, WeightKey)
	for _, k := range s.weighted {
		if wsum == 0 {
			out[k] = 0
		} else {
			out[k] = s.Sums[k] / wsum
		}
	}
}

// checkClassWeight checks a class_weight for the model: weights finite and
// not negative, one output with one target row per sample.
func (m *Model) checkClassWeight(cw ClassWeight) error {
	if cw == nil {
		return nil
	}
	if err := cw.check(); err != nil {
		return err
	}
	if len(m.heads) != 1 {
		return fmt.Errorf("gokernel: class_weight is only supported for models with a single output; this one has %d", len(m.heads))
	}
	if h := m.heads[0]; h.positions != 1 {
		return fmt.Errorf("gokernel: class_weight needs an output with one target row per sample; output %q has shape %v", h.spec.name, h.shape)
	}
	return nil
}

// classWeights sets the gathered batch's sample weights from its classes
// when the epoch has a class_weight.
func (e *Epoch) classWeights() error {
	if e.o.ClassWeight == nil {
		return nil
	}
	if e.batch.W != nil {
		return fmt.Errorf("gokernel: class_weight and sample weights cannot be used together (Keras refuses both too): give one")
	}
	e.batch.W = e.cw
	e.m.classSampleWeights(e.o.ClassWeight, &e.batch)
	e.cw = e.batch.W
	return nil
}

// trainingInfo fills what callbacks need of the spec: the weighted keys,
// the metrics that are better higher, the learning rate and its schedule.
func (s *Spec) trainingInfo(info *Info) {
	info.WeightedKeys = s.WeightedKeys()
	info.HigherIsBetter = []string{}
	for _, h := range s.heads {
		for _, m := range h.metrics {
			if m.kind.higherIsBetter() {
				info.HigherIsBetter = append(info.HigherIsBetter, h.metricKey(m, len(s.heads)))
			}
		}
		for k, m := range h.weighted {
			if m.kind.higherIsBetter() {
				info.HigherIsBetter = append(info.HigherIsBetter, h.weightedKeys[k])
			}
		}
	}
	if s.compile == nil {
		return
	}
	if o, err := NewOptimizer(s.optimizer); err == nil {
		info.LearningRate = float64(o.LearningRate())
		if sc, ok := o.(interface{ Schedule() Schedule }); ok && sc.Schedule() != nil {
			info.Schedule = sc.Schedule().ClassName()
		}
	}
}

// higherIsBetter reports whether larger values of the metric are better,
// as Keras' metrics' _direction "up" says: the accuracies.
func (k metricKind) higherIsBetter() bool {
	switch k {
	case metAccuracy, metCategoricalAccuracy, metSparseCategoricalAccuracy, metBinaryAccuracy:
		return true
	}
	return false
}
