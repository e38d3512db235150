package gokernel

import (
	"math"

	"github.com/gophas/gophas/gokernel/internal/vec"
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
//	silu        f(z) = z σ(z)                               (also named swish)
//	hard_sigmoid f(z) = relu6(z + 3) / 6 = clip(z/6 + 1/2, 0, 1)
//	hard_silu   f(z) = z · hard_sigmoid(z)                  (also named hard_swish)
//	mish        f(z) = z tanh(softplus(z))
//	relu6       f(z) = min(max(z, 0), 6)
//	softsign    f(z) = z / (1 + |z|)
//	exponential f(z) = e^z
//	log_softmax f(z)_j = z_j - max z - log Σ_k e^(z_k - max z)  (per row)
//	celu        f(z) = z if z > 0 else e^z - 1              (alpha 1: elu)
//	hard_tanh   f(z) = clip(z, -1, 1)
//	log_sigmoid f(z) = log σ(z) = -softplus(-z)
//	tanh_shrink f(z) = z - tanh z
//	soft_shrink f(z) = z - 0.5 if z > 0.5, z + 0.5 if z < -0.5, else 0
//	hard_shrink f(z) = z if |z| > 0.5 else 0
//	squareplus  f(z) = (z + √(z² + 4)) / 2                   (b 4)
//	sparse_plus f(z) = 0 if z ≤ -1, z if z ≥ 1, else (z + 1)²/4
//	sparse_sigmoid f(z) = 0 if z ≤ -1, 1 if z ≥ 1, else (z + 1)/2
//
// At a kink the derivative is the one JAX uses (relu6, hard_sigmoid,
// hard_tanh: 0 at the corners; relu: 0 at 0). The activations Keras has
// that change the shape (glu) or need arguments (threshold), and
// sparsemax, are refused by name.
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
	actSiLU
	actHardSigmoid
	actHardSiLU
	actMish
	actReLU6
	actSoftsign
	actExponential
	actLogSoftmax
	actCELU
	actHardTanh
	actLogSigmoid
	actTanhShrink
	actSoftShrink
	actHardShrink
	actSquareplus
	actSparsePlus
	actSparseSigmoid
)

var activationNames = []string{"linear", "relu", "sigmoid", "tanh", "softmax", "softplus", "elu", "selu", "leaky_relu", "gelu",
	"silu", "hard_sigmoid", "hard_silu", "mish", "relu6", "softsign", "exponential", "log_softmax", "celu", "hard_tanh",
	"log_sigmoid", "tanh_shrink", "soft_shrink", "hard_shrink", "squareplus", "sparse_plus", "sparse_sigmoid"}

// activationAliases are other names Keras accepts for an activation (it
// writes the canonical one).
var activationAliases = map[string]activation{"swish": actSiLU, "hard_swish": actHardSiLU}

// rowWise reports whether f acts on whole rows (the last axis) rather than
// on each value.
func (a activation) rowWise() bool { return a == actSoftmax || a == actLogSoftmax }

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
	if a, ok := activationAliases[name]; ok {
		return a, nil
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
	case actSiLU:
		return z * sigmoid(z)
	case actHardSigmoid:
		return hardSigmoid(z)
	case actHardSiLU:
		return z * hardSigmoid(z)
	case actMish:
		return z * math.Tanh(softplus(z))
	case actReLU6:
		return math.Min(math.Max(z, 0), 6)
	case actSoftsign:
		return z / (1 + math.Abs(z))
	case actExponential:
		return math.Exp(z)
	case actCELU:
		if z > 0 {
			return z
		}
		return math.Expm1(z)
	case actHardTanh:
		return math.Min(math.Max(z, -1), 1)
	case actLogSigmoid:
		return -softplus(-z)
	case actTanhShrink:
		return z - math.Tanh(z)
	case actSoftShrink:
		switch {
		case z > 0.5:
			return z - 0.5
		case z < -0.5:
			return z + 0.5
		}
		return 0
	case actHardShrink:
		if math.Abs(z) > 0.5 {
			return z
		}
		return 0
	case actSquareplus:
		return (z + math.Sqrt(z*z+4)) / 2
	case actSparsePlus:
		switch {
		case z <= -1:
			return 0
		case z >= 1:
			return z
		}
		return (z + 1) * (z + 1) / 4
	case actSparseSigmoid:
		switch {
		case z <= -1:
			return 0
		case z >= 1:
			return 1
		}
		return (z + 1) / 2
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
	case actSiLU:
		s := sigmoid(z)
		return s * (1 + z*(1-s))
	case actHardSigmoid:
		if z > -3 && z < 3 {
			return 1.0 / 6
		}
		return 0
	case actHardSiLU:
		switch {
		case z <= -3:
			return 0
		case z >= 3:
			return 1
		}
		return z/3 + 0.5
	case actMish:
		sp := softplus(z)
		t := math.Tanh(sp)
		return t + z*(1-t*t)*sigmoid(z)
	case actReLU6:
		if z > 0 && z < 6 {
			return 1
		}
		return 0
	case actSoftsign:
		d := 1 + math.Abs(z)
		return 1 / (d * d)
	case actExponential:
		return out
	case actCELU:
		if z > 0 {
			return 1
		}
		return math.Exp(z)
	case actHardTanh:
		if z > -1 && z < 1 {
			return 1
		}
		return 0
	case actLogSigmoid:
		return sigmoid(-z)
	case actTanhShrink:
		t := math.Tanh(z)
		return t * t
	case actSoftShrink:
		if z > 0.5 || z < -0.5 {
			return 1
		}
		return 0
	case actHardShrink:
		if math.Abs(z) > 0.5 {
			return 1
		}
		return 0
	case actSquareplus:
		return (1 + z/math.Sqrt(z*z+4)) / 2
	case actSparsePlus:
		switch {
		case z <= -1:
			return 0
		case z >= 1:
			return 1
		}
		return (z + 1) / 2
	case actSparseSigmoid:
		if z > -1 && z < 1 {
			return 0.5
		}
		return 0
	}
	panic("gokernel: deriv of " + a.String())
}

