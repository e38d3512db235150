package gokernel

import "math"

// The focal cross-entropies (Lin et al., 2017), as Keras 3 computes them.
//
// categorical_focal_crossentropy, for one sample: targets smoothed by
// label_smoothing s (y ← y(1-s) + s/m); q = p/Σp (p = softmax of the
// outputs with from_logits); o = clip(q, ε, 1-ε);
//
//	L = Σ_j α (1-o_j)^γ · (-y_j log o_j)
//	∂L/∂o_j = α y_j (γ (1-o_j)^(γ-1) log o_j - (1-o_j)^γ / o_j), zero where the clip is active
//
// then through the normalization (∂L/∂p_k = (d_k - Σ_j d_j q_j)/Σp) and,
// with from_logits, the softmax.
//
// binary_focal_crossentropy, for one sample: targets smoothed by s
// (y ← y(1-s) + s/2); p = sigmoid of the outputs with from_logits;
// c = clip(p, ε, 1-ε), bce_j = -(y_j log c_j + (1-y_j) log(1-c_j)),
// p_t = y p + (1-y)(1-p), w = y α + (1-y)(1-α) with
// apply_class_balancing (else 1);
//
//	L = 1/m · Σ_j w (1-p_t)^γ bce_j
//	∂L_j/∂p_j = w (-γ (1-p_t)^(γ-1) (2y-1) bce_j + (1-p_t)^γ ∂bce_j/∂p_j)
//
// times p(1-p) with from_logits. Defaults: α 0.25, γ 2.
var (
	categoricalFocalLoss = lossDef{
		name: "categorical_focal_crossentropy", class: "CategoricalFocalCrossentropy", labels: Categorical,
		logits: true, smooth: true, axis: true, focal: true,
		make: func(l *lossSpec) batchLoss {
			a, gm, ls, logits := l.alpha, l.gamma, l.smoothing, l.fromLogits
			return rowLoss(func(p, y, g []float32, scale float64) float64 {
				return categoricalFocal(p, y, g, scale, a, gm, ls, logits)
			}).batch
		},
	}
	binaryFocalLoss = lossDef{
		name: "binary_focal_crossentropy", class: "BinaryFocalCrossentropy", labels: Binary,
		logits: true, smooth: true, axis: true, focal: true, balance: true,
		make: func(l *lossSpec) batchLoss {
			a, gm, ls, logits, bal := l.alpha, l.gamma, l.smoothing, l.fromLogits, l.balance
			return rowLoss(func(p, y, g []float32, scale float64) float64 {
				return binaryFocal(p, y, g, scale, a, gm, ls, logits, bal)
			}).batch
		},
	}
)

// powGrad is γ·x^(γ-1), the derivative of x^γ (0 when γ is 0).
func powGrad(x, gamma float64) float64 {
	if gamma == 0 {
		return 0
	}
	return gamma * math.Pow(x, gamma-1)
}

func categoricalFocal(p, y, g []float32, scale, alpha, gamma, ls float64, logits bool) float64 {
	m := len(p)
	s := make([]float64, m) // the probabilities before normalization
	var sum float64
	if logits {
		mx := p[0]
		for _, v := range p {
			mx = max(mx, v)
		}
		var se float64
		for j, v := range p {
			s[j] = math.Exp(float64(v - mx))
			se += s[j]
		}
		for j := range s {
			s[j] /= se
		}
	} else {
		for j, v := range p {
			s[j] = float64(v)
		}
	}
	for _, v := range s {
		sum += v
	}
	var loss, dot float64
	d := s[:0:0]
	if g != nil {
		d = make([]float64, m)
	}
	for j := range s {
		q := s[j] / sum
		o := min(max(q, epsilon), 1-epsilon)
		t := float64(y[j])*(1-ls) + ls/float64(m)
		f := math.Pow(1-o, gamma)
		loss += alpha * f * (-t * math.Log(o))
		if g != nil {
			if q >= epsilon && q <= 1-epsilon {
				d[j] = alpha * t * (powGrad(1-o, gamma)*math.Log(o) - f/o)
			}
			dot += d[j] * q
		}
	}
	if g == nil {
		return loss
	}
	// Through q = s/Σs: ds_k = (d_k - Σ_j d_j q_j)/Σs.
	for j := range d {
		d[j] = (d[j] - dot) / sum
	}
	if logits {
		// Through the softmax: dp_k = s_k (ds_k - Σ_j ds_j s_j).
		var sd float64
		for j := range d {
			sd += d[j] * s[j]
		}
		for j := range d {
			d[j] = s[j] * (d[j] - sd)
		}
	}
	for j := range d {
		g[j] = float32(scale * d[j])
	}
	return loss
}

func binaryFocal(p, y, g []float32, scale, alpha, gamma, ls float64, logits, balance bool) float64 {
	m := float64(len(p))
	var loss float64
	for j, v := range p {
		x := float64(v)
		if logits {
			x = sigmoid(x)
		}
		t := float64(y[j])*(1-ls) + 0.5*ls
		c := min(max(x, epsilon), 1-epsilon)
		bce := -(t*math.Log(c) + (1-t)*math.Log(1-c))
		pt := t*x + (1-t)*(1-x)
		f := math.Pow(1-pt, gamma)
		w := 1.0
		if balance {
			w = t*alpha + (1-t)*(1-alpha)
		}
		loss += w * f * bce
		if g != nil {
			var dbce float64
			if x >= epsilon && x <= 1-epsilon {
				dbce = -t/c + (1-t)/(1-c)
			}
			d := w * (-powGrad(1-pt, gamma)*(2*t-1)*bce + f*dbce)
			if logits {
				d *= x * (1 - x)
			}
			g[j] = float32(scale * d / m)
		}
	}
	return loss / m
}
