package gokernel

import "math"

// mapeLoss is mean_absolute_percentage_error: for one sample,
//
//	L = 100/m · Σ_j |p_j - y_j| / max(|y_j|, ε)
//	∂L/∂p_j = 100/m · sign(p_j - y_j) / max(|y_j|, ε)
var mapeLoss = lossDef{
	name: "mean_absolute_percentage_error", class: "MeanAbsolutePercentageError", aliases: []string{"mape", "MAPE"},
	make: func(*lossSpec) batchLoss { return rowLoss(mape).batch },
}

func mape(p, y, g []float32, scale float64) float64 {
	k := 100 / float64(len(p))
	var loss float64
	for j, v := range p {
		t := float64(y[j])
		d := math.Max(math.Abs(t), epsilon)
		e := float64(v) - t
		loss += math.Abs(e) / d
		if g != nil {
			g[j] = float32(scale * k * sign(e) / d)
		}
	}
	return k * loss
}
