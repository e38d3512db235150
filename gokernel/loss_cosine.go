package gokernel

import "math"

// cosineLoss is cosine_similarity: for one sample, with each row scaled to
// unit length as Keras' normalize does (x̂ = x·min(1/‖x‖, 1/ε)),
//
//	L = -Σ_j ŷ_j p̂_j
//	∂L/∂p_j = -(ŷ_j - p_j Σ_k ŷ_k p_k / ‖p‖²) / ‖p‖  where ‖p‖ > ε
//	        = -ŷ_j / ε                              otherwise
var cosineLoss = lossDef{
	name: "cosine_similarity", class: "CosineSimilarity", axis: true,
	make: func(*lossSpec) batchLoss { return rowLoss(cosineSimilarity).batch },
}

// invNorm is min(1/‖x‖, 1/ε).
func invNorm(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Min(1/math.Sqrt(s), 1/epsilon)
}

func cosineSimilarity(p, y, g []float32, scale float64) float64 {
	ry, rp := invNorm(y), invNorm(p)
	var dot float64 // Σ ŷ_k p_k
	for j, v := range p {
		dot += float64(y[j]) * ry * float64(v)
	}
	loss := -dot * rp
	if g == nil {
		return loss
	}
	clipped := rp >= 1/epsilon
	for j, v := range p {
		yh := float64(y[j]) * ry
		var d float64
		if clipped {
			d = -yh / epsilon
		} else {
			d = -rp * (yh - float64(v)*rp*rp*dot)
		}
		g[j] = float32(scale * d)
	}
	return loss
}
