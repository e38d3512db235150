package gemm

import (
	"fmt"
	"testing"
)

// BenchmarkKernel measures the micro-kernel alone on one L1/L2-resident
// sliver pair: the ceiling the packed path can reach.
func BenchmarkKernel(b *testing.B) {
	for _, asm := range kernels(b) {
		b.Run(fmt.Sprintf("%s/%dx%dx%d", kernelName(asm), mr, nr, kc), func(b *testing.B) {
			ap := make([]float32, mr*kc)
			bp := make([]float32, nr*kc)
			c := make([]float32, mr*nr)
			for b.Loop() {
				kernel(asm, kc, 1, ap, bp, c, nr)
			}
			b.ReportMetric(2*mr*nr*kc*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
