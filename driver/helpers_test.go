package driver

import (
	"path/filepath"
	"testing"

	"github.com/gophas/gophas/gokernel"
)

// saveTestModel writes specJSON, compiled with loss and metrics when loss is
// given, with weights initialized from seed 7, as a model directory, and
// returns the directory and the model loaded from it.
func saveTestModel(t *testing.T, specJSON, loss string, metrics ...string) (string, *gokernel.Model) {
	t.Helper()
	spec, err := gokernel.ParseSpec([]byte(specJSON))
	if err != nil {
		t.Fatal(err)
	}
	if loss != "" {
		if spec, err = spec.WithCompile(nil, loss, metrics); err != nil {
			t.Fatal(err)
		}
	}
	m, err := gokernel.NewModel(spec, gokernel.WithSeed(7))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "model")
	if err := gokernel.SaveModel(dir, m); err != nil {
		t.Fatal(err)
	}
	if m, err = gokernel.LoadModel(dir); err != nil {
		t.Fatal(err)
	}
	return dir, m
}
