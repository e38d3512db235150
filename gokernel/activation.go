package gokernel

import (
	"math"
)

// activation is an elementwise (or, for softmax, row-wise) function applied
// to a layer's pre-activation z, giving its output a = f(z).
//
//	linear      f(z) = z
//	relu        f(z) = max(z, 0)
//	sigmoid     f(z) = 1 / (1 + e^-z)
//	tanh        f(z) = tanh z
//	softmax     f(z)_j = e^(z_j - max z) / Σ_k e^(z_k - max z)   (per row)
//	softplus    f(z) = log(1 + e^z) = max(z, 0) + log1p(e^-|z|)
//	elu         f(z) = z if z > 0 else e^z - 1              (alpha 1)
//	selu        f(z) = λ z if z > 0 else λ α (e^z - 1)      (λ 1.0507009873554805, α 1.6732632423543772)
//	leaky_relu  f(z) = z if z >= 0 else 0.2 z              (Keras 3 negative_slope 0.2)
//	gelu        f(z) = z Φ(z) = z/2 (1 + erf(z/√2))        (Keras' approximate=False)
//
// The backward pass maps the gradient g = ∂L/∂a to ∂L/∂z: elementwise
// g·f'(z); for softmax ∂L/∂z_j = a_j (g_j - Σ_k g_k a_k).
type activation int

const (
	actLinear activation = iota
	actReLU
	actSigmoid
	actTanh
	actSoftmax
	actSoftplus
	actELU
	actSELU
	actLeakyReLU
	actGELU
)

var activationNames = []string{"linear", "relu", "sigmoid", "tanh", "softmax", "softplus", "elu", "selu", "leaky_relu", "gelu"}

func (a activation) String() string { return activationNames[a] }

const (
	seluScale = 1.0507009873554805
	seluAlpha = 1.6732632423543772
	leakSlope = 0.2
)

func parseActivation(c *obj, name string) (activation, error) {
	for i, n := range activationNames {
		if n == name {
			return activation(i), nil
		}
	}
	return 0, c.errf("activation %q is not supported (%v are)", name, activationNames)
}

// scalar is f(z) in float64 for the elementwise activations.
func (a activation) scalar(z float64) float64 {
	switch a {
	case actLinear:
		return z
	case actReLU:
		return math.Max(z, 0)
	case actSigmoid:
		return sigmoid(z)
	case actTanh:
		return math.Tanh(z)
	case actSoftplus:
		return math.Max(z, 0) + math.Log1p(math.Exp(-math.Abs(z)))
	case actELU:
		if z > 0 {
			return z
		}
		return math.Expm1(z)
	case actSELU:
		if z > 0 {
			return seluScale * z
		}
		return seluScale * seluAlpha * math.Expm1(z)
	case actLeakyReLU:
		if z >= 0 {
			return z
		}
		return leakSlope * z
	case actGELU:
		return 0.5 * z * (1 + math.Erf(z/math.Sqrt2))
	}
	panic("gokernel: scalar of " + a.String())
}

// deriv is f'(z) in float64 for the elementwise activations; a = f(z).
func (a activation) deriv(z, out float64) float64 {
	switch a {
	case actLinear:
		return 1
	case actReLU:
		if z > 0 {
			return 1
		}
		return 0
	case actSigmoid:
		return out * (1 - out)
	case actTanh:
		return 1 - out*out
	case actSoftplus:
		return sigmoid(z)
	case actELU:
		if z > 0 {
			return 1
		}
		return out + 1
	case actSELU:
		if z > 0 {
			return seluScale
		}
		return seluScale * seluAlpha * math.Exp(z)
	case actLeakyReLU:
		if z >= 0 {
			return 1
		}
		return leakSlope
	case actGELU:
		return 0.5*(1+math.Erf(z/math.Sqrt2)) + z*math.Exp(-0.5*z*z)/math.Sqrt(2*math.Pi)
	}
	panic("gokernel: deriv of " + a.String())
}

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// forward sets out = f(z) for a rows×cols block; out may alias z.
func (a activation) forward(z, out []float32, cols int) {
	out = out[:len(z)]
	switch a {
	case actLinear:
		copy(out, z)
	case actReLU:
		for i, v := range z {
			if v < 0 {
				v = 0
			}
			out[i] = v
		}
	case actSoftmax:
		softmaxRows(z, out, cols)
	default:
		for i, v := range z {
			out[i] = float32(a.scalar(float64(v)))
		}
	}
}

// backward sets dz = ∂L/∂z from g = ∂L/∂a, given z and out = f(z); dz may
// alias g.
func (a activation) backward(z, out, g, dz []float32, cols int) {
	dz = dz[:len(g)]
	switch a {
	case actLinear:
		copy(dz, g)
	case actReLU:
		for i, v := range z[:len(g)] {
			if v > 0 {
				dz[i] = g[i]
			} else {
				dz[i] = 0
			}
		}
	case actSoftmax:
		for r := 0; r < len(g); r += cols {
			ar, gr, dr := out[r:r+cols], g[r:r+cols], dz[r:r+cols]
			var dot float64
			for j, v := range ar {
				dot += float64(v) * float64(gr[j])
			}
			for j, v := range ar {
				dr[j] = float32(float64(v) * (float64(gr[j]) - dot))
			}
		}
	default:
		for i, v := range z[:len(g)] {
			dz[i] = float32(float64(g[i]) * a.deriv(float64(v), float64(out[i])))
		}
	}
}

// softmaxRows sets out = softmax(z) row by row, subtracting the row maximum
// first so that exp never overflows.
func softmaxRows(z, out []float32, cols int) {
	for r := 0; r < len(z); r += cols {
		zr, or := z[r:r+cols], out[r:r+cols]
		m := zr[0]
		for _, v := range zr {
			if v > m {
				m = v
			}
		}
		var sum float64
		for j, v := range zr {
			e := math.Exp(float64(v - m))
			or[j] = float32(e)
			sum += e
		}
		inv := 1 / sum
		for j := range or {
			or[j] = float32(float64(or[j]) * inv)
		}
	}
}
