package pipe

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gorgonia.org/tensor"

	"github.com/gophas/gophas/arrowio"
	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/modeltest"
	"github.com/gophas/gophas/protocol"
)

// featureRows converts the feature columns of recs, in order, into one
// row-major matrix.
func featureRows(t *testing.T, recs []arrow.RecordBatch, cols ...string) []float32 {
	t.Helper()
	conv := arrowio.NewConverter(cols)
	var x []float32
	for _, r := range recs {
		var err error
		if x, err = conv.Append(x, r); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// predictionValues returns the values of a prediction column row by row,
// checking its type and that each row holds width values.
func predictionValues(t *testing.T, col arrow.Array, width int) []float64 {
	t.Helper()
	switch c := col.(type) {
	case *array.Float64:
		if width != 1 {
			t.Fatalf("prediction type: got float64; want list<float64> of %d", width)
		}
		return c.Float64Values()
	case *array.List:
		if width == 1 {
			t.Fatalf("prediction type: got %s; want float64", c.DataType())
		}
		vals := c.ListValues().(*array.Float64).Float64Values()
		var out []float64
		for r := 0; r < c.Len(); r++ {
			s, e := c.ValueOffsets(r)
			if int(e-s) != width {
				t.Fatalf("prediction row %d: got %d values; want %d", r, e-s, width)
			}
			out = append(out, vals[s:e]...)
		}
		return out
	}
	t.Fatalf("prediction type: got %s; want float64 or list<float64>", col.DataType())
	return nil
}

// samePredictions checks got against m.Predict on the rows x bit for bit
// (float32 widened to float64).
func samePredictions(t *testing.T, m *gokernel.Model, x []float32, got []float64) {
	t.Helper()
	in, out := m.Spec().InputDim(), m.Spec().OutputDim()
	rows := len(x) / in
	yt, err := m.Predict(tensor.New(tensor.WithShape(rows, in), tensor.WithBacking(x)))
	if err != nil {
		t.Fatal(err)
	}
	want := yt.Data().([]float32)
	if len(got) != len(want) {
		t.Fatalf("predictions: got %d values; want %d", len(got), len(want))
	}
	for i, w := range want {
		if math.Float64bits(got[i]) != math.Float64bits(float64(w)) {
			t.Fatalf("prediction row %d output %d: got %v; want %v", i/out, i%out, got[i], w)
		}
	}
}

func TestPredict(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, m := modeltest.Save(t, fixture.ClassifierSpec, "")
	in := []arrow.RecordBatch{
		vectorRecord(mem, 50, 4, 1),
		vectorRecord(mem, 0, 4, 2),
		vectorRecord(mem, 7, 4, 3),
		vectorRecord(mem, 120, 4, 4),
	}
	defer release(in)
	x := featureRows(t, in, "features")
	want := arrow.NewSchema(append(vectorSchema.Fields(),
		arrow.Field{Name: "p", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)}), nil)

	tests := []struct {
		name      string
		batchRows int
		sizes     []int64
	}{
		{"batches kept", 0, []int64{50, 7, 120}},
		{"batches split", 30, []int64{30, 20, 7, 30, 30, 30, 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := protocol.Header{Mode: protocol.ModePredict, Model: dir, PredictionCol: "p", BatchRows: tt.batchRows, Threads: 1, Partition: 2}
			stdout, stderr, err := work(t, taskBytes(t, h, vectorSchema, in...))
			if err != nil {
				t.Fatalf("Work: %v (stderr %s)", err, stderr)
			}
			schema, out := readStream(t, mem, stdout)
			defer release(out)
			if !schema.Equal(want) {
				t.Fatalf("schema: got %v; want %v", schema, want)
			}
			var sizes []int64
			var got []float64
			for _, r := range out {
				sizes = append(sizes, r.NumRows())
				got = append(got, predictionValues(t, r.Column(2), 3)...)
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tt.sizes) {
				t.Fatalf("batch sizes: got %v; want %v", sizes, tt.sizes)
			}
			samePredictions(t, m, x, got)
			// The input columns come back untouched, in order.
			gotIn := concat(t, mem, out)
			defer gotIn.Release()
			wantIn := concat(t, mem, in)
			defer wantIn.Release()
			sameVectorRecords(t, gotIn, wantIn)
		})
	}
}

func TestPredictSingleOutput(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, m := modeltest.Save(t, fixture.RegressionSpec, "")
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "ab", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
	}, nil)
	in := []arrow.RecordBatch{
		jsonRecord(t, mem, schema, `[{"id": "r0", "ab": [1, 3]}, {"id": "r1", "ab": [-1, -7]}]`),
		jsonRecord(t, mem, schema, `[{"id": "r2", "ab": [1000, 0]}]`),
	}
	defer release(in)
	h := protocol.Header{Mode: protocol.ModePredict, Model: dir, FeaturesCols: []string{"ab"}}
	stdout, stderr, err := work(t, taskBytes(t, h, schema, in...))
	if err != nil {
		t.Fatalf("Work: %v (stderr %s)", err, stderr)
	}
	got, out := readStream(t, mem, stdout)
	defer release(out)
	want := arrow.NewSchema(append(schema.Fields(), arrow.Field{Name: protocol.DefaultPredictionCol, Type: arrow.PrimitiveTypes.Float64}), nil)
	if !got.Equal(want) || len(out) != 2 {
		t.Fatalf("got schema %v, %d batches; want %v, 2", got, len(out), want)
	}
	var pred []float64
	var ids []string
	for _, r := range out {
		pred = append(pred, predictionValues(t, r.Column(2), 1)...)
		for i := 0; i < int(r.NumRows()); i++ {
			ids = append(ids, r.Column(0).(*array.String).Value(i))
		}
	}
	samePredictions(t, m, featureRows(t, in, "ab"), pred)
	if g := strings.Join(ids, ","); g != "r0,r1,r2" {
		t.Errorf("ids: got %s; want r0,r1,r2", g)
	}
}

