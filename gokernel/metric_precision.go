package gokernel

import (
	"encoding/json"
	"math"
)

// precisionMetric and recallMetric are Precision = tp/(tp+fp) and
// Recall = tp/(tp+fn) (0 when the denominator is 0), counting every output
// value of every sample as a prediction, positive when it is above the
// threshold (default 0.5), its target y ≠ 0 a positive. With top_k only the
// k largest outputs of a sample can be positive (ties to the lower index);
// with class_id only that output (after top_k) counts. State: tp, and fp or
// fn. One threshold only: a list of several is refused. With top_k and no
// threshold every one of the k largest is a positive (Keras' threshold
// −1e10, its NEG_INF).
var (
	precisionMetric = metricDef{
		name: "precision", class: "Precision",
		make: func(cfg *obj) (rowMetric, metricState, error) { return confusionMetric(cfg, false) },
	}
	recallMetric = metricDef{
		name: "recall", class: "Recall",
		make: func(cfg *obj) (rowMetric, metricState, error) { return confusionMetric(cfg, true) },
	}
)

func confusionMetric(cfg *obj, recall bool) (rowMetric, metricState, error) {
	c := confusion{threshold: 0.5, classID: -1, recall: recall}
	var err error
	if c.topK, err = cfgInt(cfg, "top_k", 0); err != nil {
		return nil, nil, err
	}
	if c.topK > 0 {
		c.threshold = negInf // every top-k output is a positive, unless thresholds says otherwise
	}
	if cfg != nil {
		if r := cfg.get("thresholds"); !isNull(r) {
			var one float64
			var list []float64
			switch {
			case json.Unmarshal(r, &one) == nil:
				c.threshold = one
			case json.Unmarshal(r, &list) == nil && len(list) == 1:
				c.threshold = list[0]
			default:
				return nil, nil, cfg.errf("thresholds %s: one threshold is supported (Keras reports a list of values for several)", short(r))
			}
		}
	}
	if c.classID, err = cfgInt(cfg, "class_id", -1); err != nil {
		return nil, nil, err
	}
	if c.topK < 0 {
		return nil, nil, metricError(cfg, "top_k %d must be positive", c.topK)
	}
	return nil, c, nil
}

// negInf is Keras' metrics_utils.NEG_INF.
const negInf = -1e10

type confusion struct {
	threshold float64
	topK      int // 0: none
	classID   int // -1: none
	recall    bool
}

func (c confusion) size(int) int { return 2 }

func (c confusion) add(s []float64, out, y []float32, rows, m int) {
	kept := make([]bool, m)
	for r := 0; r < rows; r++ {
		p, t := out[r*m:(r+1)*m], y[r*m:(r+1)*m]
		if c.topK > 0 {
			topKMask(p, c.topK, kept)
		}
		for j, v := range p {
			if c.classID >= 0 && j != c.classID {
				continue
			}
			pred := float64(v) > c.threshold && (c.topK == 0 || kept[j])
			label := t[j] != 0
			switch {
			case pred && label:
				s[0]++
			case pred && !c.recall:
				s[1]++
			case label && c.recall:
				s[1]++
			}
		}
	}
}

// topKMask marks the k largest values of p (ties to the lower index, as
// jax.lax.top_k orders them; NaN as the smallest).
func topKMask(p []float32, k int, kept []bool) {
	clear(kept)
	for range min(k, len(p)) {
		best := -1
		for j, v := range p {
			if kept[j] {
				continue
			}
			if best < 0 || v > p[best] || (math.IsNaN(float64(p[best])) && !math.IsNaN(float64(v))) {
				best = j
			}
		}
		kept[best] = true
	}
}

func (c confusion) result(s []float64, _ int) float64 { return divNoNaN(s[0], s[0]+s[1]) }
