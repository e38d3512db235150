package gemm_test

import (
	"fmt"

	"github.com/gophas/gophas/gokernel/internal/gemm"
)

// A 2×3 matrix times a 3×2 matrix, C = A·B.
func ExampleSgemm() {
	a := []float32{
		1, 2, 3,
		4, 5, 6,
	}
	b := []float32{
		7, 8,
		9, 10,
		11, 12,
	}
	c := make([]float32, 2*2)
	gemm.Sgemm(1, false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)
	fmt.Println(c)
	// Output: [58 64 139 154]
}

// The weight gradient of a dense layer, dW = Xᵀ·dY, reads X transposed in
// place: X is batch×in (2×3), dY is batch×out (2×2), dW is in×out (3×2).
func ExampleSgemm_transpose() {
	x := []float32{
		1, 2, 3,
		4, 5, 6,
	}
	dy := []float32{
		1, 0,
		0, 1,
	}
	dw := make([]float32, 3*2)
	gemm.Sgemm(1, true, false, 3, 2, 2, 1, x, 3, dy, 2, 0, dw, 2)
	fmt.Println(dw)
	// Output: [1 4 2 5 3 6]
}
