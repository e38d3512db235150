package pipe

import (
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gorgonia.org/tensor"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/modeltest"
	"github.com/gophas/gophas/protocol"
)

// labeledRecord makes rows rows of fixture.Blobs (4 features, 3 classes):
// the label a class index as float64 (scalar), or a one-hot list<float64>
// (vector). bad, when >= 0, replaces row bad's class by 12.
func labeledRecord(mem memory.Allocator, rows int, vector bool, seed uint64, bad int) arrow.RecordBatch {
	lt := arrow.DataType(arrow.PrimitiveTypes.Float64)
	if vector {
		lt = arrow.ListOf(arrow.PrimitiveTypes.Float64)
	}
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "features", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
		{Name: "label", Type: lt},
	}, nil)
	x, labels := fixture.Blobs(rows, 4, 3, seed)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	fb := b.Field(0).(*array.ListBuilder)
	fv := fb.ValueBuilder().(*array.Float64Builder)
	for r := 0; r < rows; r++ {
		c := int(labels[r])
		fb.Append(true)
		for j := 0; j < 4; j++ {
			fv.Append(float64(x[r*4+j]))
		}
		if r == bad {
			c = 12
		}
		if vector {
			lb := b.Field(1).(*array.ListBuilder)
			lb.Append(true)
			for k := 0; k < 3; k++ {
				lb.ValueBuilder().(*array.Float64Builder).Append(float64(min(1, max(0, 1-math.Abs(float64(k-c))))))
			}
			continue
		}
		b.Field(1).(*array.Float64Builder).Append(float64(c))
	}
	return b.NewRecordBatch()
}

// evalRows reads an evaluate output stream into key → (sum, count).
func evalRows(t *testing.T, mem memory.Allocator, task []byte) (keys []string, sums map[string]float64, counts map[string]int64) {
	t.Helper()
	stdout, stderr, err := work(t, task)
	if err != nil {
		t.Fatalf("Work: %v (stderr %s)", err, stderr)
	}
	schema, out := readStream(t, mem, stdout)
	defer release(out)
	if !schema.Equal(protocol.EvaluateSchema) || len(out) != 1 {
		t.Fatalf("got schema %v, %d batches; want %v, 1", schema, len(out), protocol.EvaluateSchema)
	}
	sums, counts = map[string]float64{}, map[string]int64{}
	r := out[0]
	for i := 0; i < int(r.NumRows()); i++ {
		k := r.Column(0).(*array.String).Value(i)
		keys = append(keys, k)
		sums[k] = r.Column(1).(*array.Float64).Value(i)
		counts[k] = r.Column(2).(*array.Int64).Value(i)
	}
	return keys, sums, counts
}

func TestEvaluate(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tests := []struct {
		name    string
		loss    string
		metrics []string
		vector  bool // one-hot list labels
		targets func(y []float32) (*tensor.Dense, int)
	}{
		{"sparse", "sparse_categorical_crossentropy", []string{"accuracy"}, false, classes},
		{"one-hot from class", "categorical_crossentropy", []string{"accuracy", "mse"}, false, oneHotClasses},
		{"one-hot vector", "categorical_crossentropy", []string{"categorical_accuracy"}, true, vectors},
		{"regression", "mean_squared_error", []string{"mae"}, true, vectors},
		// Metrics with a state (AUC's histogram, Precision's counts) travel as
		// their state keys, which add up over partitions exactly.
		{"stateful", "categorical_crossentropy", []string{"accuracy", "auc", "precision", "top_k_categorical_accuracy"}, false, oneHotClasses},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, m := modeltest.Save(t, fixture.ClassifierSpec, tt.loss, tt.metrics...)
			parts := [][]arrow.RecordBatch{
				{labeledRecord(mem, 25, tt.vector, 1, -1), labeledRecord(mem, 0, tt.vector, 2, -1), labeledRecord(mem, 35, tt.vector, 3, -1)},
				{labeledRecord(mem, 40, tt.vector, 4, -1)},
			}
			var all []arrow.RecordBatch
			for _, p := range parts {
				defer release(p)
				all = append(all, p...)
			}
			total := map[string]float64{}
			count := map[string]int64{}
			var order []string
			for i, p := range parts {
				h := protocol.Header{Mode: protocol.ModeEvaluate, Model: dir, Partition: i}
				keys, sums, counts := evalRows(t, mem, taskBytes(t, h, p[0].Schema(), p...))
				order = keys
				for k, v := range sums {
					total[k] += v
					count[k] += counts[k]
				}
				if want := []int64{60, 40}[i]; counts["loss"] != want {
					t.Errorf("partition %d loss count: got %d; want %d", i, counts["loss"], want)
				}
			}
			if want := strings.Join(m.SumKeys(), ","); strings.Join(order, ",") != want {
				t.Errorf("keys: got %v; want %s", order, want)
			}
			x := featureRows(t, all, "features")
			y, _ := tt.targets(featureRows(t, all, "label"))
			want, err := m.Evaluate(tensor.New(tensor.WithShape(100, 4), tensor.WithBacking(x)), y)
			if err != nil {
				t.Fatal(err)
			}
			results := m.Result(gokernel.Sums{Count: int(count["loss"]), Sums: total})
			if len(results) != len(want) {
				t.Fatalf("keys: got %v; want those of %v", order, want)
			}
			for k, w := range want {
				if got := results[k]; math.Abs(got-w) > 1e-6*math.Abs(w) {
					t.Errorf("%s: got %v; want %v", k, got, w)
				}
			}
			for k, n := range count {
				if n != 100 {
					t.Errorf("%s: %d rows; want 100", k, n)
				}
			}
		})
	}
}

