package vec_test

import (
	"fmt"

	"github.com/gophas/gophas/gokernel/internal/vec"
)

// One Adam step from zero moments: m = 0.1·g, v = 0.001·g², and each
// parameter moves by α·m/(√v + ε) ≈ α·3.16 against its gradient's sign.
func ExampleAdam() {
	p := []float32{1, 1}
	g := []float32{0.5, -2}
	m := make([]float32, 2)
	v := make([]float32, 2)
	vec.Adam(p, g, m, v, 0.1, 0.001, 0.001, 1e-7)
	fmt.Printf("p %.5f m %.3f v %.5f\n", p, m, v)
	// Output: p [0.99684 1.00316] m [0.050 -0.200] v [0.00025 0.00400]
}
