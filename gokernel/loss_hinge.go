package gokernel

import "math"

// The hinge losses. hinge and squared_hinge take targets of -1 or 1; when
// every target of the batch is 0 or 1 they are first mapped to 2y - 1 (as
// Keras does, for the batch as a whole). For one sample, with
// h_j = max(1 - y_j p_j, 0):
//
//	hinge           L = 1/m · Σ_j h_j       ∂L/∂p_j = -y_j [h_j > 0] / m
//	squared_hinge   L = 1/m · Σ_j h_j²      ∂L/∂p_j = -2 y_j h_j / m
//
// categorical_hinge takes one-hot (or ±1) targets: with pos = Σ_j y_j p_j
// and neg = max_j (1 - y_j) p_j,
//
//	L = max(neg - pos + 1, 0)
//	∂L/∂p_j = (1 - y_j)·[j attains neg]/#attaining - y_j  where L > 0, else 0
//
// (ties for the maximum share its gradient equally, as JAX's max does).
var (
	hingeLoss = lossDef{
		name: "hinge", class: "Hinge",
		make: func(*lossSpec) batchLoss { return hingeBatch(false) },
	}
	squaredHingeLoss = lossDef{
		name: "squared_hinge", class: "SquaredHinge",
		make: func(*lossSpec) batchLoss { return hingeBatch(true) },
	}
	categoricalHingeLoss = lossDef{
		name: "categorical_hinge", class: "CategoricalHinge", labels: Categorical,
		make: func(*lossSpec) batchLoss { return rowLoss(categoricalHinge).batch },
	}
)

// hingeBatch is hinge, or squared_hinge when squared.
func hingeBatch(squared bool) batchLoss {
	return func(out, y []float32, rows, m int, g []float32, scale float64) float64 {
		binary := true
		for _, t := range y[:rows*m] {
			if t != 0 && t != 1 {
				binary = false
				break
			}
		}
		var loss float64
		for i, v := range out[:rows*m] {
			t := float64(y[i])
			if binary {
				t = 2*t - 1
			}
			h := math.Max(1-t*float64(v), 0)
			var d float64
			if squared {
				loss += h * h
				d = -2 * t * h
			} else {
				loss += h
				if h > 0 {
					d = -t
				}
			}
			if g != nil {
				g[i] = float32(scale * d / float64(m))
			}
		}
		return loss / float64(m)
	}
}

func categoricalHinge(p, y, g []float32, scale float64) float64 {
	var pos float64
	neg := math.Inf(-1)
	for j, v := range p {
		t := float64(y[j])
		pos += t * float64(v)
		neg = math.Max(neg, (1-t)*float64(v))
	}
	loss := math.Max(neg-pos+1, 0)
	if g == nil {
		return loss
	}
	var ties float64
	for j, v := range p {
		if (1-float64(y[j]))*float64(v) == neg {
			ties++
		}
	}
	for j, v := range p {
		var d float64
		if loss > 0 {
			t := float64(y[j])
			if (1-t)*float64(v) == neg {
				d = (1 - t) / ties
			}
			d -= t
		}
		g[j] = float32(scale * d)
	}
	return loss
}
