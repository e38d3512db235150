//go:build !amd64 || purego

package vec

func reluAVX2(dst, src *float32, n int) { panic("vec: no assembly on this architecture") }

func reluGradAVX2(dz, out, grad *float32, n int) { panic("vec: no assembly on this architecture") }

func colSums8AVX2(sum, x *float32, rows, ld int) { panic("vec: no assembly on this architecture") }

func colSums32AVX2(sum, x *float32, rows, ld int) { panic("vec: no assembly on this architecture") }

func addAVX2(dst, src *float32, n int) { panic("vec: no assembly on this architecture") }
