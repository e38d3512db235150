package gokernel

import "math"

// mapeMetric is MeanAbsolutePercentageError: the mean over samples of
// 100/m · Σ_j |p_j − y_j| / max(|y_j|, ε).
var mapeMetric = metricDef{
	name: "mean_absolute_percentage_error", class: "MeanAbsolutePercentageError", aliases: []string{"mape", "MAPE"},
	make: func(*obj) (rowMetric, metricState, error) { return mapeRow, nil, nil },
}

func mapeRow(p, y []float32) float64 {
	var s float64
	for j, v := range p {
		t := float64(y[j])
		s += math.Abs(float64(v)-t) / math.Max(math.Abs(t), epsilon)
	}
	return 100 * s / float64(len(p))
}
