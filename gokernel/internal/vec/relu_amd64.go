//go:build amd64 && !purego

package vec

// reluAVX2 is ReLU over the first n values, n a positive multiple of 8.
//
//go:noescape
func reluAVX2(dst, src *float32, n int)

// reluGradAVX2 is ReLUGrad over the first n values, n a positive multiple
// of 8.
//
//go:noescape
func reluGradAVX2(dz, out, grad *float32, n int)

// colSums8AVX2 adds to sum[0..8) the sums over r < rows of x[r·ld+j],
// j < 8; rows > 0.
//
//go:noescape
func colSums8AVX2(sum, x *float32, rows, ld int)

// colSums32AVX2 is colSums8AVX2 for 32 columns.
//
//go:noescape
func colSums32AVX2(sum, x *float32, rows, ld int)

// addAVX2 is Add over the first n values, n a positive multiple of 8.
//
//go:noescape
func addAVX2(dst, src *float32, n int)
