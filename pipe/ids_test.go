package pipe

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"gorgonia.org/tensor"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/modeltest"
	"github.com/gophas/gophas/protocol"
)

// tokenSchema is a token model's input: ids as list<int32> or
// list<int64>, the label a double.
func tokenSchema(elem arrow.DataType) *arrow.Schema {
	return arrow.NewSchema([]arrow.Field{
		{Name: "tokens", Type: arrow.ListOf(elem)},
		{Name: "label", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
}

// TestEvaluateTokenIDs: integer token columns (list<int32>, list<int64>)
// feed a model whose input holds ids, with the sums the kernel computes on
// the same ids; an id outside the Embedding's input_dim is refused, naming
// the column, the partition's row, the position and the value.
func TestEvaluateTokenIDs(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	dir, m := modeltest.Save(t, fixture.TokenSpec, "")
	rows := `[{"tokens": [0, 1, 2, 3, 4], "label": 1}, {"tokens": [5, 5, 1, 0, 2], "label": 0}, {"tokens": [3, 3, 3, 3, 3], "label": 1}]`
	x := tensor.New(tensor.WithShape(3, 5), tensor.WithBacking([]float32{0, 1, 2, 3, 4, 5, 5, 1, 0, 2, 3, 3, 3, 3, 3}))
	y := tensor.New(tensor.WithShape(3, 1), tensor.WithBacking([]float32{1, 0, 1}))
	want, err := m.Evaluate(x, y)
	if err != nil {
		t.Fatal(err)
	}
	for _, elem := range []arrow.DataType{arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Int64} {
		schema := tokenSchema(elem)
		rec := jsonRecord(t, mem, schema, rows)
		keys, sums, counts := evalRows(t, mem, taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: dir, FeaturesCol: "tokens"}, schema, rec))
		rec.Release()
		if len(keys) != 2 || keys[0] != "loss" || counts["loss"] != 3 {
			t.Fatalf("%s: keys %v, counts %v; want loss and accuracy over 3 rows", elem, keys, counts)
		}
		if got := sums["loss"] / 3; math.Abs(got-want["loss"]) > 1e-6 {
			t.Errorf("%s: loss %v; the kernel on the same ids says %v", elem, got, want["loss"])
		}
	}

	schema := tokenSchema(arrow.PrimitiveTypes.Int64)
	good := jsonRecord(t, mem, schema, rows)
	defer good.Release()
	bad := jsonRecord(t, mem, schema, `[{"tokens": [0, 1, 2, 3, 4], "label": 1}, {"tokens": [1, 2, 6, 0, 0], "label": 0}]`)
	defer bad.Release()
	neg := jsonRecord(t, mem, schema, `[{"tokens": [0, 0, 0, 0, -1], "label": 1}]`)
	defer neg.Release()
	for _, tt := range []struct {
		name string
		task []byte
		want string
	}{
		{"evaluate, id past input_dim", taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: dir, FeaturesCol: "tokens", Partition: 2}, schema, good, bad),
			`pipe: partition 2, evaluate: features column "tokens" row 4 position 2: id 6 is outside [0, 6), the input_dim of the Embedding that reads input "input_layer"`},
		{"evaluate, negative id", taskBytes(t, protocol.Header{Mode: protocol.ModeEvaluate, Model: dir, FeaturesCol: "tokens"}, schema, neg),
			`pipe: partition 0, evaluate: features column "tokens" row 0 position 4: id -1 is outside [0, 6)`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := work(t, tt.task)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got error %v; want one starting with %q", err, tt.want)
			}
		})
	}
}

// TestWidthErrorNamesTheInputShape: features of the wrong width for a
// model whose input is not flat are refused with the input's shape.
func TestWidthErrorNamesTheInputShape(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	spec, err := os.ReadFile("../examples/mnist_convnet/model.json")
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := modeltest.Save(t, string(spec), "")
	rec := vectorRecord(mem, 3, 783, 1)
	defer rec.Release()
	want := `pipe: partition 0, predict: the features (column "features") have 783 values per row, the model takes 784: input shape (28, 28, 1)`
	if _, _, err := work(t, taskBytes(t, protocol.Header{Mode: protocol.ModePredict, Model: dir}, rec.Schema(), rec)); err == nil || err.Error() != want {
		t.Fatalf("got error %v; want %q", err, want)
	}
}

// TestIDsPastFloat32AreRefused: ids reach the loop as float32, exact up to
// 2^24; an Embedding taking more ids than that is refused, not rounded.
func TestIDsPastFloat32AreRefused(t *testing.T) {
	for _, tt := range []struct {
		inputDim int
		want     string
	}{
		{1 << 24, ""},
		{1<<24 + 1, `input "input_layer" takes ids up to 16777216 (an Embedding's input_dim); the features travel as float32, which holds ids exactly only up to 16777216`},
	} {
		spec, err := gokernel.ParseSpec([]byte(strings.Replace(fixture.TokenSpec, `"input_dim": 6`, fmt.Sprintf(`"input_dim": %d`, tt.inputDim), 1)))
		if err != nil {
			t.Fatal(err)
		}
		if got := spec.Inputs()[0].IDLimit; got != tt.inputDim {
			t.Fatalf("IDLimit %d; want %d", got, tt.inputDim)
		}
		r, err := newRows(&protocol.Header{FeaturesCol: "tokens", LabelCol: "label"}, tokenSchema(arrow.PrimitiveTypes.Int64))
		if err != nil {
			t.Fatal(err)
		}
		err = r.check(spec, "m")
		if (tt.want == "" && err != nil) || (tt.want != "" && (err == nil || err.Error() != tt.want)) {
			t.Errorf("input_dim %d: got %v; want %q", tt.inputDim, err, tt.want)
		}
	}
}
