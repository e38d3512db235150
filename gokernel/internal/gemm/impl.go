package gemm

import (
	"fmt"
	"os"
	"unsafe"
)

// impl is one micro-kernel with the register tile and cache blocks tuned
// for it. The micro-kernel computes an mr×nr tile of C from an mr-row sliver
// of packed A and an nr-column sliver of packed B; packing follows mr and nr,
// so every impl runs the same blocked loops.
type impl struct {
	name   string // "avx512", "avx2" or "go"
	mr, nr int    // register tile
	mc     int    // rows one thread runs over a B panel (a multiple of mr): its A stays in L2
	kc     int    // depth of a packed block
	// kernel computes C[i][j] += alpha * Σ_l A_l[i]·B_l[j] for i < mr,
	// j < nr, l < kc, where A_l is the mr values at ap + l*as and B_l the nr
	// values at bp + l*bs (as = mr and bs = nr for packed slivers), into C
	// with leading dimension ldc; kc > 0.
	kernel func(kc int, alpha float32, ap *float32, as int, bp *float32, bs int, c *float32, ldc int)
	// asm enables the AVX packing helpers.
	asm bool
	// flops is the f32 flops one peak-loop iteration does, peak that loop;
	// nil for the portable kernel.
	flops float64
	peak  func(n int)
}

// The implementations, fastest first, with block sizes measured on the
// MLP shapes and 1024³ (see BenchmarkSgemm).
var (
	implAVX512 = &impl{name: "avx512", mr: 8, nr: 32, mc: 128, kc: 512,
		kernel: kernel512x8, asm: true, flops: 768, peak: peakAVX512}
	implAVX2 = &impl{name: "avx2", mr: 6, nr: 16, mc: 144, kc: 256,
		kernel: kernelAVX2, asm: true, flops: 192, peak: peakAVX2}
	implGo = &impl{name: "go", mr: goMR, nr: goNR, mc: 144, kc: 256,
		kernel: kernelGo}
)

// impls lists the implementations this CPU runs, fastest first.
func impls() []*impl {
	var out []*impl
	if hasAVX512 {
		out = append(out, implAVX512)
	}
	if hasAVX2 {
		out = append(out, implAVX2)
	}
	return append(out, implGo)
}

// EnvISA names the environment variable that forces a micro-kernel: "avx512",
// "avx2" or "go". Unset or empty picks the fastest the CPU runs. A value the
// CPU cannot run, or an unknown one, is reported on stderr once and ignored.
const EnvISA = "GOPHAS_GEMM_ISA"

// active is the implementation Sgemm uses; tests swap it to run every path.
var active = pickImpl(os.Getenv(EnvISA))

func pickImpl(want string) *impl {
	all := impls()
	if want == "" {
		return all[0]
	}
	for _, im := range all {
		if im.name == want {
			return im
		}
	}
	fmt.Fprintf(os.Stderr, "gemm: %s=%q is not one of %v on this CPU; using %s\n", EnvISA, want, implNames(all), all[0].name)
	return all[0]
}

func implNames(all []*impl) []string {
	names := make([]string, len(all))
	for i, im := range all {
		names[i] = im.name
	}
	return names
}

// ISA returns the instruction set of the micro-kernel Sgemm uses: "avx512"
// (AVX-512F, 8×32 tiles), "avx2" (AVX2 and FMA, 6×16 tiles) or "go" (the
// portable kernel). It is the fastest this CPU runs unless GOPHAS_GEMM_ISA
// forces another.
func ISA() string { return active.name }

// The portable kernel's tile: four rows of sixteen keep its sums in
// registers.
const (
	goMR = 4
	goNR = 16
)

// kernelGo is the portable micro-kernel, over the same strided slivers as
// the assembly ones: C[i][j] += alpha * Σ_l ap[l*as+i] * bp[l*bs+j] for a
// goMR×goNR tile. It walks one row and four columns at a time so the four
// sums stay in registers.
func kernelGo(kc int, alpha float32, ap *float32, as int, bp *float32, bs int, c *float32, ldc int) {
	a := unsafe.Slice(ap, (kc-1)*as+goMR)
	b := unsafe.Slice(bp, (kc-1)*bs+goNR)
	cs := unsafe.Slice(c, (goMR-1)*ldc+goNR)
	for i := range goMR {
		ci := cs[i*ldc : i*ldc+goNR : i*ldc+goNR]
		for j := 0; j < goNR; j += 4 {
			var s0, s1, s2, s3 float32
			for l := range kc {
				av := a[l*as+i]
				bl := (*[4]float32)(b[l*bs+j:])
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
