//go:build !amd64 || purego

package gemm

// Without amd64 assembly only the portable kernel exists.
const (
	hasAVX2   = false
	hasAVX512 = false
)

func kernelAVX2(kc int, alpha float32, ap *float32, as int, bp *float32, bs int, c *float32, ldc int) {
	panic("gemm: no assembly kernel on this architecture")
}

func kernel512x8(kc int, alpha float32, ap *float32, as int, bp *float32, bs int, c *float32, ldc int) {
	panic("gemm: no assembly kernel on this architecture")
}

func copyRows16(d, src *float32, ld, kc int) {
	panic("gemm: no assembly packing on this architecture")
}

func copyRows32(d, src *float32, ld, kc int) {
	panic("gemm: no assembly packing on this architecture")
}

func transpose8(d, src *float32, ld, dst, blocks int) {
	panic("gemm: no assembly packing on this architecture")
}

func peakAVX2(n int)   { panic("gemm: no assembly kernel on this architecture") }
func peakAVX512(n int) { panic("gemm: no assembly kernel on this architecture") }

func pause() {}

func clockLoop(n int) { panic("gemm: no assembly on this architecture") }
