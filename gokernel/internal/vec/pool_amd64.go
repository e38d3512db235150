//go:build amd64 && !purego

package vec

// maxPool2AVX2 is MaxPool2 for ch a positive multiple of 8 and outW > 0;
// arg may be nil.
//
//go:noescape
func maxPool2AVX2(y *float32, arg *byte, r0, r1 *float32, outW, ch int)

// maxPool2BackAVX2 is MaxPool2Back for ch a positive multiple of 8 and
// outW > 0; lanes is bitLanes.
//
//go:noescape
func maxPool2BackAVX2(dx0, dx1, dy *float32, arg *byte, outW, ch int, lanes *[8]int32)
