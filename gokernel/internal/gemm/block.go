package gemm

import "sync"

// call is one Sgemm call: its arguments, the implementation it runs and its
// blocking into steps and tasks (GotoBLAS/BLIS structure).
//
// C is cut into blocks of ncs columns (jc), the inner dimension into blocks
// of kcs (pc) and the rows into groups of mgs (ig); each (jc, pc, ig) is a
// step of two phases. In the pack phase the rows of the group of op(A) are
// packed into mr-row slivers and, in the first group of a (jc, pc), the
// kcs×ncs panel of op(B) into nr-column slivers; both are shared by everyone
// working on the call. In the compute phase each task runs the micro-kernel
// over a rectangle of tiles of the group. Tasks of a phase are claimed from
// a counter, so the calling goroutine does them all when no helper shows up.
type call struct {
	im             *impl
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	c              []float32
	ldc            int
	bias           []float32        // Epilogue.Bias
	rows           func(i0, i1 int) // Epilogue.Rows

	ncs, kcs, mgs    int  // block sizes along n, k and m
	jcs, pcs, igs    int  // number of blocks along n, k and m
	rowBand          int  // rows per compute task, a multiple of mr
	colBand          int  // columns per compute task, a multiple of nr
	packParts        int  // most pack tasks per matrix in a step
	directA, directB bool // full slivers are read in place, not packed
	// private: the call is one phase of tasks that pack the slivers they
	// read themselves, so no goroutine ever waits for another's packing
	// (small products: see plan).
	private bool
}

// Bytes of packed A (one group) and packed B (one panel) per step: the A
// group stays in L2, the B panel in a share of L3. Tests shrink them to
// make many steps out of small matrices.
var (
	groupBytes   = 2 << 20
	panelBytes   = 2 << 20
	directBytes  = 2 << 20 // most bytes a k block of A or B read in place spans
	privateBytes = 1 << 20 // largest A and B of a private call
)

// plan sets the blocking of c for the given number of threads.
func (c *call) plan(threads int) {
	im := c.im
	// Blocks are balanced so no thin remainder block runs at low speed:
	// k = 1000 makes two blocks of 500 rather than 512+488.
	c.kcs = balance(c.k, im.kc, 1)
	c.ncs = balance(c.n, max(im.nr, panelBytes/4/c.kcs/im.nr*im.nr), im.nr)
	c.mgs = balance(c.m, max(im.mr, groupBytes/4/c.kcs/im.mr*im.mr), im.mr)
	c.jcs = (c.n + c.ncs - 1) / c.ncs
	c.pcs = (c.k + c.kcs - 1) / c.kcs
	c.igs = (c.m + c.mgs - 1) / c.mgs
	// A sliver of op(A) is mr contiguous values per step when A is
	// transposed, and one of op(B) nr contiguous values when B is not: the
	// kernel can read them in place, stepping by lda or ldb, if the rows a
	// block steps over stay in L2 and the stride is not a multiple of 4 KiB
	// (those rows would all fall in the same L1 set).
	inPlace := func(ld int) bool { return c.kcs*ld*4 <= directBytes && ld*4%4096 != 0 }
	c.directA = c.transA && inPlace(c.lda)
	c.directB = !c.transB && inPlace(c.ldb)
	rows := (c.mgs + im.mr - 1) / im.mr // row slivers in a group
	cols := (c.ncs + im.nr - 1) / im.nr // column slivers in a panel
	if threads <= 1 {
		// Bands of mc rows: each band's packed A stays in L2 while the
		// whole B panel streams past it.
		c.rowBand, c.colBand, c.packParts = min(rows, im.mc/im.mr)*im.mr, cols*im.nr, 1
		return
	}
	// Products of MLP size take tens of microseconds: a goroutine that
	// waits at a phase end for a helper the OS has just preempted loses
	// more than sharing the packing saves. When A and B are small, the
	// call is one phase of private tasks instead: split by rows when B is
	// read in place (each task packs only its own rows of A), else by
	// columns when A is small enough to pack in every task.
	slivM, slivN := (c.m+im.mr-1)/im.mr, (c.n+im.nr-1)/im.nr
	small := c.m*c.k*4 <= privateBytes && c.k*c.n*4 <= privateBytes
	switch {
	case small && c.directB && slivM >= 2:
		target := 8 * threads
		c.private = true
		c.rowBand = (slivM + target - 1) / target * im.mr
		c.colBand = slivN * im.nr
		return
	case small && c.rows == nil && c.m*c.k*4 <= privateBytes/8 && slivN >= 2:
		target := 6 * threads
		c.private = true
		c.rowBand = slivM * im.mr
		c.colBand = (slivN + target - 1) / target * im.nr
		return
	}
	// About sixteen tasks per thread: a helper that arrives late still
	// finds work, and the threads finish a phase at most a small task
	// apart. Rows split first, so a task reuses each B sliver over its rows.
	target := 16 * threads
	band, colBands := (rows+target-1)/target, 1
	if rows < target && c.rows == nil {
		colBands = min(cols, (target+rows-1)/rows)
	}
	c.rowBand = band * im.mr
	c.colBand = (cols + colBands - 1) / colBands * im.nr
	c.packParts = 2 * threads
}

