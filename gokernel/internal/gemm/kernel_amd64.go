//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// hasAsm reports whether this CPU runs the AVX2+FMA micro-kernel.
var hasAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// kernelAsm computes the 6×16 tile C += alpha * Ap·Bp with AVX2 and FMA:
// ap holds kc groups of 6 values, bp kc groups of 16, and C has leading
// dimension ldc (in elements).
//
//go:noescape
func kernelAsm(kc int, alpha float32, ap, bp, c *float32, ldc int)

// copyRows16 sets d[l*16+j] = src[l*ld+j] for l < kc, j < 16, with AVX:
// the packing of full B slivers. kc > 0.
//
//go:noescape
func copyRows16(d, src *float32, ld, kc int)

// transpose8 sets d[l*16+r] = src[r*ld+l] for r < 8, l < 8*blocks, with AVX
// 8×8 register transposes: the packing of B slivers when B is transposed.
// blocks > 0.
//
//go:noescape
func transpose8(d, src *float32, ld, blocks int)
