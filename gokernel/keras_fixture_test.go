package gokernel

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// kerasTensor is one tensor in the fixtures gokernel/testdata/keras/
// make_fixtures.py writes: a flat row-major float list and its shape.
type kerasTensor struct {
	Name  string    `json:"name"`
	Shape []int     `json:"shape"`
	Data  []float32 `json:"data"`
}

// readKerasFixture decodes testdata/keras/<name> into v.
func readKerasFixture(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "keras", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// closeRel reports whether got is within tol of want, relative to |want|
// (absolute below 1).
func closeRel(got, want float32, tol float64) bool {
	return math.Abs(float64(got)-float64(want)) <= tol*math.Max(1, math.Abs(float64(want)))
}

// compareTensors fails t at the first value of got not within tol of want.
func compareTensors(t testing.TB, what string, got [][]float32, want []kerasTensor, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d tensors; want %d", what, len(got), len(want))
	}
	for i := range want {
		if len(got[i]) != len(want[i].Data) {
			t.Fatalf("%s: tensor %d (%s): got %d values; want %d", what, i, want[i].Name, len(got[i]), len(want[i].Data))
		}
		for j, w := range want[i].Data {
			if !closeRel(got[i][j], w, tol) {
				t.Errorf("%s: tensor %d (%s) value %d: got %.8g; want %.8g (Keras)", what, i, want[i].Name, j, got[i][j], w)
				return
			}
		}
	}
}

func copyData(ts []kerasTensor) [][]float32 {
	out := make([][]float32, len(ts))
	for i, t := range ts {
		out[i] = append([]float32(nil), t.Data...)
	}
	return out
}
