// Package modeltest writes kernel models to disk for the tests of the
// packages that load them (pipe, driver). It is its own package because
// internal/fixture must not import gokernel, whose tests import fixture.
package modeltest

import (
	"path/filepath"
	"testing"

	"github.com/gophas/gophas/gokernel"
)

// Save builds a model from specJSON (its compile config replaced when loss
// is not ""), with weights initialized from seed 7, saves it as a model
// directory under t.TempDir(), and returns the directory and the model
// loaded from it, as a worker or the driver loads it.
func Save(t *testing.T, specJSON, loss string, metrics ...string) (string, *gokernel.Model) {
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
