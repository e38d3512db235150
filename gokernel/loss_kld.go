package gokernel

import "math"

// kldLoss is kl_divergence: for one sample, with ŷ = clip(y, ε, 1) and
// p̂ = clip(p, ε, 1),
//
//	L = Σ_j ŷ_j log(ŷ_j / p̂_j)
//	∂L/∂p_j = -ŷ_j / p̂_j  where ε ≤ p_j ≤ 1, else 0
var kldLoss = lossDef{
	name: "kl_divergence", class: "KLDivergence", aliases: []string{"kld", "KLD", "kullback_leibler_divergence"},
	make: func(*lossSpec) batchLoss { return rowLoss(kld).batch },
}

func kld(p, y, g []float32, scale float64) float64 {
	var loss float64
	for j, v := range p {
		x := float64(v)
		t := min(max(float64(y[j]), epsilon), 1)
		c := min(max(x, epsilon), 1)
		loss += t * math.Log(t/c)
		if g != nil {
			var d float64
			if x >= epsilon && x <= 1 {
				d = -t / c
			}
			g[j] = float32(scale * d)
		}
	}
	return loss
}
