package gokernel

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

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
