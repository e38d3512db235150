package pipe

import (
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/protocol"
	"github.com/gophas/gophas/ps"
)

// weightedRecord is fixture.Blobs rows (4 features, class index labels)
// with a double column "w" of weights w(r).
func weightedRecord(mem memory.Allocator, rows int, seed uint64, w func(r int) float64) arrow.RecordBatch {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "features", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
		{Name: "label", Type: arrow.PrimitiveTypes.Float64},
		{Name: "w", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	x, labels := fixture.Blobs(rows, 4, 3, seed)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	fb := b.Field(0).(*array.ListBuilder)
	fv := fb.ValueBuilder().(*array.Float64Builder)
	for r := range rows {
		fb.Append(true)
		for j := range 4 {
			fv.Append(float64(x[r*4+j]))
		}
		b.Field(1).(*array.Float64Builder).Append(float64(labels[r]))
		if v := w(r); math.IsNaN(v) {
			b.Field(2).(*array.Float64Builder).AppendNull()
		} else {
			b.Field(2).(*array.Float64Builder).Append(v)
		}
	}
	return b.NewRecordBatch()
}

// weightedSpecModel saves fixture.ClassifierSpec with accuracy also as a
// weighted metric.
func weightedSpecModel(t *testing.T) (string, *gokernel.Model) {
	t.Helper()
	spec := strings.Replace(fixture.ClassifierSpec, `"weighted_metrics":null`, `"weighted_metrics":["accuracy"]`, 1)
	s, err := gokernel.ParseSpec([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	m, err := gokernel.NewModel(s, gokernel.WithSeed(4))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := gokernel.SaveModel(dir, m); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

// TestEvaluateSampleWeights: an evaluate task with a sample weight column
// gives the kernel's weighted sums exactly, the weighted metric's
// denominator under WeightKey.
func TestEvaluateSampleWeights(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, m := weightedSpecModel(t)
	weight := func(r int) float64 { return float64(r%5) * 0.5 }
	rec := weightedRecord(mem, 37, 3, weight)
	defer rec.Release()
	h := protocol.Header{Mode: protocol.ModeEvaluate, Model: dir, SampleWeightCol: "w"}
	keys, sums, counts := evalRows(t, mem, taskBytes(t, h, rec.Schema(), rec))
	if want := []string{"loss", "accuracy", "weighted_accuracy", protocol.WeightKey}; !slices.Equal(keys, want) {
		t.Fatalf("keys %v; want %v", keys, want)
	}

	x, labels := fixture.Blobs(37, 4, 3, 3)
	b := gokernel.NewBatch(37, x, 4, fixture.OneHot(labels, 3), 3)
	b.W = make([]float32, 37)
	var wsum float64
	for r := range b.W {
		b.W[r] = float32(weight(r))
		wsum += weight(r)
	}
	var want gokernel.Sums
	if err := m.EvaluateBatch(b, &want); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if math.Abs(sums[k]-want.Sums[k]) > 1e-9*math.Max(1, math.Abs(want.Sums[k])) || counts[k] != 37 {
			t.Errorf("%s: sum %v over %d rows; want %v over 37", k, sums[k], counts[k], want.Sums[k])
		}
	}
	if sums[protocol.WeightKey] != wsum {
		t.Errorf("weight sum %v; want %v", sums[protocol.WeightKey], wsum)
	}
}

// TestTrainClassAndSampleWeights: rows of weight 0, by class or by column,
// give no gradient, so the weights stay exactly as they were, and their
// loss sums to 0; other weights train.
func TestTrainClassAndSampleWeights(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, m := weightedSpecModel(t)
	zero := weightedRecord(mem, 30, 1, func(int) float64 { return 0 })
	defer zero.Release()
	two := weightedRecord(mem, 30, 1, func(int) float64 { return 2 })
	defer two.Release()
	for _, tt := range []struct {
		name    string
		rec     arrow.RecordBatch
		col     string
		cw      map[string]float64
		changes bool
	}{
		{"sample weights 0", zero, "w", nil, false},
		{"class weights 0", zero, "", map[string]float64{"0": 0, "1": 0, "2": 0}, false},
		{"sample weights 2", two, "w", nil, true},
		{"class weights", zero, "", map[string]float64{"1": 3}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, addr := psServer(t, m.Weights())
			h := protocol.Header{Mode: protocol.ModeTrain, Model: dir, Driver: addr, Token: trainToken, Worker: "w0", Partition: 0,
				Epoch: 1, BatchSize: 10, SampleWeightCol: tt.col, ClassWeight: tt.cw}
			res, err := runTask(h, tt.rec.Schema(), []arrow.RecordBatch{tt.rec})
			if err != nil {
				t.Fatalf("%v\n%s", err, res.stderr)
			}
			after, _ := p.Weights()
			same := true
			for i, w := range m.Weights() {
				same = same && slices.Equal(w.Data, after[i].Data)
			}
			if same == tt.changes {
				t.Errorf("weights changed: %v; want %v", !same, tt.changes)
			}
			if !tt.changes && (res.sums["loss"] != 0 || res.sums["weighted_accuracy"] != 0 || res.sums[protocol.WeightKey] != 0) {
				t.Errorf("sums %v; want a loss, weighted accuracy and weight of 0", res.sums)
			}
			if res.counts["loss"] != 30 || res.sums["accuracy"] <= 0 {
				t.Errorf("sums %v counts %v: the rows count, and the unweighted accuracy is computed", res.sums, res.counts)
			}
		})
	}
}

func TestSampleWeightErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, m := weightedSpecModel(t)
	neg := weightedRecord(mem, 12, 1, func(r int) float64 { return 1 - float64(r/10)*3 })
	defer neg.Release()
	null := weightedRecord(mem, 12, 1, func(r int) float64 { return map[bool]float64{true: math.NaN(), false: 1}[r == 4] })
	defer null.Release()
	for _, tt := range []struct {
		name string
		h    protocol.Header
		rec  arrow.RecordBatch
		want string
	}{
		{"negative", protocol.Header{Mode: protocol.ModeEvaluate, Model: dir, SampleWeightCol: "w"}, neg,
			`sample weight column "w": row 10 holds -2; sample weights must be finite numbers >= 0`},
		{"null", protocol.Header{Mode: protocol.ModeEvaluate, Model: dir, SampleWeightCol: "w"}, null, `"w"`},
		{"missing", protocol.Header{Mode: protocol.ModeEvaluate, Model: dir, SampleWeightCol: "nope"}, neg, `"nope"`},
		{"both", protocol.Header{Mode: protocol.ModeEvaluate, Model: dir, SampleWeightCol: "w", ClassWeight: map[string]float64{"0": 2}}, neg,
			"cannot be used together"},
		{"class key", protocol.Header{Mode: protocol.ModeEvaluate, Model: dir, ClassWeight: map[string]float64{"x": 2}}, neg,
			`key "x" is not a class index`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, err := work(t, taskBytes(t, tt.h, tt.rec.Schema(), tt.rec))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v; want %q (stderr %s)", err, tt.want, stderr)
			}
		})
	}
	// A learning rate for an optimizer whose rate is a schedule.
	spec, err := gokernel.ParseSpec([]byte(fixture.ClassifierSpec))
	if err != nil {
		t.Fatal(err)
	}
	spec, err = spec.Compile(gokernel.CompileOptions{Optimizer: `{"class_name":"SGD","config":{"learning_rate":{"class_name":"CosineDecay","config":{"initial_learning_rate":0.5,"decay_steps":8}}}}`})
	if err != nil {
		t.Fatal(err)
	}
	sm, err := gokernel.NewModel(spec)
	if err != nil {
		t.Fatal(err)
	}
	sdir := filepath.Join(t.TempDir(), "model")
	if err := gokernel.SaveModel(sdir, sm); err != nil {
		t.Fatal(err)
	}
	_, addr := psServer(t, m.Weights(), ps.WithWorkers(1))
	h := protocol.Header{Mode: protocol.ModeTrain, Model: sdir, Driver: addr, Token: trainToken, Worker: "w0", Partition: 0, Epoch: 1, LearningRate: new(0.1)}
	if _, err := runTask(h, neg.Schema(), []arrow.RecordBatch{neg}); err == nil || !strings.Contains(err.Error(), "CosineDecay schedule") {
		t.Errorf("learning rate with a schedule: err %v", err)
	}
}
