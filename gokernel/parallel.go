package gokernel

import (
	"runtime"
	"sync"

	"github.com/gophas/gophas/gokernel/internal/gemm"
)

// ranger is work over the items [lo, hi) of some range (the samples of a
// batch, the rows of a matrix) whose parts may run at the same time.
type ranger interface {
	runRange(lo, hi int)
}

type rangePart struct {
	r      ranger
	lo, hi int
	done   *sync.WaitGroup
}

var (
	rangeOnce sync.Once
	rangeWork chan rangePart
)

// startRangeWorkers starts, once, one worker goroutine per processor. The
// channel is unbuffered: a send succeeds only when a worker is idle, and
// the caller runs any part no worker took.
func startRangeWorkers() {
	rangeOnce.Do(func() {
		rangeWork = make(chan rangePart)
		for range runtime.GOMAXPROCS(0) {
			go func() {
				for p := range rangeWork {
					p.r.runRange(p.lo, p.hi)
					p.done.Done()
				}
			}()
		}
	})
}

// minParallelWork is the number of values below which a loop runs on the
// caller alone: below it, handing work to another goroutine costs more
// than it saves.
const minParallelWork = 1 << 14

// parallelFor runs r over [0, n) in up to threads parts of nearly equal
// size, on the caller and idle workers, and returns when all are done.
// work is the loop's total number of values, to keep small loops on the
// caller. wg is the caller's (a call's) to reuse: nothing is allocated.
func parallelFor(threads, n, work int, r ranger, wg *sync.WaitGroup) {
	parts := min(threads, n)
	if parts < 2 || work < minParallelWork {
		r.runRange(0, n)
		return
	}
	startRangeWorkers()
	for p := 0; p < parts-1; p++ {
		lo, hi := n*p/parts, n*(p+1)/parts
		wg.Add(1)
		select {
		case rangeWork <- rangePart{r: r, lo: lo, hi: hi, done: wg}:
		default:
			wg.Done()
			r.runRange(lo, hi)
		}
	}
	r.runRange(n*(parts-1)/parts, n)
	wg.Wait()
}

// patchJob runs im2col (or, back, col2im) for a range of the samples
// [n0, n1) of a window op in parallel.
type patchJob struct {
	w                 window
	x, col            []float32
	ch, n0, c0, cn, k int
	back              bool
}

func (j *patchJob) runRange(lo, hi int) {
	off := lo * j.w.outH * j.w.outW * j.k
	if j.back {
		j.w.col2im(j.col[off:], j.ch, j.n0+lo, j.n0+hi, j.c0, j.cn, j.x)
	} else {
		j.w.im2col(j.x, j.ch, j.n0+lo, j.n0+hi, j.c0, j.cn, j.col[off:])
	}
}

// patches runs im2col (back: col2im) on samples [n0, n1), split over the
// call's threads.
func (c *call) patches(w window, x []float32, ch, n0, n1, c0, cn int, col []float32, back bool) {
	j := c.jobs().patch
	*j = patchJob{w: w, x: x, col: col, ch: ch, n0: n0, c0: c0, cn: cn, k: w.kh * w.kw * cn, back: back}
	parallelFor(c.threads, n1-n0, (n1-n0)*w.outH*w.outW*j.k, j, &c.jobs().wg)
}

// actJob applies an activation (or its backward pass) to a range of rows.
type actJob struct {
	a             activation
	z, out, g, dz []float32
	cols          int
	back          bool
}

func (j *actJob) runRange(lo, hi int) {
	l, h := lo*j.cols, hi*j.cols
	if j.back {
		j.a.backward(j.z[l:h], j.out[l:h], j.g[l:h], j.dz[l:h], j.cols)
	} else {
		j.a.forward(j.z[l:h], j.out[l:h], j.cols)
	}
}

// callJobs are a call's reusable parallel jobs.
type callJobs struct {
	wg       sync.WaitGroup
	patch    *patchJob
	act      *actJob
	bias     *biasJob
	gradBias *gradBiasJob
	sums     []float32
	// rows and rowsFn, its bound method, are the fused activation of a
	// matrix product (epilogue).
	rows   *rowsJob
	rowsFn func(i0, i1 int)
	layer  ranger // the layer's own, if it has one
}

