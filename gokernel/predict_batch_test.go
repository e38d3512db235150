package gokernel

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gophas/gophas/internal/fixture"
)

// TestPredictBatchSeveralOutputs: PredictBatch gives every output of a
// model, the same rows whatever the chunking (300 rows cross the 256-row
// chunks), and for a one-input one-output model what Predict gives.
func TestPredictBatchSeveralOutputs(t *testing.T) {
	m := mustModel(t, []byte(fixture.TwoHeadsSpec), WithSeed(3), WithThreads(1))
	const rows = 300
	x, _, _ := blobs(rows, 5)
	b := &Batch{Rows: rows, X: [][]float32{x}, XWidths: []int{4}}
	out, err := m.PredictBatch(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || len(out[0]) != rows*3 || len(out[1]) != rows {
		t.Fatalf("PredictBatch: %d outputs of %d and %d values; want 2 of %d and %d", len(out), len(out[0]), len(out[1]), rows*3, rows)
	}
	for r := range rows {
		if s := out[0][r*3] + out[0][r*3+1] + out[0][r*3+2]; !close(float64(s), 1, 1e-6, 0) {
			t.Fatalf("row %d: class probabilities sum to %v; want 1 (softmax)", r, s)
		}
	}
	for _, r := range []int{0, 255, 256, 299} {
		one, err := m.PredictBatch(b.Slice(r, r+1), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(one[0], out[0][r*3:r*3+3]) || one[1][0] != out[1][r] {
			t.Errorf("row %d alone: %v %v; in the batch %v %v", r, one[0], one[1], out[0][r*3:r*3+3], out[1][r])
		}
	}
	// dst is reused: same values, same arrays.
	again, err := m.PredictBatch(b, out)
	if err != nil || &again[0][0] != &out[0][0] || !slices.Equal(again[1], out[1]) {
		t.Errorf("PredictBatch into its last result: %v; want the same arrays and values", err)
	}

	single := mustModel(t, []byte(fixture.ClassifierSpec), WithSeed(1), WithThreads(1))
	want, err := single.Predict(dense2(rows, 4, x))
	if err != nil {
		t.Fatal(err)
	}
	got, err := single.PredictBatch(NewBatch(rows, x, 4, nil, 0), nil)
	if err != nil || !slices.Equal(got[0], want.Data().([]float32)) {
		t.Errorf("PredictBatch on one input and output: %v; want Predict's values", err)
	}
}

// TestPredictBatchTwoInputs: the two-tower model's prediction is the dot
// product of the user's and the item's embedding rows; an id past an
// Embedding's input_dim is an error naming the input, row and value.
func TestPredictBatchTwoInputs(t *testing.T) {
	m := mustModel(t, []byte(fixture.TwoTowerSpec), WithSeed(4), WithThreads(1))
	var users, items NamedTensor
	for _, w := range m.Weights() {
		switch {
		case strings.HasPrefix(w.Name, "user_embedding"):
			users = w
		case strings.HasPrefix(w.Name, "item_embedding"):
			items = w
		}
	}
	if users.Data == nil || items.Data == nil {
		t.Fatalf("weights %v: want user_embedding and item_embedding", m.Weights())
	}
	u := []float32{0, 6, 3, 2}
	v := []float32{4, 0, 1, 4}
	out, err := m.PredictBatch(&Batch{Rows: 4, X: [][]float32{u, v}, XWidths: []int{1, 1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for r := range u {
		want := 0.0
		for k := range 3 {
			want += float64(users.Data[int(u[r])*3+k]) * float64(items.Data[int(v[r])*3+k])
		}
		if !close(float64(out[0][r]), want, 1e-6, 1e-6) {
			t.Errorf("row %d (user %v, item %v): got %v; want the dot product %v", r, u[r], v[r], out[0][r], want)
		}
	}
	for _, tt := range []struct {
		name string
		b    *Batch
		want string
	}{
		{"id past input_dim", &Batch{Rows: 2, X: [][]float32{{1, 2}, {0, 5}}, XWidths: []int{1, 1}}, `input "item" row 1 position 0: id 5 is outside [0, 5)`},
		{"one input of two", &Batch{Rows: 2, X: [][]float32{{1, 2}}, XWidths: []int{1}}, "a batch of 1 inputs; the model has 2"},
		{"width", &Batch{Rows: 1, X: [][]float32{{1, 2}, {0}}, XWidths: []int{2, 1}}, `input "user": rows of 2 values; the model takes 1`},
		{"no rows", &Batch{Rows: 0, X: [][]float32{{}, {}}, XWidths: []int{1, 1}}, "no rows"},
	} {
		if _, err := m.PredictBatch(tt.b, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v; want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// TestOutputInfo: per input and per output, what a column must hold, as
// `gophas inspect` tells the shim.
func TestOutputInfo(t *testing.T) {
	heads, err := ParseSpec([]byte(fixture.TwoHeadsSpec))
	if err != nil {
		t.Fatal(err)
	}
	info := heads.Info()
	got, _ := json.Marshal(struct {
		In  []InputInfo
		Out []OutputInfo
	}{info.Inputs, info.Outputs})
	want := `{"In":[{"name":"x","shape":[4],"dim":4,"ids":false,"idLimit":0}],` +
		`"Out":[{"name":"class","shape":[3],"dim":3,"loss":"sparse_categorical_crossentropy","labelKind":"class_index","labelWidths":[1],"classes":3,"classifier":true},` +
		`{"name":"value","shape":[1],"dim":1,"loss":"mean_squared_error","labelKind":"value","labelWidths":[1],"classes":1,"classifier":false}]}`
	if string(got) != want {
		t.Errorf("two_heads inputs and outputs:\n got %s\nwant %s", got, want)
	}
	if keys := info.EvaluateKeys; !slices.Equal(keys, []string{"loss", "class_loss", "value_loss", "class_accuracy", "value_mae"}) {
		t.Errorf("EvaluateKeys %v; want Keras' History keys", keys)
	}
	tower, err := ParseSpec([]byte(fixture.TwoTowerSpec))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = json.Marshal(tower.Info().Inputs)
	if want := `[{"name":"user","shape":[1],"dim":1,"ids":true,"idLimit":7},{"name":"item","shape":[1],"dim":1,"ids":true,"idLimit":5}]`; string(got) != want {
		t.Errorf("two_tower inputs:\n got %s\nwant %s", got, want)
	}

	// The value head's labels; the class head's one index per row.
	l, err := heads.OutputLabels(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if y, err := l.Shape(nil, []float32{-2.5, 7}, 2, 0); err != nil || !slices.Equal(y, []float32{-2.5, 7}) {
		t.Errorf("value labels: %v %v; want them as they are", y, err)
	}
	if _, err := heads.OutputLabels(0, 3); err == nil || !strings.Contains(err.Error(), "wants one class index") {
		t.Errorf("class head with 3 values per row: %v; want the one class index error", err)
	}
	if l, err = heads.OutputLabels(0, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Shape(nil, []float32{1, 3}, 2, 10); err == nil || !strings.Contains(err.Error(), "row 11: value 3 is not a class index in [0, 3)") {
		t.Errorf("class 3 of 3: %v; want an error naming row 11", err)
	}
	if _, err := heads.OutputLabels(2, 1); err == nil {
		t.Error("OutputLabels(2) of a two-output model: no error")
	}
}

// TestOutputLabelsOfSequences: a sequence output of T steps takes T class
// indexes per row (sparse) or T of them one-hot encoded (categorical).
func TestOutputLabelsOfSequences(t *testing.T) {
	for _, tt := range []struct {
		loss   string
		widths []int
		labels []float32
		want   []float32
	}{
		{"sparse_categorical_crossentropy", []int{2}, []float32{2, 0}, []float32{2, 0}},
		{"categorical_crossentropy", []int{6, 2}, []float32{2, 0}, []float32{0, 0, 1, 1, 0, 0}},
	} {
		data := funcJSON([]string{"p"}, 2, []gl{
			{"RepeatVector", "rep", `,"n":2`, one("p")},
			dl("d", 3, "softmax", one("rep")...),
		}, []string{"d"}, `{"optimizer":"adam","loss":"`+tt.loss+`"}`)
		spec, err := ParseSpec(data)
		if err != nil {
			t.Fatalf("%s: %v", tt.loss, err)
		}
		if got := spec.OutputLabelWidths(0); !slices.Equal(got, tt.widths) {
			t.Errorf("%s: label widths %v; want %v", tt.loss, got, tt.widths)
		}
		l, err := spec.OutputLabels(0, 2)
		if err != nil {
			t.Fatalf("%s: %v", tt.loss, err)
		}
		y, err := l.Shape(nil, tt.labels, 1, 0)
		if err != nil || !slices.Equal(y, tt.want) || l.Width() != len(tt.want) {
			t.Errorf("%s: targets %v (width %d), %v; want %v", tt.loss, y, l.Width(), err, tt.want)
		}
		m, err := NewModel(spec, WithSeed(1))
		if err != nil {
			t.Fatal(err)
		}
		var s Sums
		if err := m.EvaluateBatch(NewBatch(1, []float32{0.5, -1}, 2, y, l.Width()), &s); err != nil {
			t.Errorf("%s: EvaluateBatch on the shaped targets: %v", tt.loss, err)
		}
	}
}
