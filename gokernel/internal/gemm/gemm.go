package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// useAsm selects the assembly micro-kernel. It is hasAsm unless a test
// forces the portable kernel.
var useAsm = hasAsm

// minParallelFlops is the work below which Sgemm stays on one goroutine:
// handing a part to a worker costs a few microseconds.
const minParallelFlops = 1 << 17

// Sgemm computes C = alpha*op(A)*op(B) + beta*C for row-major float32
// matrices, like cblas_sgemm(CblasRowMajor, ...): op(A) is m×k (A is m×k
// with leading dimension lda, or k×m when transA), op(B) is k×n (B is k×n
// with leading dimension ldb, or n×k when transB), and C is m×n with leading
// dimension ldc. When beta is zero C is overwritten, even where it holds NaN.
//
// threads is how many goroutines may work; threads <= 1 keeps all the work
// on the calling goroutine. Larger values split C into column (or row)
// blocks that pooled worker goroutines compute.
//
// Sgemm panics on a caller bug (negative dimensions, leading dimensions
// smaller than the row width, slices too short), naming the argument.
func Sgemm(threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	scale(m, n, beta, c, ldc)
	if k == 0 || alpha == 0 {
		return
	}
	p := part{asm: useAsm, transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc}
	if threads <= 1 || 2*m*n*k < minParallelFlops {
		p.run()
		return
	}
	split(threads, p)
}

// scale sets C = beta*C, writing zeros when beta is zero.
func scale(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := range m {
		ci := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(ci)
			continue
		}
		for j := range ci {
			ci[j] *= beta
		}
	}
}

// part is one block of C = alpha*op(A)*op(B) + C for one goroutine.
type part struct {
	asm            bool // use the assembly micro-kernel
	transA, transB bool
	m, n, k        int
	alpha          float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	c              []float32
	ldc            int
}

func (p *part) run() {
	gemmPacked(p.asm, p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.c, p.ldc)
}

// split cuts C into up to threads blocks along n (each part packs all of A
// and its share of B) or, when m > n or n is too narrow, along m, in whole
// register tiles. The caller and the idle workers it wakes claim parts from a
// shared counter until none is left, so a worker that another process keeps
// off the CPU delays nothing: the caller computes its parts itself.
func split(threads int, p part) {
	byCols := p.m <= p.n && (p.n+nr-1)/nr >= threads || (p.m+mr-1)/mr < 2
	dim, unit := p.m, mr
	if byCols {
		dim, unit = p.n, nr
	}
	units := (dim + unit - 1) / unit
	parts := min(threads, units, maxParts)
	if parts < 2 {
		p.run()
		return
	}
	startWorkers()
	j := jobPool.Get().(*job)
	j.n = parts
	j.next.Store(0)
	lo := 0
	for i := range parts {
		hi := min(dim, (units*(i+1)/parts)*unit)
		q := p
		if byCols {
			q.n = hi - lo
			q.c = p.c[lo:]
			if p.transB {
				q.b = p.b[lo*p.ldb:]
			} else {
				q.b = p.b[lo:]
			}
		} else {
			q.m = hi - lo
			q.c = p.c[lo*p.ldc:]
			if p.transA {
				q.a = p.a[lo:]
			} else {
				q.a = p.a[lo*p.lda:]
			}
		}
		j.parts[i] = q
		lo = hi
	}
	j.pending.Add(parts)
	j.refs.Store(1)
	for range parts - 1 {
		j.refs.Add(1)
		select {
		case work <- j:
		default: // no idle worker: the caller will claim the part
			j.refs.Add(-1)
		}
	}
	j.claim()
	j.pending.Wait() // every part claimed has been computed
	j.release()
}

// maxParts bounds the blocks one call is cut into.
const maxParts = 16

// job is one parallel Sgemm call: its parts, the counter that hands them
// out, a WaitGroup of parts not yet computed, and a count of goroutines
// holding the job; the last to let go returns it to jobPool.
type job struct {
	parts   [maxParts]part
	n       int
	next    atomic.Int32
	pending sync.WaitGroup
	refs    atomic.Int32
}

// claim computes parts until none is left unclaimed.
func (j *job) claim() {
	for {
		i := int(j.next.Add(1)) - 1
		if i >= j.n {
			return
		}
		j.parts[i].run()
		j.pending.Done()
	}
}

// release drops one reference; the last one clears the parts (they hold
// the caller's slices) and pools the job.
func (j *job) release() {
	if j.refs.Add(-1) == 0 {
		clear(j.parts[:])
		jobPool.Put(j)
	}
}

var (
	workOnce sync.Once
	work     chan *job
	jobPool  = sync.Pool{New: func() any { return new(job) }}
)

// startWorkers starts, once, one worker goroutine per processor. A worker
// takes jobs from the unbuffered work channel, so a send succeeds only when
// a worker is idle.
func startWorkers() {
	workOnce.Do(func() {
		work = make(chan *job)
		for range runtime.GOMAXPROCS(0) {
			go func() {
				for j := range work {
					j.claim()
					j.release()
				}
			}()
		}
	})
}
