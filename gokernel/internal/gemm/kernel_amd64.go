//go:build amd64 && !purego

package gemm

import "golang.org/x/sys/cpu"

// The CPU features the assembly needs; x/sys/cpu also checks that the OS
// saves the YMM (and, for AVX-512, ZMM and opmask) registers.
var (
	hasAVX2   = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F
)

// kernelAVX2 computes the 6×16 tile C[i][j] += alpha * Σ_l A_l[i]·B_l[j]
// with AVX2 and FMA, where A_l is the 6 values at ap + l*as and B_l the 16
// at bp + l*bs (strides in elements), for l < kc, and C has leading
// dimension ldc. kc > 0.
//
//go:noescape
func kernelAVX2(kc int, alpha float32, ap *float32, as int, bp *float32, bs int, c *float32, ldc int)

// kernel512x8 is kernelAVX2 for an 8×32 tile with AVX-512F.
//
//go:noescape
func kernel512x8(kc int, alpha float32, ap *float32, as int, bp *float32, bs int, c *float32, ldc int)

// copyRows16 sets d[l*16+j] = src[l*ld+j] for l < kc, j < 16, with AVX:
// the packing of full 16-wide slivers. kc > 0.
//
//go:noescape
func copyRows16(d, src *float32, ld, kc int)

// copyRows32 is copyRows16 for 32-wide slivers.
//
//go:noescape
func copyRows32(d, src *float32, ld, kc int)

// transpose8 sets d[l*dst+r] = src[r*ld+l] for r < 8, l < 8*blocks, with
// AVX 8×8 register transposes: the packing of slivers whose rows are
// strided in the source. blocks > 0.
//
//go:noescape
func transpose8(d, src *float32, ld, dst, blocks int)

// peakAVX2 runs n iterations of 12 independent 8-lane FMAs (192 flops).
//
//go:noescape
func peakAVX2(n int)

// peakAVX512 runs n iterations of 24 independent 16-lane FMAs (768 flops).
//
//go:noescape
func peakAVX512(n int)

// pause executes one PAUSE, the spin-wait hint.
func pause()

// clockLoop runs n iterations of 8 dependent one-cycle integer adds: 8n
// core cycles, whatever the CPU, which measures the clock.
//
//go:noescape
func clockLoop(n int)
