package gokernel

import "math"

// Fast float32 exp, sigmoid and tanh for the activations of the recurrent
// and dense layers, where math.Exp and math.Tanh in float64 cost more than
// the matrix products around them. Their reference is the float64 math
// package (activation.scalar); TestFastMath bounds their error there.
//
//	exp32(x)     = 2^n · p(r),  x = n·ln 2 + r, |r| ≤ ln 2 / 2, p Cephes'
//	               degree-7 polynomial of expf (relative error ≲ 2 ulp)
//	sigmoid32(x) = 1 / (1 + exp32(-x))
//	tanh32(x)    = x + x³·P(x²) for |x| < 0.625 (Cephes' tanhf), else
//	               sign(x)·(1 - 2/(exp32(2|x|) + 1)), ±1 beyond |x| = 9

const (
	exp32Hi = 88.72283 // exp32 is +Inf above (float32's largest is e^88.7228)
	exp32Lo = -103.972 // and 0 below
)

// exp32 is e^x in float32.
func exp32(x float32) float32 {
	switch {
	case x > exp32Hi:
		return float32(math.Inf(1))
	case x < exp32Lo:
		return 0
	case x != x:
		return x
	}
	// n = round(x / ln 2), r = x - n·ln 2 in two parts for accuracy.
	n := float32(math.Floor(float64(x*1.44269504088896341 + 0.5)))
	r := x - n*0.693359375
	r -= n * -2.12194440e-4
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	// Scale by 2^n in two steps so that n down to -149 (subnormals) and
	// up to 128 stay finite where the result is.
	k := int32(n)
	if k > 127 {
		return p * 2 * math.Float32frombits(uint32(k-1+127)<<23)
	}
	if k < -126 {
		return p * math.Float32frombits(uint32(k+64+127)<<23) * 5.421010862427522e-20 // 2^-64
	}
	return p * math.Float32frombits(uint32(k+127)<<23)
}

// sigmoid32 is 1/(1+e^-x) in float32.
func sigmoid32(x float32) float32 {
	return 1 / (1 + exp32(-x))
}

// tanh32 is tanh x in float32.
func tanh32(x float32) float32 {
	z := x
	if z < 0 {
		z = -z
	}
	switch {
	case z != z:
		return x
	case z > 9:
		if x < 0 {
			return -1
		}
		return 1
	case z >= 0.625:
		t := 1 - 2/(exp32(2*z)+1)
		if x < 0 {
			return -t
		}
		return t
	}
	s := x * x
	p := float32(-5.70498872745e-3)
	p = p*s + 2.06390887954e-2
	p = p*s - 5.37397155531e-2
	p = p*s + 1.33314422036e-1
	p = p*s - 3.33332819422e-1
	return p*s*x + x
}
