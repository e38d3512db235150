package gokernel

import "math"

// logCoshLoss is log_cosh: for one sample, with e_j = p_j - y_j,
//
//	L = 1/m · Σ_j log(cosh(e_j)) = 1/m · Σ_j (e_j + softplus(-2e_j) - log 2)
//	∂L/∂p_j = tanh(e_j) / m
var logCoshLoss = lossDef{
	name: "log_cosh", class: "LogCosh", aliases: []string{"logcosh"},
	make: func(*lossSpec) batchLoss { return rowLoss(logCosh).batch },
}

func logCosh(p, y, g []float32, scale float64) float64 {
	m := float64(len(p))
	var loss float64
	for j, v := range p {
		e := float64(v) - float64(y[j])
		loss += e + softplus(-2*e) - math.Ln2
		if g != nil {
			g[j] = float32(scale * math.Tanh(e) / m)
		}
	}
	return loss / m
}
