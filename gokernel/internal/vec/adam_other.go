//go:build !amd64 || purego

package vec

const hasAVX2 = false

func adamAVX2(p, grad, m, v *float32, n int, c *[6]float32) {
	panic("vec: no assembly on this architecture")
}
