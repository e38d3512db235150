package gokernel

import "math"

// poissonLoss is poisson: for one sample,
//
//	L = 1/m · Σ_j p_j - y_j log(p_j + ε)
//	∂L/∂p_j = (1 - y_j/(p_j + ε)) / m
var poissonLoss = lossDef{
	name: "poisson", class: "Poisson",
	make: func(*lossSpec) batchLoss { return rowLoss(poisson).batch },
}

func poisson(p, y, g []float32, scale float64) float64 {
	m := float64(len(p))
	var loss float64
	for j, v := range p {
		x, t := float64(v), float64(y[j])
		loss += x - t*math.Log(x+epsilon)
		if g != nil {
			g[j] = float32(scale * (1 - t/(x+epsilon)) / m)
		}
	}
	return loss / m
}
