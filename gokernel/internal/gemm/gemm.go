package gemm

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices, like cblas_sgemm(CblasRowMajor, ...): op(A) is m×k (A is m×k
// with leading dimension lda, or k×m when transA), op(B) is k×n (B is k×n
// with leading dimension ldb, or n×k when transB), and C is m×n with leading
// dimension ldc. When beta is zero C is overwritten, even where it holds NaN.
//
// threads is how many goroutines may work; threads <= 1 keeps all the work
// on the calling goroutine.
//
// Sgemm panics on a caller bug (negative dimensions, leading dimensions
// smaller than the row width, slices too short), naming the argument.
func Sgemm(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	SgemmRef(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
