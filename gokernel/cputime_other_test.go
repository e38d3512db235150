//go:build !unix

package gokernel

import "time"

// processCPU is not measured here.
func processCPU() time.Duration { return 0 }
