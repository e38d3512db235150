// Package gemm multiplies float32 matrices for the neural-network kernel:
// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major storage with the
// contract of cblas_sgemm(CblasRowMajor, ...).
//
// SgemmRef is the plain triple loop kept beside the fast path as its
// reference; the tests hold Sgemm to it for every shape and transpose.
package gemm
