//go:build !amd64 || purego

package gemm

// hasAsm is false: this architecture has only the portable kernel.
const hasAsm = false

func kernelAsm(kc int, alpha float32, ap, bp, c *float32, ldc int) {
	panic("gemm: no assembly kernel on this architecture")
}

func copyRows16(d, src *float32, ld, kc int) {
	panic("gemm: no assembly packing on this architecture")
}

func transpose8(d, src *float32, ld, blocks int) {
	panic("gemm: no assembly packing on this architecture")
}
