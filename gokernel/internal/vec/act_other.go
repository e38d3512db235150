//go:build !amd64 || purego

package vec

const hasAVX2FMA = false

func sigmoidAVX2(dst, src *float32, n int, c *[actConstCount][8]float32) {
	panic("vec: no assembly on this architecture")
}

func tanhAVX2(dst, src *float32, n int, c *[actConstCount][8]float32) {
	panic("vec: no assembly on this architecture")
}

func expAVX2(dst, src *float32, n int, c *[actConstCount][8]float32) {
	panic("vec: no assembly on this architecture")
}
