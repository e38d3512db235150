package pipe

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/modeltest"
	"github.com/gophas/gophas/protocol"
)

// headsSchema feeds fixture.TwoHeadsSpec: the features x (4 floats), the
// class head's label as an integer column, the value head's as a double.
var headsSchema = arrow.NewSchema([]arrow.Field{
	{Name: "x", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32)},
	{Name: "cls", Type: arrow.PrimitiveTypes.Int32},
	{Name: "val", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// headsRecords makes rows rows of fixture.Blobs (3 classes in 4
// dimensions), the class and x0 - x1 as the value, in records of per rows;
// it returns them and the same rows as a kernel batch.
func headsRecords(mem memory.Allocator, rows, per int, seed uint64) ([]arrow.RecordBatch, *gokernel.Batch) {
	x, labels := fixture.Blobs(rows, 4, 3, seed)
	val := make([]float32, rows)
	var recs []arrow.RecordBatch
	for from := 0; from < rows; from += per {
		b := array.NewRecordBuilder(mem, headsSchema)
		lb := b.Field(0).(*array.ListBuilder)
		vb := lb.ValueBuilder().(*array.Float32Builder)
		for r := from; r < min(rows, from+per); r++ {
			lb.Append(true)
			vb.AppendValues(x[r*4:(r+1)*4], nil)
			b.Field(1).(*array.Int32Builder).Append(int32(labels[r]))
			val[r] = x[r*4] - x[r*4+1]
			b.Field(2).(*array.Float64Builder).Append(float64(val[r]))
		}
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	return recs, &gokernel.Batch{Rows: rows, X: [][]float32{x}, XWidths: []int{4}, Y: [][]float32{labels, val}, YWidths: []int{1, 1}}
}

// towerSchema feeds fixture.TwoTowerSpec: user and item ids (the item's
// as a one-id list, as a token column arrives), the rating a double.
var towerSchema = arrow.NewSchema([]arrow.Field{
	{Name: "user", Type: arrow.PrimitiveTypes.Int64},
	{Name: "item", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
	{Name: "rating", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// towerRecords makes rows ratings of a known structure: user u and item v
// have hidden factors U[u], V[v] (3 each) and rate U[u]·V[v]. It returns
// the records (of per rows) and the same rows as a kernel batch.
func towerRecords(mem memory.Allocator, rows, per int, seed uint64) ([]arrow.RecordBatch, *gokernel.Batch) {
	rng := rand.New(rand.NewPCG(seed, 2))
	factors := func(n int) []float64 {
		f := make([]float64, n*3)
		for i := range f {
			f[i] = rng.NormFloat64()
		}
		return f
	}
	U, V := factors(7), factors(5)
	users, items, ratings := make([]float32, rows), make([]float32, rows), make([]float32, rows)
	var recs []arrow.RecordBatch
	for from := 0; from < rows; from += per {
		b := array.NewRecordBuilder(mem, towerSchema)
		lb := b.Field(1).(*array.ListBuilder)
		for r := from; r < min(rows, from+per); r++ {
			u, v := rng.IntN(7), rng.IntN(5)
			dot := U[u*3]*V[v*3] + U[u*3+1]*V[v*3+1] + U[u*3+2]*V[v*3+2]
			users[r], items[r], ratings[r] = float32(u), float32(v), float32(dot)
			b.Field(0).(*array.Int64Builder).Append(int64(u))
			lb.Append(true)
			lb.ValueBuilder().(*array.Int32Builder).Append(int32(v))
			b.Field(2).(*array.Float64Builder).Append(float64(ratings[r]))
		}
		recs = append(recs, b.NewRecordBatch())
		b.Release()
	}
	return recs, &gokernel.Batch{Rows: rows, X: [][]float32{users, items}, XWidths: []int{1, 1}, Y: [][]float32{ratings}, YWidths: []int{1}}
}

// TestEvaluateSeveralInputsAndOutputs: one feature column per model input
// and one label column per output (an integer class column, a double
// value column, an int64 id column, an id list column) give the sums the
// kernel computes on the same rows, under Keras' keys.
func TestEvaluateSeveralInputsAndOutputs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	heads, hb := headsRecords(mem, 70, 25, 1)
	defer release(heads)
	tower, tb := towerRecords(mem, 60, 25, 2)
	defer release(tower)
	for _, tt := range []struct {
		name   string
		spec   string
		h      protocol.Header
		schema *arrow.Schema
		recs   []arrow.RecordBatch
		b      *gokernel.Batch
		keys   []string
	}{
		{"two outputs", fixture.TwoHeadsSpec, protocol.Header{FeaturesCol: "x", LabelCols: []string{"cls", "val"}}, headsSchema, heads, hb,
			[]string{"loss", "class_loss", "value_loss", "class_accuracy", "value_mae"}},
		{"two inputs", fixture.TwoTowerSpec, protocol.Header{FeaturesCols: []string{"user", "item"}, LabelCol: "rating"}, towerSchema, tower, tb,
			[]string{"loss", "mae"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, m := modeltest.Save(t, tt.spec, "")
			var want gokernel.Sums
			if err := m.EvaluateBatch(tt.b, &want); err != nil {
				t.Fatal(err)
			}
			h := tt.h
			h.Mode, h.Model, h.Partition = protocol.ModeEvaluate, dir, 2
			keys, sums, counts := evalRows(t, mem, taskBytes(t, h, tt.schema, tt.recs...))
			if !slices.Equal(keys, tt.keys) {
				t.Fatalf("keys %v; want %v", keys, tt.keys)
			}
			for _, k := range keys {
				if counts[k] != int64(tt.b.Rows) || !close64(sums[k], want.Sums[k], 1e-9) {
					t.Errorf("%s: sum %v over %d rows; the kernel says %v over %d", k, sums[k], counts[k], want.Sums[k], tt.b.Rows)
				}
			}
		})
	}
}

func close64(a, b, rel float64) bool {
	return math.Abs(a-b) <= rel*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// TestPredictSeveralInputsAndOutputs: predict appends one column per model
// output (a list for the three class probabilities, a double for the
// value), named by predictionCols, each the kernel's PredictBatch bit for
// bit; a model of several inputs reads one column each.
func TestPredictSeveralInputsAndOutputs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	heads, hb := headsRecords(mem, 70, 25, 3)
	defer release(heads)
	tower, tb := towerRecords(mem, 30, 30, 4)
	defer release(tower)
	for _, tt := range []struct {
		name   string
		spec   string
		h      protocol.Header
		schema *arrow.Schema
		recs   []arrow.RecordBatch
		b      *gokernel.Batch
		types  []arrow.DataType
	}{
		{"two outputs", fixture.TwoHeadsSpec, protocol.Header{FeaturesCol: "x", PredictionCols: []string{"class_prediction", "value_prediction"}, BatchRows: 20},
			headsSchema, heads, hb, []arrow.DataType{arrow.ListOf(arrow.PrimitiveTypes.Float64), arrow.PrimitiveTypes.Float64}},
		{"two inputs", fixture.TwoTowerSpec, protocol.Header{FeaturesCols: []string{"user", "item"}},
			towerSchema, tower, tb, []arrow.DataType{arrow.PrimitiveTypes.Float64}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, m := modeltest.Save(t, tt.spec, "")
			want, err := m.PredictBatch(tt.b, nil)
			if err != nil {
				t.Fatal(err)
			}
			h := tt.h
			h.Mode, h.Model = protocol.ModePredict, dir
			stdout, stderr, err := work(t, taskBytes(t, h, tt.schema, tt.recs...))
			if err != nil {
				t.Fatalf("Work: %v (stderr %s)", err, stderr)
			}
			schema, out := readStream(t, mem, stdout)
			defer release(out)
			names := h.PredictionCols
			if names == nil {
				names = []string{protocol.DefaultPredictionCol}
			}
			fields := tt.schema.Fields()
			for j, typ := range tt.types {
				fields = append(fields, arrow.Field{Name: names[j], Type: typ})
			}
			if ws := arrow.NewSchema(fields, nil); !schema.Equal(ws) {
				t.Fatalf("schema %v; want %v", schema, ws)
			}
			n := tt.schema.NumFields()
			for j := range tt.types {
				width := len(want[j]) / tt.b.Rows
				var got []float64
				for _, r := range out {
					got = append(got, predictionValues(t, r.Column(n+j), width)...)
				}
				if len(got) != len(want[j]) {
					t.Fatalf("output %d: %d values; want %d", j, len(got), len(want[j]))
				}
				for i, w := range want[j] {
					if math.Float64bits(got[i]) != math.Float64bits(float64(w)) {
						t.Fatalf("output %d row %d value %d: got %v; want %v", j, i/width, i%width, got[i], w)
					}
				}
			}
			for i := range n {
				gotCol, err := array.Concatenate(columnsOf(out, i), mem)
				if err != nil {
					t.Fatal(err)
				}
				wantCol, err := array.Concatenate(columnsOf(tt.recs, i), mem)
				if err != nil {
					t.Fatal(err)
				}
				if !array.Equal(gotCol, wantCol) {
					t.Errorf("input column %d changed", i)
				}
				gotCol.Release()
				wantCol.Release()
			}
		})
	}
}

func columnsOf(recs []arrow.RecordBatch, i int) []arrow.Array {
	out := make([]arrow.Array, len(recs))
	for k, r := range recs {
		out[k] = r.Column(i)
	}
	return out
}

// TestTrainSeveralInputsAndOutputs: one worker's epoch through the pipe
// and the parameter server leaves the weights Model.FitRows gives on the
// same rows with the same seed, for a model of two inputs (id columns
// into two Embeddings) and one of two outputs (per-output losses with
// loss weights and metrics under Keras' keys).
func TestTrainSeveralInputsAndOutputs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	heads, hb := headsRecords(mem, 90, 40, 5)
	defer release(heads)
	tower, tb := towerRecords(mem, 80, 30, 6)
	defer release(tower)
	for _, tt := range []struct {
		name   string
		spec   string
		h      protocol.Header
		schema *arrow.Schema
		recs   []arrow.RecordBatch
		b      *gokernel.Batch
		keys   []string
	}{
		{"two outputs", fixture.TwoHeadsSpec, protocol.Header{FeaturesCol: "x", LabelCols: []string{"cls", "val"}}, headsSchema, heads, hb,
			[]string{"loss", "class_loss", "value_loss", "class_accuracy", "value_mae"}},
		{"two inputs", fixture.TwoTowerSpec, protocol.Header{FeaturesCols: []string{"user", "item"}, LabelCol: "rating"}, towerSchema, tower, tb,
			[]string{"loss", "mae"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, m := modeltest.Save(t, tt.spec, "")
			p, addr := psServer(t, m.Weights())
			h := tt.h
			h.Mode, h.Model, h.Driver, h.Token, h.Worker, h.Partition, h.Epoch, h.BatchSize, h.Seed =
				protocol.ModeTrain, dir, addr, trainToken, "partition-0", 0, 1, 16, 9
			res, err := runTask(h, tt.schema, tt.recs)
			if err != nil {
				t.Fatalf("%v\n%s", err, res.stderr)
			}
			if !slices.Equal(res.keys, tt.keys) || res.counts["loss"] != int64(tt.b.Rows) {
				t.Fatalf("keys %v over %d rows; want %v over %d", res.keys, res.counts["loss"], tt.keys, tt.b.Rows)
			}
			hist, err := m.FitRows(tt.b, gokernel.FitOptions{Epochs: 1, BatchSize: 16, Shuffle: true, Seed: 9})
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range tt.keys {
				if got := res.sums[k] / float64(tt.b.Rows); !close64(got, hist.History[k][0], 1e-9) {
					t.Errorf("%s: worker %v; Model.FitRows %v", k, got, hist.History[k][0])
				}
			}
			got, _ := p.Weights()
			for i, w := range m.Weights() {
				for j, v := range w.Data {
					if !close64(float64(got[i].Data[j]), float64(v), 1e-6) {
						t.Fatalf("weight %s[%d]: server %v after the worker's push; Model.FitRows %v", w.Name, j, got[i].Data[j], v)
					}
				}
			}
		})
	}
}

// TestSeveralColumnsErrors: a column count other than the model's inputs
// or outputs, a label for an output without a loss, a column both a
// feature and a label, a width or an id that does not fit an input: each
// an error naming the columns, the inputs or outputs, the row and the
// value, before any training.
func TestSeveralColumnsErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	heads, _ := headsRecords(mem, 10, 10, 7)
	defer release(heads)
	tower, _ := towerRecords(mem, 10, 10, 8)
	defer release(tower)
	headsDir, headsModel := modeltest.Save(t, fixture.TwoHeadsSpec, "")
	towerDir, towerModel := modeltest.Save(t, fixture.TwoTowerSpec, "")
	weights := map[string][]gokernel.NamedTensor{headsDir: headsModel.Weights(), towerDir: towerModel.Weights()}
	badItem := jsonRecord(t, mem, towerSchema, `[{"user": 1, "item": [2], "rating": 0}, {"user": 6, "item": [5], "rating": 1}]`)
	defer badItem.Release()
	badClass := jsonRecord(t, mem, headsSchema, `[{"x": [1, 2, 3, 4], "cls": 2, "val": 0}, {"x": [1, 2, 3, 4], "cls": 3, "val": 0}]`)
	defer badClass.Release()
	wideItem := jsonRecord(t, mem, towerSchema, `[{"user": 1, "item": [2, 3], "rating": 0}]`)
	defer wideItem.Release()
	for _, mode := range []string{protocol.ModeEvaluate, protocol.ModeTrain} {
		for _, tt := range []struct {
			name   string
			h      protocol.Header
			schema *arrow.Schema
			recs   []arrow.RecordBatch
			want   string
		}{
			{"one label column for two outputs", protocol.Header{Model: headsDir, FeaturesCol: "x", LabelCol: "cls"}, headsSchema, heads,
				`model "` + headsDir + `" has 2 outputs (class (3,), value (1,)); the task names 1 label columns ("cls"): give one per output`},
			{"one feature column for two inputs", protocol.Header{Model: towerDir, FeaturesCol: "user", LabelCol: "rating"}, towerSchema, tower,
				`model "` + towerDir + `" has 2 inputs (user (1,), item (1,)); the task names 1 feature columns ("user"): give one per input`},
			{"a label column missing", protocol.Header{Model: headsDir, FeaturesCol: "x", LabelCols: []string{"cls", "value"}}, headsSchema, heads,
				`arrowio: no column "value" in the schema`},
			{"a feature column missing", protocol.Header{Model: towerDir, FeaturesCols: []string{"user", "items"}, LabelCol: "rating"}, towerSchema, tower,
				`arrowio: no column "items" in the schema`},
			{"a feature that is a label", protocol.Header{Model: headsDir, FeaturesCol: "x", LabelCols: []string{"cls", "x"}}, headsSchema, heads,
				`column "x" is both a feature and the label`},
			{"no label for an output with a loss", protocol.Header{Model: headsDir, FeaturesCol: "x", LabelCols: []string{"cls", ""}}, headsSchema, heads,
				`model "` + headsDir + `": output "value" has a loss but no label column`},
			{"an id past the second input's input_dim", protocol.Header{Model: towerDir, FeaturesCols: []string{"user", "item"}, LabelCol: "rating", Partition: 1},
				towerSchema, []arrow.RecordBatch{tower[0], badItem},
				`features column "item" row 11 position 0: id 5 is outside [0, 5), the input_dim of the Embedding that reads input "item"`},
			{"two ids for a one-id input", protocol.Header{Model: towerDir, FeaturesCols: []string{"user", "item"}, LabelCol: "rating"}, towerSchema,
				[]arrow.RecordBatch{wideItem}, `the features (column "item") have 2 values per row, input "item" of the model takes 1: input shape (1,)`},
			{"a class past the class head's", protocol.Header{Model: headsDir, FeaturesCol: "x", LabelCols: []string{"cls", "val"}}, headsSchema,
				[]arrow.RecordBatch{badClass}, `label column "cls" row 1: value 3 is not a class index in [0, 3) for sparse_categorical_crossentropy`},
		} {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				h := tt.h
				h.Mode = mode
				if mode == protocol.ModeTrain {
					_, addr := psServer(t, weights[h.Model])
					h.Driver, h.Token, h.Worker, h.Epoch = addr, trainToken, "w", 1
				}
				_, stderr, err := work(t, taskBytes(t, h, tt.schema, tt.recs...))
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got %v; want an error containing %q\n%s", err, tt.want, stderr)
				}
				if mode == protocol.ModeTrain && strings.Contains(stderr.String(), "rows trained") {
					t.Errorf("the worker trained before the error:\n%s", stderr)
				}
			})
		}
	}
}

