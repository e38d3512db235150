package gokernel

import (
	"math"
	"slices"
)

// String is the loss's Keras name ("none" for an output without a loss).
func (l *lossSpec) String() string {
	if l == nil {
		return "none"
	}
	return l.kind.String()
}

// newMetricStates allocates the state of each metric that keeps one (nil
// for a mean metric), for outputs of width m.
func newMetricStates(ms []metricSpec, m int) [][]float64 {
	out := make([][]float64, len(ms))
	for k, s := range ms {
		if s.st != nil {
			out[k] = make([]float64, s.st.size(m))
		}
	}
	return out
}

// batchMetrics computes this head's metrics on one batch of n rows of
// outputs out and targets y: msum[k] the sum over the samples of a mean
// metric (averaged over the positions of an N-D output, as the loss),
// mstate[k] the state of any other metric.
func (h *head) batchMetrics(out, y []float32, n int) {
	for k, ms := range h.metrics {
		if ms.st != nil {
			clear(h.mstate[k])
			ms.st.add(h.mstate[k], out, y, n, h.width)
			continue
		}
		h.msum[k] = ms.metricSum(out, y, n, h.width, h.sparse) / float64(h.positions)
	}
}

// addStates adds the last step's state of each stateful metric of h to
// sums, under the keys "<key>[<i>]" (h.stateKeys).
func (h *head) addStates(sums map[string]float64) {
	for k, keys := range h.stateKeys {
		for i, key := range keys {
			sums[key] += h.mstate[k][i]
		}
	}
}

// metricStateKeys returns, per metric of h, the Sums keys of its state
// (nil for a mean metric), the metric keyed as metricKey keys it.
func (h *head) metricStateKeys(outputs int) [][]string {
	out := make([][]string, len(h.metrics))
	for k, ms := range h.metrics {
		if ms.st == nil {
			continue
		}
		key := h.spec.metricKey(ms, outputs)
		for i := range ms.st.size(h.width) {
			out[k] = append(out[k], stateKey(key, i))
		}
	}
	return out
}

// Result returns what Evaluate reports for the sums s (of EvaluateBatch,
// TrainStep or an Epoch, added over batches and partitions): the mean per
// sample of the loss and of each mean metric (Sums.Result), and the result
// of each stateful metric (AUC, Precision, ...) from the state its
// "<key>[<i>]" keys carry; NaN without rows or without its state. The
// weighted metrics divide by the WeightKey sum (Sums.Result), also for
// sums that came over the wire.
func (m *Model) Result(s Sums) map[string]float64 {
	if s.weighted == nil && m.spec.hasWeighted() {
		s.weighted = m.spec.WeightedKeys()
	}
	out := s.Result()
	for _, h := range m.heads {
		for k, ms := range h.metrics {
			keys := h.stateKeys[k]
			if keys == nil {
				continue
			}
			state := make([]float64, len(keys))
			found := false
			for i, key := range keys {
				v, ok := s.Sums[key]
				state[i] = v
				found = found || ok
			}
			name := h.spec.metricKey(ms, len(m.heads))
			if found && s.Count > 0 {
				out[name] = ms.st.result(state, h.width)
			} else {
				out[name] = math.NaN()
			}
		}
	}
	return out
}

// SumKeys lists the keys of the Sums that TrainStep and EvaluateBatch add
// to, in order: Spec.EvaluateKeys without the stateful metrics, then the
// state keys "<key>[<i>]" of each stateful metric (AUC, Precision, ...),
// which add up over batches and partitions like the others and which
// Result turns into the metrics.
func (m *Model) SumKeys() []string {
	keys := m.spec.EvaluateKeys()
	var states []string
	for _, h := range m.heads {
		for k, ms := range h.metrics {
			if h.stateKeys[k] == nil {
				continue
			}
			name := h.spec.metricKey(ms, len(m.heads))
			keys = slices.DeleteFunc(keys, func(s string) bool { return s == name })
			states = append(states, h.stateKeys[k]...)
		}
	}
	return append(keys, states...)
}
