package gemm

import (
	"fmt"
	"testing"
)

// BenchmarkKernel measures each micro-kernel alone on one L1/L2-resident
// sliver pair of its kc: the ceiling the packed path can reach.
func BenchmarkKernel(b *testing.B) {
	for _, im := range kernels(b) {
		b.Run(fmt.Sprintf("%s/%dx%dx%d", im.name, im.mr, im.nr, im.kc), func(b *testing.B) {
			ap := make([]float32, im.mr*im.kc)
			bp := make([]float32, im.nr*im.kc)
			c := make([]float32, im.mr*im.nr)
			for b.Loop() {
				im.kernel(im.kc, 1, &ap[0], im.mr, &bp[0], im.nr, &c[0], im.nr)
			}
			flops := 2 * float64(im.mr*im.nr*im.kc) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			if p := peaks().perCore(im); p > 0 {
				b.ReportMetric(100*flops/b.Elapsed().Seconds()/1e9/p, "%peak")
			}
		})
	}
}
