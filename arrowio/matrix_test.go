package arrowio

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

var (
	f64List = arrow.ListOf(arrow.PrimitiveTypes.Float64)
	f32List = arrow.ListOf(arrow.PrimitiveTypes.Float32)
)

// record builds a record from JSON rows, failing the test on bad JSON.
func record(t testing.TB, mem memory.Allocator, fields []arrow.Field, rows string) arrow.RecordBatch {
	t.Helper()
	rec, _, err := array.RecordFromJSON(mem, arrow.NewSchema(fields, nil), strings.NewReader(rows))
	if err != nil {
		t.Fatalf("RecordFromJSON: %v", err)
	}
	return rec
}

func TestMatrix(t *testing.T) {
	tests := []struct {
		name   string
		fields []arrow.Field
		rows   string
		cols   []string
		shape  []int
		want   []float32
	}{
		{"list<float64>", []arrow.Field{{Name: "features", Type: f64List}},
			`[{"features":[1,2,3]},{"features":[4,5,6.5]}]`, []string{"features"}, []int{2, 3}, []float32{1, 2, 3, 4, 5, 6.5}},
		{"list<float32>", []arrow.Field{{Name: "f", Type: f32List}},
			`[{"f":[1,-2]},{"f":[3,4]}]`, []string{"f"}, []int{2, 2}, []float32{1, -2, 3, 4}},
		{"large_list<float64>", []arrow.Field{{Name: "f", Type: arrow.LargeListOf(arrow.PrimitiveTypes.Float64)}},
			`[{"f":[1,2]},{"f":[3,4]}]`, []string{"f"}, []int{2, 2}, []float32{1, 2, 3, 4}},
		{"fixed_size_list<float32>", []arrow.Field{{Name: "f", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float32)}},
			`[{"f":[1,2]},{"f":[3,4]}]`, []string{"f"}, []int{2, 2}, []float32{1, 2, 3, 4}},
		{"list<int16>", []arrow.Field{{Name: "f", Type: arrow.ListOf(arrow.PrimitiveTypes.Int16)}},
			`[{"f":[-1,2]},{"f":[3,400]}]`, []string{"f"}, []int{2, 2}, []float32{-1, 2, 3, 400}},
		{"scalars concatenated", []arrow.Field{
			{Name: "a", Type: arrow.PrimitiveTypes.Float64}, {Name: "b", Type: arrow.PrimitiveTypes.Int64},
			{Name: "c", Type: arrow.PrimitiveTypes.Uint8}, {Name: "d", Type: arrow.PrimitiveTypes.Float32}},
			`[{"a":0.5,"b":-7,"c":200,"d":1},{"a":1.5,"b":8,"c":0,"d":2}]`, []string{"a", "b", "c", "d"}, []int{2, 4},
			[]float32{0.5, -7, 200, 1, 1.5, 8, 0, 2}},
		{"vector and scalar in given order", []arrow.Field{{Name: "v", Type: f64List}, {Name: "s", Type: arrow.PrimitiveTypes.Int32}},
			`[{"v":[1,2],"s":9},{"v":[3,4],"s":8}]`, []string{"s", "v"}, []int{2, 3}, []float32{9, 1, 2, 8, 3, 4}},
		{"label column", []arrow.Field{{Name: "features", Type: f64List}, {Name: "label", Type: arrow.PrimitiveTypes.Float64}},
			`[{"features":[1],"label":3},{"features":[2],"label":4}]`, []string{"label"}, []int{2, 1}, []float32{3, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			rec := record(t, mem, tt.fields, tt.rows)
			defer rec.Release()
			m, err := Matrix(rec, tt.cols)
			if err != nil {
				t.Fatalf("Matrix: %v", err)
			}
			if got := []int(m.Shape()); !slices.Equal(got, tt.shape) {
				t.Errorf("shape: got %v; want %v", got, tt.shape)
			}
			if got := m.Data().([]float32); !equalFloats(got, tt.want) {
				t.Errorf("data: got %v; want %v", got, tt.want)
			}
		})
	}
}