func TestPredictEmpty(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, _ := modeltest.Save(t, fixture.ClassifierSpec, "")
	empty := vectorRecord(mem, 0, 4, 1)
	defer empty.Release()
	want := arrow.NewSchema(append(vectorSchema.Fields(),
		arrow.Field{Name: "prediction", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)}), nil)
	for _, recs := range [][]arrow.RecordBatch{nil, {empty}} {
		stdout, stderr, err := work(t, taskBytes(t, protocol.Header{Mode: protocol.ModePredict, Model: dir}, vectorSchema, recs...))
		if err != nil {
			t.Fatalf("Work: %v (stderr %s)", err, stderr)
		}
		schema, out := readStream(t, mem, stdout)
		release(out)
		if !schema.Equal(want) || len(out) != 0 {
			t.Fatalf("%d batches in: got schema %v, %d batches; want %v, 0", len(recs), schema, len(out), want)
		}
	}
}

func TestPredictErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, _ := modeltest.Save(t, fixture.ClassifierSpec, "")
	wide := vectorRecord(mem, 5, 6, 1)
	defer wide.Release()
	good := vectorRecord(mem, 5, 4, 1)
	defer good.Release()
	scalars := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Float64},
		{Name: "b", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	ab := jsonRecord(t, mem, scalars, `[{"a": 1, "b": 2}]`)
	defer ab.Release()

	tests := []struct {
		name string
		task []byte
		want string
	}{
		{"width mismatch", taskBytes(t, protocol.Header{Mode: protocol.ModePredict, Model: dir, Partition: 4}, vectorSchema, good, wide),
			`pipe: partition 4, predict: arrowio: column "features" row 5: width 6, want 4 (the first row's)`},
		{"model width mismatch", taskBytes(t, protocol.Header{Mode: protocol.ModePredict, Model: dir, Partition: 4}, vectorSchema, wide),
			`pipe: partition 4, predict: the features (column "features") have 6 values per row, the model takes 4: input shape (4,)`},
		{"scalar width mismatch", taskBytes(t, protocol.Header{Mode: protocol.ModePredict, Model: dir, FeaturesCol: "a"}, scalars, ab),
			`pipe: partition 0, predict: the features (column "a") have 1 values per row, the model takes 4: input shape (4,)`},
		{"a column per input", taskBytes(t, protocol.Header{Mode: protocol.ModePredict, Model: dir, FeaturesCols: []string{"a", "b"}}, scalars, ab),
			`pipe: partition 0, predict: model "` + dir + `" has 1 inputs (input_layer (4,)); the task names 2 feature columns ("a", "b"): give one per input`},
		{"a prediction column per output", taskBytes(t, protocol.Header{Mode: protocol.ModePredict, Model: dir, PredictionCols: []string{"p", "q"}}, vectorSchema, good),
			`pipe: partition 0, predict: model "` + dir + `" has 1 outputs (dense_1 (3,)); the task names 2 prediction columns ("p", "q")`},
		{"no model field", taskBytes(t, map[string]any{"mode": "predict"}, vectorSchema, good),
			`protocol: header: field "model" is required for mode predict`},
		{"no model dir", taskBytes(t, protocol.Header{Mode: protocol.ModePredict, Model: dir + ".nope"}, vectorSchema, good),
			`pipe: partition 0, predict: loading model "` + dir + `.nope": gokernel: LoadModel: `},
		{"prediction column taken", taskBytes(t, protocol.Header{Mode: protocol.ModePredict, Model: dir, PredictionCol: "label"}, vectorSchema, good),
			`pipe: partition 0, predict: the input already has a column "label"`},
		{"missing features", taskBytes(t, protocol.Header{Mode: protocol.ModePredict, Model: dir, FeaturesCol: "pixels"}, vectorSchema, good),
			`pipe: partition 0, predict: arrowio: no column "pixels" in the schema`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := work(t, tt.task)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got error %v; want one starting with %q", err, tt.want)
			}
			if tt.name != "width mismatch" && stdout.Len() != 0 {
				t.Errorf("got %d bytes on stdout; want none before the error", stdout.Len())
			}
		})
	}
}
