//go:build !unix

package gemm

import "time"

// processCPU is not measured on this OS; benchmarks leave out GFLOP/cpu-s.
func processCPU() time.Duration { return 0 }