func (c *call) jobs() *callJobs {
	if c.par == nil {
		c.par = &callJobs{patch: &patchJob{}, act: &actJob{}, bias: &biasJob{}}
	}
	return c.par
}

// biasJob adds a bias to a range of rows.
type biasJob struct {
	z, b []float32
}

func (j *biasJob) runRange(lo, hi int) {
	nb := len(j.b)
	addBias(j.z[lo*nb:hi*nb], j.b)
}

// addBias adds b to every row of z, split over the call's threads.
func (c *call) addBias(z, b []float32) {
	j := c.jobs().bias
	*j = biasJob{z: z, b: b}
	parallelFor(c.threads, len(z)/len(b), len(z), j, &c.jobs().wg)
}

// partial returns the jobs' scratch for n partial sums.
func (j *callJobs) partial(n int) []float32 {
	if cap(j.sums) < n {
		j.sums = make([]float32, n)
	}
	return j.sums[:n]
}

// rowsJob applies an activation to bands of rows of a matrix product as
// gemm finishes them (gemm.Epilogue.Rows).
type rowsJob struct {
	a         activation
	z, out    []float32
	cols, off int
}

func (j *rowsJob) rows(i0, i1 int) {
	l, h := (j.off+i0)*j.cols, (j.off+i1)*j.cols
	j.a.forward(j.z[l:h], j.out[l:h], j.cols)
}

// epilogue returns the work a matrix product does on its output rows as it
// finishes them: add bias (nil: none), then apply a to the rows
// [off+i0, off+i1) of z (rows of cols values) into the call's output.
func (c *call) epilogue(a activation, z []float32, cols, off int, bias []float32) gemm.Epilogue {
	ep := gemm.Epilogue{Bias: bias}
	if a == actLinear {
		return ep
	}
	j := c.jobs()
	if j.rowsFn == nil {
		j.rows = &rowsJob{}
		j.rowsFn = j.rows.rows // made once: no allocation per step
	}
	*j.rows = rowsJob{a: a, z: z, out: c.y[0], cols: cols, off: off}
	ep.Rows = j.rowsFn
	return ep
}

// gradBiasJob runs an activation's backward pass and sums the result's
// columns (a bias gradient) in one pass over each block of rows, the
// rows split in parts each with its own partial sums.
type gradBiasJob struct {
	a                   activation
	z, out, dz, partial []float32
	cols, rows, parts   int
}

func (j *gradBiasJob) runRange(lo, hi int) {
	// Blocks of about 4096 values stay in L1 between the two loops.
	block := max(1, 4096/j.cols)
	for p := lo; p < hi; p++ {
		part := j.partial[p*j.cols : (p+1)*j.cols]
		clear(part)
		r1 := j.rows * (p + 1) / j.parts
		for r := j.rows * p / j.parts; r < r1; r += block {
			l, h := r*j.cols, min(r+block, r1)*j.cols
			if j.a != actLinear {
				j.a.backward(j.z[l:h], j.out[l:h], j.dz[l:h], j.dz[l:h], j.cols)
			}
			addColSum(j.dz[l:h], part)
		}
	}
}

// gradBias turns the call's c.dy[0] into ∂L/∂z in place (see grad) and
// adds its column sums into db (nil: none), in one pass.
func (a activation) gradBias(c *call, cols int, db []float32) []float32 {
	if db == nil {
		return a.grad(c, cols)
	}
	dz := c.dy[0]
	z := c.y[0]
	if a.needsZ() {
		z = c.buf(0, len(dz))
	}
	rows := len(dz) / cols
	parts := max(1, min(c.threads, rows))
	if len(dz) < minParallelWork {
		parts = 1
	}
	jobs := c.jobs()
	if jobs.gradBias == nil {
		jobs.gradBias = &gradBiasJob{}
	}
	j := jobs.gradBias
	*j = gradBiasJob{a: a, z: z, out: c.y[0], dz: dz, partial: jobs.partial(parts * cols), cols: cols, rows: rows, parts: parts}
	parallelFor(parts, parts, parts*minParallelWork, j, &jobs.wg)
	for p := 0; p < parts; p++ {
		for i, v := range j.partial[p*cols : (p+1)*cols] {
			db[i] += v
		}
	}
	return dz
}
