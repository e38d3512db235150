package arrowio

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// BenchmarkMatrix converts list<float64> vectors into a reused float32
// buffer; MB/s counts the float64 input bytes.
func BenchmarkMatrix(b *testing.B) {
	for _, shape := range []struct{ rows, width int }{{10000, 784}, {10000, 16}} {
		b.Run(fmt.Sprintf("rows=%d,width=%d", shape.rows, shape.width), func(b *testing.B) {
			mem := memory.NewGoAllocator()
			schema := arrow.NewSchema([]arrow.Field{{Name: "features", Type: f64List}}, nil)
			rb := array.NewRecordBuilder(mem, schema)
			lb := rb.Field(0).(*array.ListBuilder)
			vb := lb.ValueBuilder().(*array.Float64Builder)
			rng := rand.New(rand.NewPCG(1, 2))
			for r := 0; r < shape.rows; r++ {
				lb.Append(true)
				for j := 0; j < shape.width; j++ {
					vb.Append(rng.Float64())
				}
			}
			rec := rb.NewRecordBatch()
			rb.Release()
			defer rec.Release()
			c := NewConverter([]string{"features"})
			buf := make([]float32, 0, shape.rows*shape.width)
			b.SetBytes(int64(shape.rows * shape.width * 8))
			for b.Loop() {
				var err error
				if buf, err = c.Append(buf[:0], rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