func TestMatrixErrors(t *testing.T) {
	tests := []struct {
		name   string
		fields []arrow.Field
		rows   string
		cols   []string
		opts   []Option
		want   string
	}{
		{"null row", []arrow.Field{{Name: "features", Type: f64List}},
			`[{"features":[1,2]},{"features":[3,4]},{"features":null}]`, []string{"features"}, nil,
			`arrowio: column "features" row 2: null`},
		{"null row with offset", []arrow.Field{{Name: "features", Type: f64List}},
			`[{"features":[1,2]},{"features":null}]`, []string{"features"}, []Option{WithRowOffset(1000)},
			`arrowio: column "features" row 1001: null`},
		{"null element", []arrow.Field{{Name: "features", Type: f64List}},
			`[{"features":[1,2]},{"features":[3,null]}]`, []string{"features"}, nil,
			`arrowio: column "features" row 1: element 1 is null`},
		{"null first row", []arrow.Field{{Name: "features", Type: f64List}},
			`[{"features":null}]`, []string{"features"}, nil,
			`arrowio: column "features" row 0: null`},
		{"null scalar", []arrow.Field{{Name: "label", Type: arrow.PrimitiveTypes.Float64}},
			`[{"label":1},{"label":null}]`, []string{"label"}, nil,
			`arrowio: column "label" row 1: null`},
		{"ragged row", []arrow.Field{{Name: "features", Type: f64List}},
			`[{"features":[1,2,3]},{"features":[3,4,5]},{"features":[1,2]}]`, []string{"features"}, []Option{WithRowOffset(10)},
			`arrowio: column "features" row 12: width 2, want 3 (the first row's)`},
		{"empty vector", []arrow.Field{{Name: "features", Type: f64List}},
			`[{"features":[]}]`, []string{"features"}, nil,
			`arrowio: column "features" row 0: empty vector (width 0)`},
		{"wrong type", []arrow.Field{{Name: "features", Type: arrow.BinaryTypes.String}},
			`[{"features":"a"}]`, []string{"features"}, nil,
			`arrowio: column "features": type utf8 is not supported (want a number or a list of numbers)`},
		{"list of strings", []arrow.Field{{Name: "features", Type: arrow.ListOf(arrow.BinaryTypes.String)}},
			`[{"features":["a"]}]`, []string{"features"}, nil,
			`arrowio: column "features": type list<item: utf8, nullable> is not supported (want a list of numbers)`},
		{"missing column", []arrow.Field{{Name: "x", Type: f64List}, {Name: "y", Type: f64List}},
			`[{"x":[1],"y":[2]}]`, []string{"features"}, nil,
			`arrowio: no column "features" in the schema (columns: "x", "y")`},
		{"no columns", []arrow.Field{{Name: "x", Type: f64List}},
			`[{"x":[1]}]`, nil, nil, `arrowio: no columns to convert`},
		{"overflow", []arrow.Field{{Name: "f", Type: f64List}},
			`[{"f":[1,1e300]}]`, []string{"f"}, nil,
			`arrowio: column "f" row 0 element 1: value 1e+300 overflows float32`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			rec := record(t, mem, tt.fields, tt.rows)
			defer rec.Release()
			_, err := Matrix(rec, tt.cols, tt.opts...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Matrix error: got %v; want %s", err, tt.want)
			}
		})
	}
}

func TestNaN(t *testing.T) {
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		for _, typ := range []arrow.DataType{arrow.PrimitiveTypes.Float64, arrow.PrimitiveTypes.Float32} {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			schema := arrow.NewSchema([]arrow.Field{{Name: "f", Type: arrow.ListOf(typ)}, {Name: "s", Type: typ}}, nil)
			b := array.NewRecordBuilder(mem, schema)
			lb := b.Field(0).(*array.ListBuilder)
			for r := 0; r < 3; r++ {
				lb.Append(true)
				for j := 0; j < 4; j++ {
					v := float64(r*4 + j)
					if r == 2 && j == 3 {
						v = bad
					}
					appendFloat(lb.ValueBuilder(), v)
				}
				appendFloat(b.Field(1), v1(r == 1, bad))
			}
			rec := b.NewRecordBatch()
			b.Release()

			_, err := Matrix(rec, []string{"f"}, WithRowOffset(5))
			want := "arrowio: column \"f\" row 7 element 3: value " + ftoa(bad) + " not allowed (WithAllowNaN is false)"
			if err == nil || err.Error() != want {
				t.Errorf("%s %v: got %v; want %s", typ, bad, err, want)
			}
			_, err = Matrix(rec, []string{"s"})
			want = "arrowio: column \"s\" row 1 element 0: value " + ftoa(bad) + " not allowed (WithAllowNaN is false)"
			if err == nil || err.Error() != want {
				t.Errorf("%s scalar %v: got %v; want %s", typ, bad, err, want)
			}
			m, err := Matrix(rec, []string{"f", "s"}, WithAllowNaN(true))
			if err != nil {
				t.Fatalf("WithAllowNaN(true): %v", err)
			}
			if got := m.Data().([]float32)[2*5+3]; !sameFloat(float64(got), bad) {
				t.Errorf("WithAllowNaN(true) value: got %v; want %v", got, bad)
			}
			rec.Release()
			mem.AssertSize(t, 0)
		}
	}
}

func v1(bad bool, v float64) float64 {
	if bad {
		return v
	}
	return 1
}

func ftoa(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	}
	return "-Inf"
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func appendFloat(b array.Builder, v float64) {
	switch b := b.(type) {
	case *array.Float64Builder:
		b.Append(v)
	case *array.Float32Builder:
		b.Append(float32(v))
	}
}