// phases returns the number of phases of the call.
func (c *call) phases() int {
	if c.private {
		return 1
	}
	return 2 * c.jcs * c.pcs * c.igs
}

// span is the blocks of one step: columns [jc, jc+ncb), depth [pc, pc+kcb)
// and rows [i0, i0+mgb); packB says the step packs the B panel, first that
// it is the first pass over its block of C, last that it is the last.
type span struct {
	jc, ncb, pc, kcb, i0, mgb int
	packB, first, last        bool
}

// step returns the blocks of phase ph.
func (c *call) step(ph int) span {
	s := ph / 2
	gi := s % c.igs
	pi := s / c.igs % c.pcs
	ji := s / c.igs / c.pcs
	sp := span{jc: ji * c.ncs, pc: pi * c.kcs, i0: gi * c.mgs}
	sp.ncb, sp.kcb, sp.mgb = min(c.ncs, c.n-sp.jc), min(c.kcs, c.k-sp.pc), min(c.mgs, c.m-sp.i0)
	sp.packB, sp.first, sp.last = gi == 0, pi == 0, ji == c.jcs-1 && pi == c.pcs-1
	return sp
}

// packTasks returns the numbers of A and B pack tasks of step sp. Slivers
// read in place are not packed: only a partial edge sliver is.
func (c *call) packTasks(sp span) (na, nb int) {
	im := c.im
	switch {
	case !c.directA:
		na = min(c.packParts, (sp.mgb+im.mr-1)/im.mr)
	case sp.mgb%im.mr != 0:
		na = 1
	}
	switch {
	case !sp.packB:
	case !c.directB:
		nb = min(c.packParts, (sp.ncb+im.nr-1)/im.nr)
	case sp.ncb%im.nr != 0:
		nb = 1
	}
	return na, nb
}

// tasks returns the number of tasks of phase ph.
func (c *call) tasks(ph int) int {
	if c.private {
		return (c.m + c.rowBand - 1) / c.rowBand * ((c.n + c.colBand - 1) / c.colBand)
	}
	sp := c.step(ph)
	if ph%2 == 0 {
		na, nb := c.packTasks(sp)
		return na + nb
	}
	return (sp.mgb + c.rowBand - 1) / c.rowBand * ((sp.ncb + c.colBand - 1) / c.colBand)
}

// run does task t of phase ph. pa and pb are the shared packed A group and
// B panel, buf the goroutine's own buffers.
func (c *call) run(ph, t int, pa, pb []float32, buf *buffers) {
	if c.private {
		c.runPrivate(t, buf)
		return
	}
	im := c.im
	sp := c.step(ph)
	if ph%2 == 0 {
		na, nb := c.packTasks(sp)
		if t < na {
			s0, s1 := sliverRange(sp.mgb, im.mr, t, na, c.directA)
			packA(im, pa[s0*sp.kcb:], c.transA, c.a, c.lda, sp.i0+s0, s1-s0, sp.pc, sp.kcb)
			return
		}
		s0, s1 := sliverRange(sp.ncb, im.nr, t-na, nb, c.directB)
		packB(im, pb[s0*sp.kcb:], c.transB, c.b, c.ldb, sp.pc, sp.kcb, sp.jc+s0, s1-s0)
		return
	}
	cols := (sp.ncb + c.colBand - 1) / c.colBand
	i0, j0 := t/cols*c.rowBand, t%cols*c.colBand // within the group and panel
	rows, width := min(c.rowBand, sp.mgb-i0), min(c.colBand, sp.ncb-j0)
	cc := c.c[(sp.i0+i0)*c.ldc+sp.jc+j0:]
	if sp.first {
		prepare(rows, width, c.beta, c.bias, sp.jc+j0, cc, c.ldc)
	}
	c.macroKernel(buf, sp, pa, pb, i0, j0, rows, width, cc)
	if sp.last && c.rows != nil {
		c.rows(sp.i0+i0, sp.i0+i0+rows)
	}
}

