package gokernel

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"gorgonia.org/tensor"
)

// tensorOf is a rows×cols float32 tensor of the values.
func tensorOf(rows, cols int, v ...float32) *tensor.Dense {
	return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(v))
}

// withCompile returns the spec in testdata/spec/<file> with its compile
// config's key set to value (JSON).
func withCompile(t testing.TB, file, key, value string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/spec/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]map[string]json.RawMessage
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec["compile"][key] = json.RawMessage(value)
	out, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Keras 3 writes the loss and metrics of a compile config it read from an
// HDF5 file as plain functions; they name the same losses and metrics.
func TestCompileFunctionForm(t *testing.T) {
	data := withCompile(t, "regression.json", "loss",
		`{"module": "builtins", "class_name": "function", "config": "mean_absolute_error", "registered_name": "function"}`)
	var spec map[string]map[string]json.RawMessage
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec["compile"]["metrics"] = json.RawMessage(`[{"module": "builtins", "class_name": "function", "config": "mse", "registered_name": "function"}]`)
	data, _ = json.Marshal(spec)
	m := mustModel(t, data)
	if got, want := m.Spec().Loss(), "mean_absolute_error"; got != want {
		t.Errorf("loss: got %q; want %q", got, want)
	}
	if got, want := m.Spec().Metrics(), []string{"mse"}; !reflect.DeepEqual(got, want) {
		t.Errorf("metrics: got %v; want %v", got, want)
	}
}

// Every optimizer trains a model: Adafactor gets the weights' shapes from
// the model, and its state survives a restore into a new model.
func TestModelTrainsWithEveryOptimizer(t *testing.T) {
	x := tensorOf(4, 3, 0.5, -1, 2, 0.25, 1, -0.5, 1.5, -2, 0.75, 0, 1, 1)
	y := tensorOf(4, 2, 1, 0, 0, 1, 1, 0, 0, 1)
	for _, opt := range []string{"sgd", "adam", "nadam", "adamax", "adadelta", "ftrl", "lion", "adafactor"} {
		t.Run(opt, func(t *testing.T) {
			spec, err := ParseSpec(seqJSON(3, `"categorical_crossentropy"`, `["accuracy"]`, dense("h", 5, "tanh", ""), dense("o", 2, "softmax", "")))
			if err != nil {
				t.Fatal(err)
			}
			spec, err = spec.WithCompile([]byte(`"`+opt+`"`), "categorical_crossentropy", []string{"accuracy"})
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewModel(spec, WithSeed(1))
			if err != nil {
				t.Fatal(err)
			}
			before := m.Weights()[0].Data[0]
			for range 3 {
				if _, err := m.TrainOnBatch(x, y); err != nil {
					t.Fatal(err)
				}
			}
			if m.Weights()[0].Data[0] == before {
				t.Errorf("weights did not change")
			}
			m2, err := NewModel(spec, WithSeed(2))
			if err != nil {
				t.Fatal(err)
			}
			if err := m2.SetWeights(m.Weights()); err != nil {
				t.Fatal(err)
			}
			if err := m2.Optimizer().SetState(m.Optimizer().State()); err != nil {
				t.Fatal(err)
			}
			if _, err := m.TrainOnBatch(x, y); err != nil {
				t.Fatal(err)
			}
			if _, err := m2.TrainOnBatch(x, y); err != nil {
				t.Fatal(err)
			}
			for i, w := range m.Weights() {
				if !reflect.DeepEqual(w.Data, m2.Weights()[i].Data) {
					t.Fatalf("weight %s after a restored step: got %v; want %v", w.Name, m2.Weights()[i].Data, w.Data)
				}
			}
		})
	}
}
