package vec

// The element-wise loops of a ReLU layer and of a convolution's backward
// pass, each with its plain Go reference (the ...Ref functions) and an AVX2
// fast path chosen at run time that gives bit-identical results:
//
//	ReLU:       dst[i] = max(src[i], 0)   (NaN stays NaN, -0 becomes +0)
//	ReLUGrad:   dz[i]  = g[i] where out[i] ≠ 0 (NaN counts as ≠ 0), else +0
//	AddColSums: sum[j] += Σ_r x[r·len(sum)+j], the rows r taken in order
//	Add:        dst[i] += src[i]

// ReLU sets dst[i] = max(src[i], 0) for the values of src; dst may be src.
func ReLU(dst, src []float32) {
	n := len(src)
	dst = dst[:n]
	done := 0
	if hasAVX2 && n >= 8 {
		done = n &^ 7
		reluAVX2(&dst[0], &src[0], done)
	}
	ReLURef(dst[done:], src[done:])
}

// ReLURef is the plain loop ReLU is tested against.
func ReLURef(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = max(v, 0)
	}
}

// ReLUGrad sets dz[i] = g[i] where out[i] ≠ 0 and +0 where out[i] is ±0:
// the gradient through a ReLU whose output was out. dz may be g.
func ReLUGrad(dz, out, g []float32) {
	n := len(g)
	dz, out = dz[:n], out[:n]
	done := 0
	if hasAVX2 && n >= 8 {
		done = n &^ 7
		reluGradAVX2(&dz[0], &out[0], &g[0], done)
	}
	ReLUGradRef(dz[done:], out[done:], g[done:])
}

// ReLUGradRef is the plain loop ReLUGrad is tested against.
func ReLUGradRef(dz, out, g []float32) {
	dz, out = dz[:len(g)], out[:len(g)]
	for i, v := range g {
		if out[i] != 0 {
			dz[i] = v
		} else {
			dz[i] = 0
		}
	}
}

// AddColSums adds the column sums of x, whole rows of len(sum) values, to
// sum: sum[j] += Σ_r x[r·len(sum)+j], each column summed over the rows in
// order (so the result does not depend on the path).
func AddColSums(sum, x []float32) {
	cols := len(sum)
	if cols == 0 {
		return
	}
	rows := len(x) / cols
	j := 0
	if hasAVX2 && rows > 0 {
		for ; j+32 <= cols; j += 32 {
			colSums32AVX2(&sum[j], &x[j], rows, cols)
		}
		for ; j+8 <= cols; j += 8 {
			colSums8AVX2(&sum[j], &x[j], rows, cols)
		}
	}
	if j < cols {
		for r := 0; r < rows; r++ {
			xr := x[r*cols+j : (r+1)*cols]
			for i, v := range xr {
				sum[j+i] += v
			}
		}
	}
}

// AddColSumsRef is the plain loop AddColSums is tested against.
func AddColSumsRef(sum, x []float32) {
	cols := len(sum)
	for r := 0; r+cols <= len(x); r += cols {
		for j, v := range x[r : r+cols] {
			sum[j] += v
		}
	}
}

// Add sets dst[i] += src[i] for the values of src.
func Add(dst, src []float32) {
	n := len(src)
	dst = dst[:n]
	done := 0
	if hasAVX2 && n >= 8 {
		done = n &^ 7
		addAVX2(&dst[0], &src[0], done)
	}
	AddRef(dst[done:], src[done:])
}

// AddRef is the plain loop Add is tested against.
func AddRef(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}