// runPrivate does task t of a private call: a rectangle of C over all of
// k, packing its own slivers of A and B block by block into buf.
func (c *call) runPrivate(t int, buf *buffers) {
	im := c.im
	cols := (c.n + c.colBand - 1) / c.colBand
	i0, j0 := t/cols*c.rowBand, t%cols*c.colBand
	rows, width := min(c.rowBand, c.m-i0), min(c.colBand, c.n-j0)
	cc := c.c[i0*c.ldc+j0:]
	prepare(rows, width, c.beta, c.bias, j0, cc, c.ldc)
	for pc := 0; pc < c.k; pc += c.kcs {
		sp := span{jc: j0, ncb: width, pc: pc, kcb: min(c.kcs, c.k-pc), i0: i0, mgb: rows}
		buf.pa = grow(buf.pa, sp.kcb*roundUp(rows, im.mr))
		buf.pb = grow(buf.pb, sp.kcb*roundUp(width, im.nr))
		r0, r1 := sliverRange(rows, im.mr, 0, 1, c.directA)
		packA(im, buf.pa[r0*sp.kcb:], c.transA, c.a, c.lda, i0+r0, r1-r0, pc, sp.kcb)
		s0, s1 := sliverRange(width, im.nr, 0, 1, c.directB)
		packB(im, buf.pb[s0*sp.kcb:], c.transB, c.b, c.ldb, pc, sp.kcb, j0+s0, s1-s0)
		c.macroKernel(buf, sp, buf.pa, buf.pb, 0, 0, rows, width, cc)
	}
	if c.rows != nil {
		c.rows(i0, i0+rows)
	}
}

// sliverRange returns the rows (or columns) [r0, r1) of part t of parts of
// a block of d, in whole slivers of width w; with edgeOnly, the one part is
// the partial sliver at the end.
func sliverRange(d, w, t, parts int, edgeOnly bool) (r0, r1 int) {
	if edgeOnly {
		return d / w * w, d
	}
	n := (d + w - 1) / w
	return n * t / parts * w, min(d, n*(t+1)/parts*w)
}

// macroKernel runs the micro-kernel over rows [i0, i0+mcb) of the step's
// group and columns [j0, j0+ncb) of its panel, whose top-left element of C
// is c[0]: full tiles in place, edge tiles through buf.tile. Each sliver
// comes from the packed A group pa and B panel pb, or from A or B itself
// when the call reads full slivers in place.
func (c *call) macroKernel(buf *buffers, sp span, pa, pb []float32, i0, j0, mcb, ncb int, cc []float32) {
	im, kcb, ldc := c.im, sp.kcb, c.ldc
	mr, nr := im.mr, im.nr
	for jr := 0; jr < ncb; jr += nr {
		nrb := min(nr, ncb-jr)
		var bp *float32
		bs := nr
		if c.directB && nrb == nr {
			col := sp.jc + j0 + jr
			_ = c.b[(sp.pc+kcb-1)*c.ldb+col+nr-1]
			bp, bs = &c.b[sp.pc*c.ldb+col], c.ldb
		} else {
			bp = &pb[(j0+jr)*kcb : (j0+jr+nr)*kcb][0]
		}
		for ir := 0; ir < mcb; ir += mr {
			mrb := min(mr, mcb-ir)
			var ap *float32
			as := mr
			if c.directA && mrb == mr {
				row := sp.i0 + i0 + ir
				_ = c.a[(sp.pc+kcb-1)*c.lda+row+mr-1]
				ap, as = &c.a[sp.pc*c.lda+row], c.lda
			} else {
				ap = &pa[(i0+ir)*kcb : (i0+ir+mr)*kcb][0]
			}
			if mrb == mr && nrb == nr {
				_ = cc[(ir+mr-1)*ldc+jr+nr-1]
				im.kernel(kcb, c.alpha, ap, as, bp, bs, &cc[ir*ldc+jr], ldc)
				continue
			}
			t := buf.tile[:mr*nr]
			clear(t)
			im.kernel(kcb, c.alpha, ap, as, bp, bs, &t[0], nr)
			for i := range mrb {
				ci := cc[(ir+i)*ldc+jr:][:nrb]
				ti := t[i*nr:][:nrb]
				for j := range ci {
					ci[j] += ti[j]
				}
			}
		}
	}
}

