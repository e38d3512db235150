//go:build amd64 && !purego

package vec

import "golang.org/x/sys/cpu"

var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// sigmoidAVX2 and tanhAVX2 are Sigmoid and Tanh over the first n values,
// n a positive multiple of 8; c are actConsts.
//
//go:noescape
func sigmoidAVX2(dst, src *float32, n int, c *[actConstCount][8]float32)

//go:noescape
func tanhAVX2(dst, src *float32, n int, c *[actConstCount][8]float32)

//go:noescape
func expAVX2(dst, src *float32, n int, c *[actConstCount][8]float32)
