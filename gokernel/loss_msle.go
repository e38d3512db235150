package gokernel

import "math"

// msleLoss is mean_squared_logarithmic_error: for one sample,
//
//	a_j = log(max(p_j, ε) + 1),  b_j = log(max(y_j, ε) + 1)
//	L = 1/m · Σ_j (a_j - b_j)²
//	∂L/∂p_j = 2/m · (a_j - b_j) / (p_j + 1)  where p_j > ε, else 0
var msleLoss = lossDef{
	name: "mean_squared_logarithmic_error", class: "MeanSquaredLogarithmicError", aliases: []string{"msle", "MSLE"},
	make: func(*lossSpec) batchLoss { return rowLoss(msle).batch },
}

func msle(p, y, g []float32, scale float64) float64 {
	m := float64(len(p))
	var loss float64
	for j, v := range p {
		x := math.Max(float64(v), epsilon)
		d := math.Log(x+1) - math.Log(math.Max(float64(y[j]), epsilon)+1)
		loss += d * d
		if g != nil {
			var dp float64
			if float64(v) > epsilon {
				dp = 2 * d / (x + 1)
			}
			g[j] = float32(scale * dp / m)
		}
	}
	return loss / m
}
