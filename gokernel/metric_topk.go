package gokernel

import "math"

// The top-k accuracies: a sample scores 1 when its label's output is among
// the k largest, ties counted in its favour (rank = 1 + #{j: p_j > p_label}
// ≤ k, a NaN output at the label ranking last), as Keras' in_top_k does.
//
//	TopKCategoricalAccuracy        label = argmax y (one-hot targets)
//	SparseTopKCategoricalAccuracy  label = y (integer labels)
//
// k defaults to 5.
var (
	topKMetric = metricDef{
		name: "top_k_categorical_accuracy", class: "TopKCategoricalAccuracy",
		make: func(cfg *obj) (rowMetric, metricState, error) {
			k, err := topK(cfg)
			if err != nil {
				return nil, nil, err
			}
			return func(p, y []float32) float64 { return inTopK(p, argmax(y), k) }, nil, nil
		},
	}
	sparseTopKMetric = metricDef{
		name: "sparse_top_k_categorical_accuracy", class: "SparseTopKCategoricalAccuracy", sparse: true,
		make: func(cfg *obj) (rowMetric, metricState, error) {
			k, err := topK(cfg)
			if err != nil {
				return nil, nil, err
			}
			if err := cfgMustBe(cfg, "from_sorted_ids", "false"); err != nil {
				return nil, nil, err
			}
			return func(p, y []float32) float64 { return inTopK(p, int(y[0]), k) }, nil, nil
		},
	}
)

func topK(cfg *obj) (int, error) {
	k, err := cfgInt(cfg, "k", 5)
	if err != nil {
		return 0, err
	}
	if k < 1 {
		return 0, metricError(cfg, "k %d must be at least 1", k)
	}
	return k, nil
}

// inTopK is 1 when p[label] is among the k largest of p, else 0.
func inTopK(p []float32, label, k int) float64 {
	if label < 0 || label >= len(p) {
		return 0
	}
	at := p[label]
	if math.IsNaN(float64(at)) {
		at = float32(math.Inf(-1))
	}
	rank := 1
	for _, v := range p {
		if v > at {
			rank++
		}
	}
	if rank <= k {
		return 1
	}
	return 0
}
