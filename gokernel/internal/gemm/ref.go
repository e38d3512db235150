package gemm

// SgemmRef computes C = alpha*op(A)*op(B) + beta*C with the plain triple
// loop. It has the same contract as Sgemm and is the reference the fast path
// is tested against:
//
//	C[i][j] = alpha * Σ_l op(A)[i][l] * op(B)[l][j] + beta * C[i][j]
//
// where op(A)[i][l] is a[i*lda+l], or a[l*lda+i] when transA, and
// op(B)[l][j] is b[l*ldb+j], or b[j*ldb+l] when transB. When beta is zero
// C is overwritten, even where it holds NaN.
func SgemmRef(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	for i := range m {
		for j := range n {
			var sum float32
			if alpha != 0 {
				for l := range k {
					var av, bv float32
					if transA {
						av = a[l*lda+i]
					} else {
						av = a[i*lda+l]
					}
					if transB {
						bv = b[j*ldb+l]
					} else {
						bv = b[l*ldb+j]
					}
					sum += av * bv
				}
			}
			cv := alpha * sum
			if beta != 0 {
				cv += beta * c[i*ldc+j]
			}
			c[i*ldc+j] = cv
		}
	}
}

// checkArgs panics with a message naming the bad argument, like gonum's
// blas does, when the dimensions or slices cannot hold the matrices.
func checkArgs(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 {
		panic("gemm: m < 0")
	}
	if n < 0 {
		panic("gemm: n < 0")
	}
	if k < 0 {
		panic("gemm: k < 0")
	}
	// Stored shapes: A is rowsA×colsA, B is rowsB×colsB.
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	if lda < max(1, colsA) {
		panic("gemm: bad lda")
	}
	if ldb < max(1, colsB) {
		panic("gemm: bad ldb")
	}
	if ldc < max(1, n) {
		panic("gemm: bad ldc")
	}
	if rowsA > 0 && colsA > 0 && len(a) < lda*(rowsA-1)+colsA {
		panic("gemm: short a")
	}
	if rowsB > 0 && colsB > 0 && len(b) < ldb*(rowsB-1)+colsB {
		panic("gemm: short b")
	}
	if m > 0 && n > 0 && len(c) < ldc*(m-1)+n {
		panic("gemm: short c")
	}
}
