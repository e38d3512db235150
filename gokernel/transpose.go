package gokernel

// transposeInto sets dst[j*ldd + i] = src[i*lds + j] (add: +=) for i < rows,
// j < cols, in 8×8 blocks so that both sides stay in cache.
func transposeInto(dst []float32, ldd int, src []float32, lds, rows, cols int, add bool) {
	const bs = 8
	for i0 := 0; i0 < rows; i0 += bs {
		i1 := min(i0+bs, rows)
		for j0 := 0; j0 < cols; j0 += bs {
			j1 := min(j0+bs, cols)
			for i := i0; i < i1; i++ {
				s := src[i*lds+j0 : i*lds+j1]
				if add {
					for j, v := range s {
						dst[(j0+j)*ldd+i] += v
					}
				} else {
					for j, v := range s {
						dst[(j0+j)*ldd+i] = v
					}
				}
			}
		}
	}
}
