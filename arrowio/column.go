package arrowio

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gorgonia.org/tensor"
)

// FromMatrix builds a list<float64> column, the type the Spark shim reads as
// an ML vector, from a row-major float32 matrix data of the given width: row
// i is data[i*width:(i+1)*width]. The caller releases the array.
func FromMatrix(mem memory.Allocator, data []float32, width int) (arrow.Array, error) {
	if width <= 0 {
		return nil, fmt.Errorf("arrowio: FromMatrix: width %d, want > 0", width)
	}
	if len(data)%width != 0 {
		return nil, fmt.Errorf("arrowio: FromMatrix: %d values are not whole rows of width %d", len(data), width)
	}
	rows := len(data) / width
	if int64(len(data)) > int64(^uint32(0)>>1) {
		return nil, fmt.Errorf("arrowio: FromMatrix: %d values exceed a list's int32 offsets", len(data))
	}
	b := array.NewListBuilder(mem, arrow.PrimitiveTypes.Float64)
	defer b.Release()
	vb := b.ValueBuilder().(*array.Float64Builder)
	b.Reserve(rows)
	vb.Reserve(len(data))
	for r := 0; r < rows; r++ {
		b.Append(true)
		for _, v := range data[r*width : (r+1)*width] {
			vb.UnsafeAppend(float64(v))
		}
	}
	return b.NewArray(), nil
}

// FromDense is FromMatrix for a float32 tensor of shape rows×width.
func FromDense(mem memory.Allocator, t *tensor.Dense) (arrow.Array, error) {
	if t.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("arrowio: FromDense: dtype %v, want float32", t.Dtype())
	}
	s := t.Shape()
	if len(s) != 2 {
		return nil, fmt.Errorf("arrowio: FromDense: shape %v, want rows×width", s)
	}
	data := t.Data().([]float32)
	if !t.IsNativelyAccessible() || t.RequiresIterator() || len(data) != s[0]*s[1] {
		return nil, fmt.Errorf("arrowio: FromDense: tensor of shape %v is not contiguous", s)
	}
	return FromMatrix(mem, data, s[1])
}