// softplus is log(1 + e^z), computed without overflow.
func softplus(z float64) float64 { return math.Max(z, 0) + math.Log1p(math.Exp(-math.Abs(z))) }

// hardSigmoid is relu6(z + 3) / 6.
func hardSigmoid(z float64) float64 { return math.Min(math.Max(z+3, 0), 6) / 6 }

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// needsZ reports whether the derivative needs z, not only f(z): then a
// layer keeps z apart; otherwise it applies f in place. (For relu, elu
// and leaky_relu, z > 0 exactly where f(z) > 0 (≥ 0 for leaky_relu), and
// sigmoid', tanh', softmax' are functions of f(z).)
func (a activation) needsZ() bool {
	switch a {
	case actLinear, actReLU, actSigmoid, actTanh, actSoftmax, actELU, actLeakyReLU:
		return false
	}
	return true
}

// preact returns where a layer with activation a writes its
// pre-activation z: its output, to be activated in place, or (when the
// derivative needs z) the call's buffer 0.
func (a activation) preact(c *call) []float32 {
	if a.needsZ() {
		return c.buf(0, c.n(0))
	}
	return c.y[0]
}

// apply sets the call's output to f(z), z from preact; cols is the last
// axis (softmax's).
func (a activation) apply(c *call, z []float32, cols int) {
	if a != actLinear {
		j := c.jobs().act
		*j = actJob{a: a, z: z, out: c.y[0], cols: cols}
		parallelFor(c.threads, len(z)/cols, len(z), j, &c.jobs().wg)
	}
}

// grad turns the call's c.dy[0] into ∂L/∂z in place and returns it.
func (a activation) grad(c *call, cols int) []float32 {
	dz := c.dy[0]
	if a == actLinear {
		return dz
	}
	z := c.y[0]
	if a.needsZ() {
		z = c.buf(0, len(dz))
	}
	j := c.jobs().act
	*j = actJob{a: a, z: z, out: c.y[0], g: dz, dz: dz, cols: cols, back: true}
	parallelFor(c.threads, len(dz)/cols, len(dz), j, &c.jobs().wg)
	return dz
}

// forward sets out = f(z) for a rows×cols block; out may alias z.
func (a activation) forward(z, out []float32, cols int) {
	out = out[:len(z)]
	switch a {
	case actLinear:
		copy(out, z)
	case actReLU:
		vec.ReLU(out, z)
	case actSoftmax:
		softmaxRows(z, out, cols)
	case actLogSoftmax:
		logSoftmaxRows(z, out, cols)
	case actSigmoid:
		vec.Sigmoid(out, z)
	case actTanh:
		vec.Tanh(out, z)
	default:
		for i, v := range z {
			out[i] = float32(a.scalar(float64(v)))
		}
	}
}

// backward sets dz = ∂L/∂z from g = ∂L/∂a, given z (or, where needsZ is
// false, out again) and out = f(z); dz may alias g.
func (a activation) backward(z, out, g, dz []float32, cols int) {
	dz = dz[:len(g)]
	switch a {
	case actLinear:
		copy(dz, g)
	case actReLU:
		// dz = g where f(z) > 0: out ≥ 0, so where out ≠ 0.
		vec.ReLUGrad(dz, out, g)
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
	case actSigmoid:
		for i, v := range out[:len(g)] {
			dz[i] = g[i] * v * (1 - v)
		}
	case actTanh:
		for i, v := range out[:len(g)] {
			dz[i] = g[i] * (1 - v*v)
		}
	case actLogSoftmax:
		// ∂L/∂z_j = g_j - softmax_j Σ_k g_k, softmax_j = e^(out_j).
		for r := 0; r < len(g); r += cols {
			or, gr, dr := out[r:r+cols], g[r:r+cols], dz[r:r+cols]
			var sum float64
			for _, v := range gr {
				sum += float64(v)
			}
			for j, v := range or {
				dr[j] = float32(float64(gr[j]) - math.Exp(float64(v))*sum)
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
		for j, v := range zr {
			or[j] = v - m
		}
		vec.Exp(or, or)
		var sum float64
		for _, e := range or {
			sum += float64(e)
		}
		inv := float32(1 / sum)
		for j := range or {
			or[j] *= inv
		}
	}
}

// logSoftmaxRows sets out = log_softmax(z) row by row:
// z_j - m - log Σ_k e^(z_k - m), m the row maximum.
func logSoftmaxRows(z, out []float32, cols int) {
	for r := 0; r < len(z); r += cols {
		zr, or := z[r:r+cols], out[r:r+cols]
		m := zr[0]
		for _, v := range zr {
			if v > m {
				m = v
			}
		}
		var sum float64
		for _, v := range zr {
			sum += math.Exp(float64(v - m))
		}
		lse := float64(m) + math.Log(sum)
		for j, v := range zr {
			or[j] = float32(float64(v) - lse)
		}
	}
}