// prepare sets the rows×width block of C at c to beta*C + bias (bias
// indexed from column j0), writing beta*C as zero when beta is zero.
func prepare(rows, width int, beta float32, bias []float32, j0 int, c []float32, ldc int) {
	if bias != nil {
		bias = bias[j0 : j0+width]
	}
	for i := range rows {
		ci := c[i*ldc : i*ldc+width]
		switch {
		case beta == 0 && bias != nil:
			copy(ci, bias)
		case beta == 0:
			clear(ci)
		case beta != 1:
			for j := range ci {
				ci[j] *= beta
			}
		}
		if beta != 0 && bias != nil {
			for j, v := range bias {
				ci[j] += v
			}
		}
	}
}

// maxTile is the largest mr×nr of the implementations.
const maxTile = 8 * 32

// buffers holds the edge tile and the private packed slivers of one
// goroutine; they are pooled so a call allocates nothing in steady state.
type buffers struct {
	tile   [maxTile]float32 // C tile for the edges of C
	pa, pb []float32        // private calls' packed A and B slivers
}

var bufPool = sync.Pool{New: func() any { return new(buffers) }}

// grow returns s resliced to length n, reallocating only when its capacity
// is too small.
func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}

// balance returns the block size, a multiple of unit and at most limit, that
// cuts d into the fewest blocks of nearly equal size.
func balance(d, limit, unit int) int {
	blocks := (d + limit - 1) / limit
	return roundUp((d+blocks-1)/blocks, unit)
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// packA packs rows i0..i0+mcb and columns p0..p0+kcb of op(A) into mr-row
// slivers: sliver s holds, for each l, the mr values op(A)[i0+s·mr+r][p0+l]
// at dst[s·mr·kcb + l·mr + r], zero-padded past row mcb.
func packA(im *impl, dst []float32, transA bool, a []float32, lda, i0, mcb, p0, kcb int) {
	mr := im.mr
	for s := 0; s < mcb; s += mr {
		rows := min(mr, mcb-s)
		d := dst[s*kcb : (s+mr)*kcb]
		if transA {
			// op(A)[i][l] = a[l*lda+i]: each l is a contiguous run of rows.
			copyRuns(im.asm, d, mr, a[p0*lda+i0+s:], lda, kcb, rows)
		} else {
			interleave(im.asm, d, mr, a[(i0+s)*lda+p0:], lda, kcb, rows)
		}
	}
}

// packB packs rows p0..p0+kcb and columns j0..j0+ncb of op(B) into nr-column
// slivers: sliver s holds, for each l, the nr values op(B)[p0+l][j0+s·nr+j]
// at dst[s·nr·kcb + l·nr + j], zero-padded past column ncb.
func packB(im *impl, dst []float32, transB bool, b []float32, ldb, p0, kcb, j0, ncb int) {
	nr := im.nr
	for s := 0; s < ncb; s += nr {
		cols := min(nr, ncb-s)
		d := dst[s*kcb : (s+nr)*kcb]
		if transB {
			// op(B)[l][j] = b[j*ldb+l]: each column is a contiguous row of b.
			interleave(im.asm, d, nr, b[(j0+s)*ldb+p0:], ldb, kcb, cols)
		} else {
			copyRuns(im.asm, d, nr, b[p0*ldb+j0+s:], ldb, kcb, cols)
		}
	}
}

// copyRuns sets d[l*w+r] = src[l*ld+r] for l < kcb, r < cnt, and zero for
// cnt <= r < w. asm allows the AVX copies.
func copyRuns(asm bool, d []float32, w int, src []float32, ld, kcb, cnt int) {
	switch {
	case asm && w == 16 && cnt == 16 && kcb > 0:
		_ = d[kcb*16-1]
		_ = src[(kcb-1)*ld+15]
		copyRows16(&d[0], &src[0], ld, kcb)
	case asm && w == 32 && cnt == 32 && kcb > 0:
		_ = d[kcb*32-1]
		_ = src[(kcb-1)*ld+31]
		copyRows32(&d[0], &src[0], ld, kcb)
	case w == 8 && cnt == 8:
		for l := range kcb {
			*(*[8]float32)(d[l*8:]) = *(*[8]float32)(src[l*ld:])
		}
	case w == 6 && cnt == 6:
		// Element by element: a 24-byte array copy would call memmove.
		for l := range kcb {
			dl, sl := (*[6]float32)(d[l*6:]), (*[6]float32)(src[l*ld:])
			dl[0], dl[1], dl[2], dl[3], dl[4], dl[5] = sl[0], sl[1], sl[2], sl[3], sl[4], sl[5]
		}
	case w == 4 && cnt == 4:
		for l := range kcb {
			*(*[4]float32)(d[l*4:]) = *(*[4]float32)(src[l*ld:])
		}
	default:
		for l := range kcb {
			dl := d[l*w : l*w+w]
			copy(dl, src[l*ld:l*ld+cnt])
			clear(dl[cnt:])
		}
	}
}

// interleave sets d[l*w+r] = src[r*ld+l] for l < kcb, r < cnt, and zero for
// cnt <= r < w: cnt rows of src become the columns of d. asm allows the AVX
// 8×8 transposes.
func interleave(asm bool, d []float32, w int, src []float32, ld, kcb, cnt int) {
	switch {
	case w == 6 && cnt == 6:
		r0 := src[0*ld:][:kcb]
		r1 := src[1*ld:][:kcb]
		r2 := src[2*ld:][:kcb]
		r3 := src[3*ld:][:kcb]
		r4 := src[4*ld:][:kcb]
		r5 := src[5*ld:][:kcb]
		for l := range kcb {
			dl := (*[6]float32)(d[l*6:])
			dl[0], dl[1], dl[2], dl[3], dl[4], dl[5] = r0[l], r1[l], r2[l], r3[l], r4[l], r5[l]
		}
	case w == 4 && cnt == 4:
		r0 := src[0*ld:][:kcb]
		r1 := src[1*ld:][:kcb]
		r2 := src[2*ld:][:kcb]
		r3 := src[3*ld:][:kcb]
		for l := range kcb {
			dl := (*[4]float32)(d[l*4:])
			dl[0], dl[1], dl[2], dl[3] = r0[l], r1[l], r2[l], r3[l]
		}
	case w%8 == 0 && cnt == w:
		// Eight rows at a time keeps the row slices in registers.
		for h := 0; h < w; h += 8 {
			r0 := src[(h+0)*ld:][:kcb]
			r1 := src[(h+1)*ld:][:kcb]
			r2 := src[(h+2)*ld:][:kcb]
			r3 := src[(h+3)*ld:][:kcb]
			r4 := src[(h+4)*ld:][:kcb]
			r5 := src[(h+5)*ld:][:kcb]
			r6 := src[(h+6)*ld:][:kcb]
			r7 := src[(h+7)*ld:][:kcb]
			l0 := 0
			if asm && kcb >= 8 {
				l0 = kcb / 8 * 8
				_ = d[(l0-1)*w+h+7]
				transpose8(&d[h], &r0[0], ld, w, l0/8)
			}
			for l := l0; l < kcb; l++ {
				dl := (*[8]float32)(d[l*w+h:])
				dl[0], dl[1], dl[2], dl[3] = r0[l], r1[l], r2[l], r3[l]
				dl[4], dl[5], dl[6], dl[7] = r4[l], r5[l], r6[l], r7[l]
			}
		}
	default:
		clear(d[:kcb*w])
		for r := range cnt {
			row := src[r*ld:][:kcb]
			for l, v := range row {
				d[l*w+r] = v
			}
		}
	}
}
