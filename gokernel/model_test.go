package gokernel

import (
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/gophas/gophas/internal/fixture"
)

func dense2(rows, cols int, data []float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(data))
}

// TestTensorAtRunTime makes sure gorgonia.org/tensor works on this Go: it
// panics at start-up without the pinned go4.org/unsafe/assume-no-moving-gc.
func TestTensorAtRunTime(t *testing.T) {
	a := tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6}))
	v, err := a.Slice(tensor.S(1, 2))
	if err != nil {
		t.Fatal(err)
	}
	got, _, _, err := floats(v.(*tensor.Dense), "x")
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{4, 5, 6}; !reflect.DeepEqual(got, want) {
		t.Errorf("row 1 of a view: got %v; want %v", got, want)
	}
	if _, _, _, err := floats(tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2})), "x"); err == nil || !strings.Contains(err.Error(), "float64") {
		t.Errorf("float64 input: got %v; want an error naming the dtype", err)
	}
}

// TestPredictByHand checks a 2-2-1 model against values computed by hand.
func TestPredictByHand(t *testing.T) {
	m := mustModel(t, seqJSON(2, "", "", dense("h", 2, "relu", ""), dense("o", 1, "sigmoid", "")))
	err := m.SetWeights([]NamedTensor{
		{Name: "h/kernel", Shape: []int{2, 2}, Data: []float32{1, -1, 2, 1}},
		{Name: "h/bias", Shape: []int{2}, Data: []float32{0, 0.5}},
		{Name: "o/kernel", Shape: []int{2, 1}, Data: []float32{1, -2}},
		{Name: "o/bias", Shape: []int{1}, Data: []float32{0.25}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Predict(dense2(2, 2, []float32{1, 1, -1, 0.5}))
	if err != nil {
		t.Fatal(err)
	}
	// Row 0: h = relu([1+2, -1+1+0.5]) = [3, 0.5]; z = 3 - 1 + 0.25 = 2.25.
	// Row 1: h = relu([-1+1, 1+0.5+0.5]) = [0, 2]; z = -4 + 0.25 = -3.75.
	want := []float64{1 / (1 + math.Exp(-2.25)), 1 / (1 + math.Exp(3.75))}
	got := out.Data().([]float32)
	if !reflect.DeepEqual(out.Shape(), tensor.Shape{2, 1}) {
		t.Fatalf("shape: got %v; want (2, 1)", out.Shape())
	}
	for i := range want {
		if !close(float64(got[i]), want[i], 1e-7, 1e-6) {
			t.Errorf("row %d: got %v; want %v", i, got[i], want[i])
		}
	}
}

func TestSetWeightsErrors(t *testing.T) {
	m := mustModel(t, seqJSON(2, "", "", dense("h", 3, "relu", "")))
	err := m.SetWeights([]NamedTensor{{Name: "x", Shape: []int{3, 2}, Data: make([]float32, 6)}, {Name: "b", Shape: []int{3}, Data: make([]float32, 3)}})
	if err == nil || !strings.Contains(err.Error(), "h/kernel") || !strings.Contains(err.Error(), "[3 2]") || !strings.Contains(err.Error(), "[2 3]") {
		t.Errorf("got %v; want an error naming h/kernel and both shapes", err)
	}
	if err := m.SetWeights(nil); err == nil {
		t.Error("SetWeights(nil): got no error")
	}
}

// blobs is fixture.Blobs: a 3-class problem in 4 dimensions, with the
// labels one-hot and as class indexes.
func blobs(rows int, seed uint64) (x, onehot, labels []float32) {
	x, labels = fixture.Blobs(rows, 4, 3, seed)
	return x, fixture.OneHot(labels, 3), labels
}

func TestEvaluateSumsOfHalves(t *testing.T) {
	for _, loss := range []string{`"categorical_crossentropy"`, `"sparse_categorical_crossentropy"`} {
		m := mustModel(t, seqJSON(4, loss, `["accuracy","acc"]`, dense("h", 8, "relu", `,"kernel_regularizer":"l2"`), dense("o", 3, "softmax", "")))
		x, onehot, labels := blobs(301, 2)
		y, yw := onehot, 3
		if strings.Contains(loss, "sparse") {
			y, yw = labels, 1
		}
		whole, err := m.Evaluate(dense2(301, 4, x), dense2(301, yw, y))
		if err != nil {
			t.Fatal(err)
		}
		a, err := m.EvaluateSums(dense2(150, 4, x[:600]), dense2(150, yw, y[:150*yw]))
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.EvaluateSums(dense2(151, 4, x[600:]), dense2(151, yw, y[150*yw:]))
		if err != nil {
			t.Fatal(err)
		}
		got := a.Add(b).Result()
		if len(got) != 3 {
			t.Errorf("%s: keys: got %v; want loss, accuracy, acc", loss, got)
		}
		for k, w := range whole {
			if !close(got[k], w, 1e-12, 1e-12) {
				t.Errorf("%s %s: got %v from the halves; want %v from the whole", loss, k, got[k], w)
			}
		}
	}
}

func TestFitReducesLoss(t *testing.T) {
	m := mustModel(t, seqJSON(4, `"categorical_crossentropy"`, `["accuracy"]`, dense("h", 16, "relu", ""),
		`{"class_name":"Dropout","config":{"name":"dr","rate":0.1}}`, dense("o", 3, "softmax", "")), WithSeed(7))
	x, y, _ := blobs(500, 3)
	before, err := m.Evaluate(dense2(500, 4, x), dense2(500, 3, y))
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	h, err := m.Fit(dense2(500, 4, x), dense2(500, 3, y), FitOptions{Epochs: 5, BatchSize: 16, Shuffle: true, ValidationSplit: 0.2, Seed: 1,
		Callback: func(l EpochLogs) {
			if l.Epoch != calls {
				t.Errorf("callback epoch: got %d; want %d", l.Epoch, calls)
			}
			calls++
		}})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 5 || !reflect.DeepEqual(h.Epoch, []int{0, 1, 2, 3, 4}) {
		t.Errorf("epochs: got %v and %d callbacks; want 0..4 and 5", h.Epoch, calls)
	}
	for _, k := range []string{"loss", "accuracy", "val_loss", "val_accuracy"} {
		if len(h.History[k]) != 5 {
			t.Errorf("History[%q]: got %v; want 5 values", k, h.History[k])
		}
	}
	loss := h.History["loss"]
	if !(loss[4] < loss[0]) || !(h.History["val_loss"][4] < before["loss"]/2) {
		t.Errorf("loss: got %v (val %v) from %v; want it to fall", loss, h.History["val_loss"], before["loss"])
	}
	if acc := h.History["val_accuracy"][4]; acc < 0.9 {
		t.Errorf("val_accuracy: got %v; want ≥ 0.9", acc)
	}
	// The validation rows are the last 20%: evaluating them gives val_*.
	ev, err := m.Evaluate(dense2(100, 4, x[400*4:]), dense2(100, 3, y[400*3:]))
	if err != nil {
		t.Fatal(err)
	}
	if !close(ev["loss"], h.History["val_loss"][4], 1e-12, 1e-9) {
		t.Errorf("val_loss: got %v; want Evaluate of the last 100 rows %v", h.History["val_loss"][4], ev["loss"])
	}
}

func TestFitDeterministic(t *testing.T) {
	run := func() []float64 {
		m := mustModel(t, seqJSON(4, `"sparse_categorical_crossentropy"`, "", dense("h", 8, "elu", ""),
			`{"class_name":"Dropout","config":{"name":"dr","rate":0.2}}`, dense("o", 3, "softmax", "")), WithSeed(3), WithThreads(2))
		x, _, labels := blobs(200, 4)
		h, err := m.Fit(dense2(200, 4, x), dense2(200, 1, labels), FitOptions{Epochs: 2, BatchSize: 32, Shuffle: true, Seed: 5})
		if err != nil {
			t.Fatal(err)
		}
		return h.History["loss"]
	}
	if a, b := run(), run(); !reflect.DeepEqual(a, b) {
		t.Errorf("two runs with the same seeds: got %v and %v; want equal", a, b)
	}
}

func TestTrainErrors(t *testing.T) {
	plain := mustModel(t, seqJSON(4, "", "", dense("o", 3, "softmax", "")))
	x, y, labels := blobs(10, 1)
	if _, err := plain.TrainOnBatch(dense2(10, 4, x), dense2(10, 3, y)); err == nil || !strings.Contains(err.Error(), "no loss") {
		t.Errorf("TrainOnBatch without compile: got %v; want a no-loss error", err)
	}
	m := mustModel(t, seqJSON(4, `"sparse_categorical_crossentropy"`, "", dense("o", 3, "softmax", "")))
	labels[3] = 7
	tests := []struct {
		name string
		x, y *tensor.Dense
		want string
	}{
		{"bad label", dense2(10, 4, x), dense2(10, 1, labels), "label 7 in row 3"},
		{"x width", dense2(20, 2, x), dense2(10, 1, labels), "want (rows, 4)"},
		{"rows", dense2(10, 4, x), dense2(5, 2, labels), "rows"},
		{"nil x", nil, dense2(10, 1, labels), "x is nil"},
		{"nil y", dense2(10, 4, x), nil, "y is nil"},
		{"no rows", dense2(0, 4, nil), dense2(0, 1, nil), "no rows"},
	}
	for _, tt := range tests {
		if _, err := m.Fit(tt.x, tt.y, FitOptions{}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v; want an error containing %q", tt.name, err, tt.want)
		}
	}
	labels[3] = 1
	if _, err := m.Fit(dense2(10, 4, x), dense2(10, 1, labels), FitOptions{ValidationSplit: 1}); err == nil {
		t.Error("ValidationSplit 1: got no error")
	}
}

// TestTrainStepAllocs checks that a step of the loop's contract (TrainStep,
// ApplyGradients) allocates nothing once the buffers exist.
func TestTrainStepAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	m := mustModel(t, seqJSON(20, `"categorical_crossentropy"`, `["accuracy"]`, dense("h", 32, "relu", ""),
		`{"class_name":"Dropout","config":{"name":"dr","rate":0.2}}`, dense("o", 4, "softmax", "")), WithThreads(1))
	rng := rand.New(rand.NewPCG(1, 1))
	x := randFloats(rng, 64*20, -1, 1)
	y := make([]float32, 64*4)
	for r := 0; r < 64; r++ {
		y[r*4+r%4] = 1
	}
	b := NewBatch(64, x, 20, y, 4)
	var sums Sums
	step := func() {
		if err := m.TrainStep(b, &sums); err != nil {
			t.Fatal(err)
		}
		if err := m.ApplyGradients(); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if n := testing.AllocsPerRun(20, step); n != 0 {
		t.Errorf("allocations per step: got %v; want 0", n)
	}
}

// TestFunctionalMultiDimInput feeds the Functional model of
// testdata/spec/functional.json (Input (28, 28), Flatten, ...) with x of
// shape (rows, 28, 28) and with the same rows flattened.
func TestFunctionalMultiDimInput(t *testing.T) {
	data, err := os.ReadFile("testdata/spec/functional.json")
	if err != nil {
		t.Fatal(err)
	}
	m := mustModel(t, data)
	if got := m.Spec().InputShape(); !reflect.DeepEqual(got, []int{28, 28}) {
		t.Errorf("InputShape: got %v; want [28 28]", got)
	}
	xd := randFloats(rand.New(rand.NewPCG(1, 1)), 3*784, 0, 1)
	a, err := m.Predict(tensor.New(tensor.WithShape(3, 28, 28), tensor.WithBacking(xd)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Predict(dense2(3, 784, xd))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Data(), b.Data()) {
		t.Error("Predict of (3, 28, 28) and (3, 784) differ")
	}
	if _, err := m.TrainOnBatch(dense2(3, 784, xd), dense2(3, 1, []float32{1, 2, 9})); err != nil {
		t.Errorf("TrainOnBatch with sparse labels: %v", err)
	}
}

// TestGradientsMatchEvaluate: without Dropout the loss Gradients reports is
// the loss Evaluate reports, and the gradients come in Weights() order.
func TestGradientsMatchEvaluate(t *testing.T) {
	m := mustModel(t, seqJSON(4, `"categorical_crossentropy"`, "", dense("h", 6, "gelu", `,"kernel_regularizer":"l2"`), dense("o", 3, "softmax", "")))
	x, y, _ := blobs(50, 6)
	grads, loss, err := m.Gradients(dense2(50, 4, x), dense2(50, 3, y))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := m.Evaluate(dense2(50, 4, x), dense2(50, 3, y))
	if err != nil {
		t.Fatal(err)
	}
	if !close(loss, ev["loss"], 1e-12, 1e-9) {
		t.Errorf("loss: got %v; want Evaluate's %v", loss, ev["loss"])
	}
	for i, w := range m.Weights() {
		if len(grads[i]) != len(w.Data) {
			t.Errorf("grads[%d]: got %d values; want %d for %s", i, len(grads[i]), len(w.Data), w.Name)
		}
	}
}

// TestThreadsAgree: the matrix products split over goroutines give the
// same predictions as on one.
func TestThreadsAgree(t *testing.T) {
	data := seqJSON(300, "", "", dense("h", 200, "relu", ""), dense("o", 10, "softmax", ""))
	x := dense2(64, 300, randFloats(rand.New(rand.NewPCG(2, 2)), 64*300, -1, 1))
	a, err := mustModel(t, data, WithThreads(1)).Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	b, err := mustModel(t, data, WithThreads(4)).Predict(x)
	if err != nil {
		t.Fatal(err)
	}
	ad, bd := a.Data().([]float32), b.Data().([]float32)
	for i := range ad {
		if !close(float64(ad[i]), float64(bd[i]), 1e-6, 1e-5) {
			t.Fatalf("output[%d]: got %v with 4 threads; want %v as with 1", i, bd[i], ad[i])
		}
	}
}
