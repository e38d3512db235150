// Package gemm multiplies float32 matrices for the neural-network kernel:
// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major storage with the
// contract of cblas_sgemm(CblasRowMajor, ...), and SgemmFused adds a bias row
// and a per-band hook (an activation, say) while each band of C is still in
// cache.
//
// SgemmRef is the plain triple loop kept beside the fast path as its
// reference; the tests hold Sgemm to it for every shape and transpose, with
// every micro-kernel this CPU runs.
//
// The fast path follows GotoBLAS/BLIS. For each block of k (kc deep) and of
// n, the rows of op(A) are packed into mr-row slivers and the panel of op(B)
// into nr-column slivers, contiguous and zero-padded at the edges, and a
// micro-kernel computes each mr×nr tile of C from one sliver pair.
// Transposes are absorbed by packing, so all four combinations run the same
// kernel. The kernels step through a sliver with a stride, so a full sliver
// that is already contiguous per step (a row-run of a transposed A, of a
// plain B) is read in place when the block it spans is small enough to stay
// in L2: Xᵀ·dY of a dense layer packs nothing. Three micro-kernels exist, chosen once at start-up from what the
// CPU reports (golang.org/x/sys/cpu):
//
//   - avx512: AVX-512F, an 8×32 tile in sixteen ZMM accumulators, eight
//     broadcasts of A and two loads of B feeding sixteen FMAs per step;
//   - avx2: AVX2 and FMA, a 6×16 tile in twelve YMM accumulators;
//   - go: portable Go over a 4×16 tile, also the only kernel on other
//     architectures and with the purego build tag.
//
// The environment variable GOPHAS_GEMM_ISA forces one of them (ISA reports
// which runs), so a machine with AVX-512 can time all three, and tests run
// each.
//
// With threads > 1 the caller hires up to threads-1 helper goroutines from a
// pool, and the call is cut into tasks claimed from a counter, so a helper
// that arrives late, or never, costs nothing but its share: the caller does
// the rest. Products of MLP size (A and B of at most 1 MiB) run as one phase
// of private tasks, each packing the slivers it reads (split by rows when B
// is read in place, so no packing is repeated), so nobody waits for another
// goroutine's packing. Larger products run in steps of two phases that share
// packed panels: the pack phase's tasks pack slivers of A and B, the
// compute phase's tasks run the micro-kernel over rectangles of tiles (rows
// first, so a task reuses each B sliver over its rows). A helper spins
// briefly between calls (waking a parked goroutine takes longer than an
// MLP-sized product on a small VM) and then parks; with threads <= 1 nothing
// spins. When other processes keep the helpers' cores busy, a helper can be
// preempted holding a task, and the caller waits for it: threads > 1 pays
// off only on cores the process has to itself. Packed panels, jobs and edge
// tiles come from pools, so a call allocates nothing in steady state.
package gemm