func TestConverterStream(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	fields := []arrow.Field{{Name: "features", Type: f64List}}
	r1 := record(t, mem, fields, `[{"features":[1,2]},{"features":[3,4]}]`)
	defer r1.Release()
	r0 := record(t, mem, fields, `[]`)
	defer r0.Release()
	r2 := record(t, mem, fields, `[{"features":[5,6]},{"features":[7,8,9]}]`)
	defer r2.Release()

	c := NewConverter([]string{"features"})
	if got := c.Width(); got != -1 {
		t.Errorf("Width before a row: got %d; want -1", got)
	}
	buf := make([]float32, 0, 16)
	buf, err := c.Append(buf, r1)
	if err != nil {
		t.Fatal(err)
	}
	if buf, err = c.Append(buf, r0); err != nil {
		t.Fatal(err)
	}
	_, err = c.Append(buf, r2)
	want := `arrowio: column "features" row 3: width 3, want 2 (the first row's)`
	if err == nil || err.Error() != want {
		t.Errorf("second batch: got %v; want %s", err, want)
	}
	if got, want := buf, []float32{1, 2, 3, 4}; !equalFloats(got, want) {
		t.Errorf("buffer: got %v; want %v", got, want)
	}
	if got := c.Rows(); got != 2 {
		t.Errorf("Rows: got %d; want 2", got)
	}

	// A batch of another width than an earlier batch is ragged too.
	r3 := record(t, mem, fields, `[{"features":[1,2,3]}]`)
	defer r3.Release()
	_, err = c.Append(nil, r3)
	want = `arrowio: column "features" row 2: width 3, want 2 (the first row's)`
	if err == nil || err.Error() != want {
		t.Errorf("third batch: got %v; want %s", err, want)
	}
}

func TestConverterCheckWidths(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "v", Type: f64List},
		{Name: "fixed", Type: arrow.FixedSizeListOf(3, arrow.PrimitiveTypes.Float32)},
		{Name: "s", Type: arrow.PrimitiveTypes.Int8},
	}, nil)
	c := NewConverter([]string{"v", "fixed", "s"})
	if err := c.Check(schema); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Widths(), []int{-1, 3, 1}; !slices.Equal(got, want) {
		t.Errorf("Widths: got %v; want %v", got, want)
	}
}

func TestMatrixNoRows(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := record(t, mem, []arrow.Field{{Name: "f", Type: f64List}}, `[]`)
	defer rec.Release()
	if _, err := Matrix(rec, []string{"f"}); err != ErrNoRows {
		t.Errorf("got %v; want ErrNoRows", err)
	}
}

func TestMatrixSliced(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := record(t, mem, []arrow.Field{{Name: "f", Type: f64List}, {Name: "s", Type: arrow.PrimitiveTypes.Float64}},
		`[{"f":[1,2],"s":1},{"f":[3,4],"s":2},{"f":[5,6],"s":3},{"f":null,"s":4}]`)
	defer rec.Release()
	sl := rec.NewSlice(1, 3)
	defer sl.Release()
	m, err := Matrix(sl, []string{"f", "s"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Data().([]float32), []float32{3, 4, 2, 5, 6, 3}; !equalFloats(got, want) {
		t.Errorf("got %v; want %v", got, want)
	}
}

func TestFromMatrix(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	data := []float32{1, 2.5, -3, 4, 5, float32(math.Pi)}
	arr, err := FromMatrix(mem, data, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Release()
	if got, want := arr.DataType().String(), f64List.String(); got != want {
		t.Errorf("type: got %s; want %s", got, want)
	}
	if got := arr.Len(); got != 2 {
		t.Errorf("rows: got %d; want 2", got)
	}
	rec := array.NewRecordBatch(arrow.NewSchema([]arrow.Field{{Name: "p", Type: arr.DataType()}}, nil), []arrow.Array{arr}, 2)
	defer rec.Release()
	m, err := Matrix(rec, []string{"p"})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Data().([]float32); !equalFloats(got, data) {
		t.Errorf("round trip: got %v; want %v", got, data)
	}
	back, err := FromDense(mem, m)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Release()
	if !array.Equal(back, arr) {
		t.Errorf("FromDense: got %v; want %v", back, arr)
	}

	for _, tc := range []struct {
		data  []float32
		width int
		want  string
	}{
		{data, 0, "arrowio: FromMatrix: width 0, want > 0"},
		{data, 4, "arrowio: FromMatrix: 6 values are not whole rows of width 4"},
	} {
		if _, err := FromMatrix(mem, tc.data, tc.width); err == nil || err.Error() != tc.want {
			t.Errorf("FromMatrix(width %d): got %v; want %s", tc.width, err, tc.want)
		}
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}
