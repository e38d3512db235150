package gemm

import "sync"

// Register tile and cache blocking of the packed path (GotoBLAS/BLIS
// structure). The micro-kernel computes an mr×nr tile of C from an mr-row
// sliver of packed A and an nr-column sliver of packed B. A kc-deep sliver of
// B (kc·nr·4 = 16 KiB) stays in L1 while slivers of an mc×kc block of packed
// A (144 KiB) stream from L2; the kc×nc panel of packed B lives in L3.
const (
	mr = 6
	nr = 16
	mc = 144 // multiple of mr
	kc = 256
	nc = 4080 // multiple of nr
)

// buffers holds the packing buffers of one goroutine; they are pooled so a
// call allocates nothing in steady state.
type buffers struct {
	a, b []float32
	tile [mr * nr]float32 // C tile for the edges of C
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

// gemmPacked computes C += alpha*op(A)*op(B) with packed panels on the
// calling goroutine. C has already been scaled by beta. m, n, k > 0.
func gemmPacked(asm, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	buf := bufPool.Get().(*buffers)
	defer bufPool.Put(buf)
	// Blocks are balanced so no thin remainder block runs at low speed:
	// k = 784 makes four blocks of 196 rather than 256+256+256+16.
	ncs := balance(n, nc, nr)
	kcs := balance(k, kc, 1)
	mcs := balance(m, mc, mr)
	for jc := 0; jc < n; jc += ncs {
		ncb := min(ncs, n-jc)
		for pc := 0; pc < k; pc += kcs {
			kcb := min(kcs, k-pc)
			buf.b = grow(buf.b, kcb*roundUp(ncb, nr))
			packB(buf.b, transB, b, ldb, pc, kcb, jc, ncb)
			for ic := 0; ic < m; ic += mcs {
				mcb := min(mcs, m-ic)
				buf.a = grow(buf.a, kcb*roundUp(mcb, mr))
				packA(buf.a, transA, a, lda, ic, mcb, pc, kcb)
				macroKernel(asm, buf, mcb, ncb, kcb, alpha, c[ic*ldc+jc:], ldc)
			}
		}
	}
}

// balance returns the block size, a multiple of unit and at most limit, that
// cuts d into the fewest blocks of nearly equal size.
func balance(d, limit, unit int) int {
	blocks := (d + limit - 1) / limit
	return roundUp((d+blocks-1)/blocks, unit)
}

// macroKernel runs the micro-kernel over the mcb×ncb block of C whose
// top-left element is c[0], from the packed buffers in buf. Full tiles are
// updated in place; edge tiles go through buf.tile.
func macroKernel(asm bool, buf *buffers, mcb, ncb, kcb int, alpha float32, c []float32, ldc int) {
	for jr := 0; jr < ncb; jr += nr {
		nrb := min(nr, ncb-jr)
		bp := buf.b[jr*kcb : (jr+nr)*kcb]
		for ir := 0; ir < mcb; ir += mr {
			mrb := min(mr, mcb-ir)
			ap := buf.a[ir*kcb : (ir+mr)*kcb]
			if mrb == mr && nrb == nr {
				kernel(asm, kcb, alpha, ap, bp, c[ir*ldc+jr:], ldc)
				continue
			}
			t := &buf.tile
			clear(t[:])
			kernel(asm, kcb, alpha, ap, bp, t[:], nr)
			for i := range mrb {
				ci := c[(ir+i)*ldc+jr:][:nrb]
				ti := t[i*nr:][:nrb]
				for j := range ci {
					ci[j] += ti[j]
				}
			}
		}
	}
}

// kernel computes C[0:mr][0:nr] += alpha * Ap·Bp for a kcb-deep packed
// sliver pair, with the assembly kernel when asm is set.
func kernel(asm bool, kcb int, alpha float32, ap, bp, c []float32, ldc int) {
	if asm {
		_ = ap[mr*kcb-1]
		_ = bp[nr*kcb-1]
		_ = c[(mr-1)*ldc+nr-1]
		kernelAsm(kcb, alpha, &ap[0], &bp[0], &c[0], ldc)
		return
	}
	kernelGo(kcb, alpha, ap, bp, c, ldc)
}

// kernelGo is the portable micro-kernel over the same packed layout as the
// assembly kernel: C[i][j] += alpha * Σ_l ap[l*mr+i] * bp[l*nr+j]. It walks
// one row and four columns at a time so the four sums stay in registers.
func kernelGo(kcb int, alpha float32, ap, bp, c []float32, ldc int) {
	ap = ap[:kcb*mr]
	bp = bp[:kcb*nr]
	for i := range mr {
		ci := c[i*ldc : i*ldc+nr : i*ldc+nr]
		for j := 0; j < nr; j += 4 {
			var s0, s1, s2, s3 float32
			for l := range kcb {
				av := ap[l*mr+i]
				bl := (*[4]float32)(bp[l*nr+j:])
				s0 += av * bl[0]
				s1 += av * bl[1]
				s2 += av * bl[2]
				s3 += av * bl[3]
			}
			cj := (*[4]float32)(ci[j:])
			cj[0] += alpha * s0
			cj[1] += alpha * s1
			cj[2] += alpha * s2
			cj[3] += alpha * s3
		}
	}
}

func roundUp(x, m int) int { return (x + m - 1) / m * m }

// packA packs rows i0..i0+mcb and columns p0..p0+kcb of op(A) into mr-row
// slivers: sliver s holds, for each l, the mr values op(A)[i0+s·mr+r][p0+l]
// at dst[s·mr·kcb + l·mr + r], zero-padded past row mcb.
func packA(dst []float32, transA bool, a []float32, lda, i0, mcb, p0, kcb int) {
	for s := 0; s < mcb; s += mr {
		rows := min(mr, mcb-s)
		d := dst[s*kcb : (s+mr)*kcb]
		if transA {
			// op(A)[i][l] = a[l*lda+i]: each l is a contiguous run of rows.
			copyRuns(d, mr, a[p0*lda+i0+s:], lda, kcb, rows)
		} else {
			interleave(d, mr, a[(i0+s)*lda+p0:], lda, kcb, rows)
		}
	}
}

// packB packs rows p0..p0+kcb and columns j0..j0+ncb of op(B) into nr-column
// slivers: sliver s holds, for each l, the nr values op(B)[p0+l][j0+s·nr+j]
// at dst[s·nr·kcb + l·nr + j], zero-padded past column ncb.
func packB(dst []float32, transB bool, b []float32, ldb, p0, kcb, j0, ncb int) {
	for s := 0; s < ncb; s += nr {
		cols := min(nr, ncb-s)
		d := dst[s*kcb : (s+nr)*kcb]
		if transB {
			// op(B)[l][j] = b[j*ldb+l]: each column is a contiguous row of b.
			interleave(d, nr, b[(j0+s)*ldb+p0:], ldb, kcb, cols)
		} else {
			copyRuns(d, nr, b[p0*ldb+j0+s:], ldb, kcb, cols)
		}
	}
}

// copyRuns sets d[l*w+r] = src[l*ld+r] for l < kcb, r < cnt, and zero for
// cnt <= r < w.
func copyRuns(d []float32, w int, src []float32, ld, kcb, cnt int) {
	switch {
	case w == nr && cnt == nr && hasAsm && kcb > 0:
		_ = d[kcb*nr-1]
		_ = src[(kcb-1)*ld+nr-1]
		copyRows16(&d[0], &src[0], ld, kcb)
	case w == mr && cnt == mr:
		// Element by element: a 24-byte array copy would call memmove.
		for l := range kcb {
			dl, sl := (*[mr]float32)(d[l*mr:]), (*[mr]float32)(src[l*ld:])
			dl[0], dl[1], dl[2], dl[3], dl[4], dl[5] = sl[0], sl[1], sl[2], sl[3], sl[4], sl[5]
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
// cnt <= r < w: cnt rows of src become the columns of d.
func interleave(d []float32, w int, src []float32, ld, kcb, cnt int) {
	switch {
	case w == mr && cnt == mr:
		r0 := src[0*ld:][:kcb]
		r1 := src[1*ld:][:kcb]
		r2 := src[2*ld:][:kcb]
		r3 := src[3*ld:][:kcb]
		r4 := src[4*ld:][:kcb]
		r5 := src[5*ld:][:kcb]
		for l := range kcb {
			dl := (*[mr]float32)(d[l*mr:])
			dl[0], dl[1], dl[2], dl[3], dl[4], dl[5] = r0[l], r1[l], r2[l], r3[l], r4[l], r5[l]
		}
	case w == nr && cnt == nr:
		// Eight rows at a time keeps the row slices in registers.
		for h := 0; h < nr; h += 8 {
			r0 := src[(h+0)*ld:][:kcb]
			r1 := src[(h+1)*ld:][:kcb]
			r2 := src[(h+2)*ld:][:kcb]
			r3 := src[(h+3)*ld:][:kcb]
			r4 := src[(h+4)*ld:][:kcb]
			r5 := src[(h+5)*ld:][:kcb]
			r6 := src[(h+6)*ld:][:kcb]
			r7 := src[(h+7)*ld:][:kcb]
			l0 := 0
			if hasAsm && kcb >= 8 {
				l0 = kcb / 8 * 8
				_ = d[(l0-1)*nr+h+7]
				transpose8(&d[h], &r0[0], ld, l0/8)
			}
			for l := l0; l < kcb; l++ {
				dl := (*[8]float32)(d[l*nr+h:])
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