// TestDescribeLabelColumns: describe summarizes each feature column and
// each label column the input has.
func TestDescribeLabelColumns(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := jsonRecord(t, mem, headsSchema, `[{"x": [1, 2, 3, 4], "cls": 2, "val": -1.5}, {"x": [0, 0, 0, 0], "cls": 0, "val": 0.5}]`)
	defer rec.Release()
	h := protocol.Header{Mode: protocol.ModeDescribe, FeaturesCol: "x", LabelCols: []string{"cls", "val", "absent"}}
	stdout, stderr, err := work(t, taskBytes(t, h, headsSchema, rec))
	if err != nil {
		t.Fatalf("Work: %v (stderr %s)", err, stderr)
	}
	_, out := readStream(t, mem, stdout)
	defer release(out)
	var got []string
	r := out[0]
	for i := range int(r.NumRows()) {
		got = append(got, fmt.Sprintf("%s[%d] %v", r.Column(0).(*array.String).Value(i), r.Column(1).(*array.Int32).Value(i), r.Column(6).(*array.Float64).Value(i)))
	}
	want := []string{"x[0] 0.5", "x[1] 1", "x[2] 1.5", "x[3] 2", "cls[0] 1", "val[0] -0.5"}
	if !slices.Equal(got, want) {
		t.Errorf("describe: %v; want %v", got, want)
	}
}
