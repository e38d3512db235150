//go:build !amd64 || purego

package vec

func maxPool2AVX2(y *float32, arg *byte, r0, r1 *float32, outW, ch int) {
	panic("vec: no assembly on this architecture")
}

func maxPool2BackAVX2(dx0, dx1, dy *float32, arg *byte, outW, ch int, lanes *[8]int32) {
	panic("vec: no assembly on this architecture")
}