func classes(y []float32) (*tensor.Dense, int) {
	return tensor.New(tensor.WithShape(len(y), 1), tensor.WithBacking(y)), 1
}

func oneHotClasses(y []float32) (*tensor.Dense, int) {
	oh := make([]float32, 3*len(y))
	for i, c := range y {
		oh[i*3+int(c)] = 1
	}
	return tensor.New(tensor.WithShape(len(y), 3), tensor.WithBacking(oh)), 3
}

func vectors(y []float32) (*tensor.Dense, int) {
	return tensor.New(tensor.WithShape(len(y)/3, 3), tensor.WithBacking(y)), 3
}

func TestEvaluateEmpty(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, _ := modeltest.Save(t, fixture.ClassifierSpec, "")
	empty := labeledRecord(mem, 0, false, 1, -1)
	defer empty.Release()
	for _, recs := range [][]arrow.RecordBatch{nil, {empty}} {
		keys, _, _ := evalRows(t, mem, taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: dir}, empty.Schema(), recs...))
		if len(keys) != 0 {
			t.Errorf("%d empty batches: got keys %v; want no rows", len(recs), keys)
		}
	}
}

func TestEvaluateErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	cce, _ := modeltest.Save(t, fixture.ClassifierSpec, "")
	sparse, _ := modeltest.Save(t, fixture.ClassifierSpec, "sparse_categorical_crossentropy", "accuracy")
	good := labeledRecord(mem, 10, false, 1, -1)
	defer good.Release()
	bad := labeledRecord(mem, 10, false, 2, 3)
	defer bad.Release()
	vec := labeledRecord(mem, 10, true, 1, -1)
	defer vec.Release()
	wide := vectorRecord(mem, 4, 4, 1)
	defer wide.Release()
	wideLabel := arrow.NewSchema([]arrow.Field{
		{Name: "features", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
		{Name: "label", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
	}, nil)
	wl := jsonRecord(t, mem, wideLabel, `[{"features": [1, 2, 3, 4], "label": [0, 1, 0, 0]}]`)
	defer wl.Release()
	nolabel := jsonRecord(t, mem, vectorSchema, `[{"features": [1, 2, 3, 4], "label": 0.5}]`)
	defer nolabel.Release()

	tests := []struct {
		name string
		task []byte
		want string
	}{
		{"sparse class out of range", taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: sparse, Partition: 5}, good.Schema(), good, bad),
			`pipe: partition 5, evaluate: label column "label" row 13: value 12 is not a class index in [0, 3) for sparse_categorical_crossentropy with 3 outputs`},
		{"one-hot class out of range", taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: cce}, good.Schema(), bad),
			`pipe: partition 0, evaluate: label column "label" row 3: value 12 is not a class index in [0, 3) for categorical_crossentropy with 3 outputs`},
		{"fractional class", taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: sparse}, vectorSchema, nolabel),
			`pipe: partition 0, evaluate: label column "label" row 0: value 0.5 is not a class index`},
		{"one-hot width mismatch", taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: cce}, wideLabel, wl),
			`pipe: partition 0, evaluate: label column "label": the label has 4 values per row but categorical_crossentropy on 3 outputs wants 3 values or one class index`},
		{"sparse with vector label", taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: sparse}, vec.Schema(), vec),
			`pipe: partition 0, evaluate: label column "label": the label has 3 values per row but sparse_categorical_crossentropy wants one class index`},
		{"features width", taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: cce, FeaturesCols: []string{"label"}, LabelCol: "features"}, vectorSchema, wide),
			`pipe: partition 0, evaluate: the features (column "label") have 1 values per row, the model takes 4: input shape (4,)`},
		{"no label column", taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: cce, LabelCol: "y"}, good.Schema(), good),
			`pipe: partition 0, evaluate: arrowio: no column "y" in the schema`},
		{"no model field", taskBytes(t, map[string]any{"mode": "evaluate"}, good.Schema(), good),
			`protocol: header: field "model" is required for mode evaluate`},
		{"no model dir", taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: cce + "x"}, good.Schema(), good),
			`pipe: partition 0, evaluate: loading model "` + cce + `x": gokernel: LoadModel: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := work(t, tt.task)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got error %v; want one starting with %q", err, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("got %d bytes on stdout; want none", stdout.Len())
			}
		})
	}
}
