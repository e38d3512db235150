package gokernel

import (
	"math"
)

// aucMetric is AUC, the area under the ROC or precision-recall curve,
// computed as Keras does from a confusion matrix at num_thresholds
// thresholds: −ε, 1/(n−1), …, (n−2)/(n−1), 1+ε. Every output value p
// (sigmoid of it with from_logits; clipped to [0, 1]) of every sample is one
// prediction, its target y ≠ 0 a positive. The state is the histogram of
// the predictions over the n buckets (bucket max(⌈p·(n−1)⌉−1, 0), in
// float32 as Keras), positives and negatives apart: it adds up exactly
// over batches and partitions, so the AUC of merged partitions is the AUC
// of all their data. At threshold i, tp_i = positives in buckets ≥ i, fp_i
// likewise, fn_i = P − tp_i, tn_i = N − fp_i; then
//
//	ROC:  Σ_i (fpr_i − fpr_{i+1})·h_i over recall (tpr)
//	PR:   Σ_i (recall_i − recall_{i+1})·h_i over precision
//
// with h_i the mean (interpolation), min (minoring) or max (majoring) of
// the two heights; PR with interpolation uses Davis & Goadrich's
// interpolation as Keras' interpolate_pr_auc. Arguments: num_thresholds
// (200), curve "ROC" or "PR", summation_method "interpolation",
// "minoring" or "majoring", from_logits; explicit thresholds, multi_label
// and label_weights are not supported.
var aucMetric = metricDef{
	name: "auc", class: "AUC",
	make: func(cfg *obj) (rowMetric, metricState, error) {
		a := auc{n: 200, curve: "ROC", sum: "interpolation"}
		var err error
		if a.n, err = cfgInt(cfg, "num_thresholds", 200); err != nil {
			return nil, nil, err
		}
		if a.n < 2 {
			return nil, nil, metricError(cfg, "num_thresholds %d must be greater than 1", a.n)
		}
		if a.curve, err = cfgStr(cfg, "curve", "ROC"); err != nil {
			return nil, nil, err
		}
		if a.curve != "ROC" && a.curve != "PR" {
			return nil, nil, metricError(cfg, "curve %q is not supported (ROC and PR are)", a.curve)
		}
		if a.sum, err = cfgStr(cfg, "summation_method", "interpolation"); err != nil {
			return nil, nil, err
		}
		if a.sum != "interpolation" && a.sum != "minoring" && a.sum != "majoring" {
			return nil, nil, metricError(cfg, "summation_method %q is not supported (interpolation, minoring and majoring are)", a.sum)
		}
		if a.logits, err = cfgBool(cfg, "from_logits", false); err != nil {
			return nil, nil, err
		}
		for _, k := range []string{"thresholds", "num_labels", "label_weights"} {
			if err := cfgMustBe(cfg, k); err != nil {
				return nil, nil, err
			}
		}
		if err := cfgMustBe(cfg, "multi_label", "false"); err != nil {
			return nil, nil, err
		}
		return nil, a, nil
	},
}

type auc struct {
	n      int // thresholds
	curve  string
	sum    string
	logits bool
}

func (a auc) size(int) int { return 2 * a.n }

func (a auc) add(s []float64, out, y []float32, rows, m int) {
	pos, neg := s[:a.n], s[a.n:]
	scale := float32(a.n - 1)
	for i, v := range out[:rows*m] {
		p := v
		if a.logits {
			p = float32(sigmoid(float64(v)))
		}
		p = min(max(p, 0), 1)
		b := max(int(math.Ceil(float64(p*scale)))-1, 0)
		if y[i] != 0 {
			pos[b]++
		} else {
			neg[b]++
		}
	}
}

// divNoNaN is a/b, or 0 when b is 0.
func divNoNaN(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func (a auc) result(s []float64, _ int) float64 {
	n := a.n
	tp, fp := make([]float64, n), make([]float64, n)
	var acc, acf float64
	for i := n - 1; i >= 0; i-- {
		acc += s[i]
		acf += s[n+i]
		tp[i], fp[i] = acc, acf
	}
	P, N := tp[0], fp[0]
	if a.curve == "PR" && a.sum == "interpolation" {
		var area float64
		for i := 0; i < n-1; i++ {
			dtp := tp[i] - tp[i+1]
			pa, pb := tp[i]+fp[i], tp[i+1]+fp[i+1]
			slope := divNoNaN(dtp, math.Max(pa-pb, 0))
			intercept := tp[i+1] - slope*pb
			ratio := 1.0
			if pa > 0 && pb > 0 {
				ratio = divNoNaN(pa, math.Max(pb, 0))
			}
			area += divNoNaN(slope*(dtp+intercept*math.Log(ratio)), math.Max(tp[i+1]+(P-tp[i+1]), 0))
		}
		return area
	}
	x, h := make([]float64, n), make([]float64, n)
	for i := range n {
		recall := divNoNaN(tp[i], P)
		if a.curve == "ROC" {
			x[i], h[i] = divNoNaN(fp[i], N), recall
		} else {
			x[i], h[i] = recall, divNoNaN(tp[i], tp[i]+fp[i])
		}
	}
	var area float64
	for i := 0; i < n-1; i++ {
		var height float64
		switch a.sum {
		case "minoring":
			height = math.Min(h[i], h[i+1])
		case "majoring":
			height = math.Max(h[i], h[i+1])
		default:
			height = (h[i] + h[i+1]) / 2
		}
		area += (x[i] - x[i+1]) * height
	}
	return area
}
