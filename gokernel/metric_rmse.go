package gokernel

import "math"

// rmseMetric is RootMeanSquaredError: √(Σ e² / N) over every output value
// of every sample, e = p − y, N the number of values. State: Σ e², N.
var rmseMetric = metricDef{
	name: "root_mean_squared_error", class: "RootMeanSquaredError",
	make: func(*obj) (rowMetric, metricState, error) { return nil, rmse{}, nil },
}

type rmse struct{}

func (rmse) size(int) int { return 2 }

func (rmse) add(s []float64, out, y []float32, rows, m int) {
	for i, v := range out[:rows*m] {
		e := float64(v) - float64(y[i])
		s[0] += e * e
	}
	s[1] += float64(rows * m)
}

func (rmse) result(s []float64, _ int) float64 { return math.Sqrt(s[0] / s[1]) }
