package gemm

// minParallelFlops is the work below which Sgemm stays on one goroutine:
// below it (about 10 µs of work), handing tasks to a helper costs more than
// it saves. Tests set it to 0 to run small products in parallel.
var minParallelFlops = 1 << 20

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices, like cblas_sgemm(CblasRowMajor, ...): op(A) is m×k (A is m×k
// with leading dimension lda, or k×m when transA), op(B) is k×n (B is k×n
// with leading dimension ldb, or n×k when transB), and C is m×n with leading
// dimension ldc. When beta is zero C is overwritten, even where it holds NaN.
//
// threads is how many goroutines may work; threads <= 1 keeps all the work
// on the calling goroutine. With more, the caller hires up to threads-1
// pooled helpers (never more than GOMAXPROCS-1); they share the packed
// panels of op(B) and split the rows (and, for few rows, the columns) of C.
//
// Sgemm panics on a caller bug (negative dimensions, leading dimensions
// smaller than the row width, slices too short), naming the argument.
func Sgemm(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	SgemmFused(threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, Epilogue{})
}

// Epilogue is work SgemmFused does on C after the product, band by band
// while the band is still in cache, instead of a second pass over C.
type Epilogue struct {
	// Bias, when not nil, holds n values added to every row of C:
	//
	//	C[i][j] = alpha * Σ_l op(A)[i][l]·op(B)[l][j] + beta*C[i][j] + Bias[j]
	Bias []float32
	// Rows, when not nil, is called with [i0, i1) for every band of rows of
	// C that is final (product, beta and Bias done for all n columns). The
	// bands are disjoint, cover [0, m) and come in no set order; with
	// threads > 1 they may come from several goroutines at once, so Rows
	// must only touch its band (e.g. apply an activation to rows i0..i1 of
	// C, writing the same rows of another buffer).
	Rows func(i0, i1 int)
}

// SgemmFused is Sgemm followed by the epilogue ep, fused into the product:
// each task adds Bias to its block of C as it first scales it by beta, and
// calls ep.Rows on its band of rows once the band is final. With a zero
// Epilogue it is Sgemm.
//
// It panics as Sgemm does, and when Bias is not nil and shorter than n.
func SgemmFused(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, ep Epilogue) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if ep.Bias != nil && len(ep.Bias) < n {
		panic("gemm: short bias")
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		prepare(m, n, beta, ep.Bias, 0, c, ldc)
		if ep.Rows != nil {
			ep.Rows(0, m)
		}
		return
	}
	cl := call{im: active, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc, bias: ep.Bias, rows: ep.Rows}
	if 2*m*n*k < minParallelFlops {
		threads = 1
	}
	cl.plan(threads)
	runCall(&cl, threads)
}
