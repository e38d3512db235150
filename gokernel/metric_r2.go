package gokernel

import "math"

// r2Metric is R2Score, the coefficient of determination per output j over
// the samples, aggregated as Keras does:
//
//	mean_j = Σy_j/n;  total_j = Σy_j² − Σy_j·mean_j;  r2_j = 1 − Σ(y_j−p_j)²/total_j  (0 if infinite)
//	uniform_average            mean over j of r2_j
//	variance_weighted_average  Σ total_j·r2_j / Σ total_j
//	num_regressors k > 0       1 − (1 − r2)(N − 1)/(N − k − 1), N the number of values,
//	                           unless k ≥ N − 1 (then r2 as is, as Keras after its warning)
//
// State: Σy_j, Σy_j², Σ(y_j−p_j)² per output, the sample count and N.
// class_aggregation None (one value per output) is not supported.
var r2Metric = metricDef{
	name: "r2_score", class: "R2Score",
	make: func(cfg *obj) (rowMetric, metricState, error) {
		agg, err := cfgStr(cfg, "class_aggregation", "uniform_average")
		if err != nil {
			return nil, nil, err
		}
		if cfg != nil && isNull(cfg.m["class_aggregation"]) && cfg.has("class_aggregation") {
			return nil, nil, cfg.errf("class_aggregation None (one value per output) is not supported: use \"uniform_average\" or \"variance_weighted_average\"")
		}
		if agg != "uniform_average" && agg != "variance_weighted_average" {
			return nil, nil, metricError(cfg, "class_aggregation %q is not supported (uniform_average and variance_weighted_average are)", agg)
		}
		k, err := cfgInt(cfg, "num_regressors", 0)
		if err != nil {
			return nil, nil, err
		}
		if k < 0 {
			return nil, nil, metricError(cfg, "num_regressors %d must not be negative", k)
		}
		return nil, r2{weighted: agg == "variance_weighted_average", regressors: k}, nil
	},
}

type r2 struct {
	weighted   bool
	regressors int
}

func (r2) size(m int) int { return 3*m + 2 }

func (r2) add(s []float64, out, y []float32, rows, m int) {
	sum, sq, mse := s[:m], s[m:2*m], s[2*m:3*m]
	for r := 0; r < rows; r++ {
		for j := range m {
			t, p := float64(y[r*m+j]), float64(out[r*m+j])
			sum[j] += t
			sq[j] += t * t
			mse[j] += (t - p) * (t - p)
		}
	}
	s[3*m] += float64(rows)
	s[3*m+1] += float64(rows * m)
}

func (a r2) result(s []float64, m int) float64 {
	sum, sq, mse, n, values := s[:m], s[m:2*m], s[2*m:3*m], s[3*m], s[3*m+1]
	var score, weights float64
	for j := range m {
		mean := sum[j] / n
		total := sq[j] - sum[j]*mean
		raw := 1 - mse[j]/total
		if math.IsInf(raw, 0) {
			raw = 0
		}
		if a.weighted {
			score += total * raw
			weights += total
		} else {
			score += raw
		}
	}
	if a.weighted {
		score /= weights
	} else {
		score /= float64(m)
	}
	if k := float64(a.regressors); k > 0 && k < values-1 {
		score = 1 - (1-score)*(values-1)/(values-k-1)
	}
	return score
}
