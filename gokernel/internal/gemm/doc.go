// Package gemm multiplies float32 matrices for the neural-network kernel:
// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major storage with the
// contract of cblas_sgemm(CblasRowMajor, ...).
//
// SgemmRef is the plain triple loop kept beside the fast path as its
// reference; the tests hold Sgemm to it for every shape and transpose.
//
// The fast path follows GotoBLAS/BLIS. C is scaled by beta first; then, for
// each kc-deep block of the inner dimension, a panel of op(B) is packed into
// nr=16-column slivers and a block of op(A) into mr=6-row slivers, both
// contiguous and zero-padded at the edges, and a micro-kernel computes each
// 6×16 tile of C from one sliver pair. Transposes are absorbed by packing, so
// all four combinations run the same kernel. Block sizes (mc=144, kc=256,
// nc=4080 at most, balanced so no thin remainder block is left) keep a B
// sliver in L1 and the A block in L2.
//
// On amd64 CPUs with AVX2 and FMA (golang.org/x/sys/cpu decides at start-up)
// the micro-kernel is assembly: twelve YMM accumulators, VFMADD231PS on
// broadcast A values. Elsewhere, or built with the purego tag, a portable Go
// kernel runs over the same packed layout. There is no AVX-512 kernel: none
// could be tested on the machines this was built on.
//
// With threads > 1, Sgemm cuts C into column (or row) blocks of whole tiles.
// The calling goroutine and the idle workers it wakes (a pool of one
// goroutine per processor, started on first use) claim blocks from a shared
// counter until none is left, so a worker kept off the CPU by other load
// delays nothing. Packing buffers and the job come from sync.Pools, so a call
// allocates nothing in steady state.
package gemm
