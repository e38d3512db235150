//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

var hasAVX2 = cpu.X86.HasAVX2

// adamAVX2 is Adam over the first n elements, n a positive multiple of 8;
// c holds c1, c2, alpha, eps, the absolute-value mask and the smallest
// normal float32.
//
//go:noescape
func adamAVX2(p, grad, m, v *float32, n int, c *[6]float32)
