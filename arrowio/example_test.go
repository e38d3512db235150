package arrowio_test

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/arrowio"
)

func Example() {
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "features", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
		{Name: "label", Type: arrow.PrimitiveTypes.Int32},
	}, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	fb := b.Field(0).(*array.ListBuilder)
	vb := fb.ValueBuilder().(*array.Float64Builder)
	for _, row := range [][]float64{{1, 2, 3}, {4, 5, 6}} {
		fb.Append(true)
		vb.AppendValues(row, nil)
	}
	b.Field(1).(*array.Int32Builder).AppendValues([]int32{0, 1}, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()

	x, err := arrowio.Matrix(rec, []string{"features"})
	if err != nil {
		fmt.Println(err)
		return
	}
	y, err := arrowio.Matrix(rec, []string{"label"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(x.Shape(), x.Data())
	fmt.Println(y.Shape(), y.Data())

	// Output:
	// (2, 3) [1 2 3 4 5 6]
	// (2, 1) [0 1]
}
