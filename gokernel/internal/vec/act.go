package vec

import "math"

// Float32 exp, sigmoid and tanh for the activations of the recurrent and
// dense layers, where math.Exp and math.Tanh in float64 cost more than the
// matrix products around them. The scalar functions are the reference;
// their own reference is the float64 math package (TestFastMath bounds
// their error there). Sigmoid and Tanh run eight values at a time with
// AVX2 and FMA where the CPU has them, within a few ulps of the scalar
// ones (TestActivationsAVX2):
//
//	Exp32(x)     = 2^n · p(r),  x = n·ln 2 + r, |r| ≤ ln 2 / 2, p Cephes'
//	               degree-7 polynomial of expf (relative error ≲ 2 ulp)
//	Sigmoid32(x) = 1 / (1 + Exp32(-x))
//	Tanh32(x)    = x + x³·P(x²) for |x| < 0.625 (Cephes' tanhf), else
//	               sign(x)·(1 - 2/(Exp32(2|x|) + 1)), ±1 beyond |x| = 9

const (
	exp32Hi = 88.72283 // Exp32 is +Inf above (float32's largest is e^88.7228)
	exp32Lo = -103.972 // and 0 below
)

// Exp32 is e^x in float32.
func Exp32(x float32) float32 {
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

// Sigmoid32 is 1/(1+e^-x) in float32.
func Sigmoid32(x float32) float32 {
	return 1 / (1 + Exp32(-x))
}

// Tanh32 is tanh x in float32.
func Tanh32(x float32) float32 {
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
		t := 1 - 2/(Exp32(2*z)+1)
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

// Exp sets dst[i] = Exp32(src[i]) (within a few ulps; results below
// 2^-125 are 0) for the values of src; dst may be src.
func Exp(dst, src []float32) {
	n := len(src)
	dst = dst[:n]
	done := 0
	if hasAVX2FMA && n >= 8 {
		done = n &^ 7
		expAVX2(&dst[0], &src[0], done, &actConsts)
	}
	for i := done; i < n; i++ {
		dst[i] = Exp32(src[i])
	}
}

// Sigmoid sets dst[i] = Sigmoid32(src[i]) (within a few ulps) for the
// values of src; dst may be src.
func Sigmoid(dst, src []float32) {
	n := len(src)
	dst = dst[:n]
	done := 0
	if hasAVX2FMA && n >= 8 {
		done = n &^ 7
		sigmoidAVX2(&dst[0], &src[0], done, &actConsts)
	}
	for i := done; i < n; i++ {
		dst[i] = Sigmoid32(src[i])
	}
}

// Tanh sets dst[i] = Tanh32(src[i]) (within a few ulps) for the values of
// src; dst may be src.
func Tanh(dst, src []float32) {
	n := len(src)
	dst = dst[:n]
	done := 0
	if hasAVX2FMA && n >= 8 {
		done = n &^ 7
		tanhAVX2(&dst[0], &src[0], done, &actConsts)
	}
	for i := done; i < n; i++ {
		dst[i] = Tanh32(src[i])
	}
}

// actConsts are the assembly's constants, each eight times (a YMM
// register's worth); see act_amd64.s for their order.
var actConsts = func() (c [actConstCount][8]float32) {
	v := []float32{
		1.44269504088896341,              // 0: log2 e
		0.693359375,                      // 1: ln 2, high part
		-2.12194440e-4,                   // 2: ln 2, low part
		1.9875691500e-4, 1.3981999507e-3, // 3, 4: exp's polynomial
		8.3334519073e-3, 4.1665795894e-2, // 5, 6
		1.6666665459e-1, 5.0000001201e-1, // 7, 8
		0.5,                                 // 9
		1,                                   // 10
		exp32Hi,                             // 11: exp's argument, at most
		-87.33654,                           // 12: and at least (e^x = 2^-126)
		-5.70498872745e-3, 2.06390887954e-2, // 13, 14: tanh's polynomial
		-5.37397155531e-2, 1.33314422036e-1, // 15, 16
		-3.33332819422e-1,                // 17
		0.625,                            // 18
		2,                                // 19
		math.Float32frombits(0x7fffffff), // 20: |x| mask
		math.Float32frombits(0x80000000), // 21: sign mask
		math.Float32frombits(126),        // 22: the exponent bias less 1, as an int32
	}
	for i, x := range v {
		for j := range c[i] {
			c[i][j] = x
		}
	}
	return c
}()

const actConstCount = 23
