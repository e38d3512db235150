package gokernel

import (
	"encoding/json"
	"sort"
	"testing"
)

// TestKerasFitParity runs Fit as testdata/keras/fit.json and
// fit_compile.json ran Keras' fit (batch 4, so a short last batch in
// fit.json; no shuffle; a 0.25 validation split) and compares the History
// (the stateful metrics, AUC and the like, accumulated over each epoch's
// batches) and the final weights (1e-4 relative).
func TestKerasFitParity(t *testing.T) {
	for _, file := range []string{"fit.json", "fit_compile.json"} {
		t.Run(file, func(t *testing.T) { kerasFitParity(t, file) })
	}
}

func kerasFitParity(t *testing.T, file string) {
	var fix struct {
		Cases []struct {
			Name            string               `json:"name"`
			Spec            json.RawMessage      `json:"spec"`
			Weights         []kerasTensor        `json:"weights"`
			X               kerasTensor          `json:"x"`
			Y               kerasTensor          `json:"y"`
			BatchSize       int                  `json:"batch_size"`
			Epochs          int                  `json:"epochs"`
			ValidationSplit float64              `json:"validation_split"`
			History         map[string][]float64 `json:"history"`
			After           []kerasTensor        `json:"after"`
		} `json:"cases"`
	}
	readKerasFixture(t, file, &fix)
	if len(fix.Cases) == 0 {
		t.Fatalf("no cases in %s", file)
	}
	for _, c := range fix.Cases {
		t.Run(c.Name, func(t *testing.T) {
			m := kerasModel(t, c.Spec, c.Weights)
			h, err := m.Fit(denseOf(c.X), denseOf(c.Y), FitOptions{Epochs: c.Epochs, BatchSize: c.BatchSize, ValidationSplit: c.ValidationSplit})
			if err != nil {
				t.Fatalf("Fit: %v", err)
			}
			var keys []string
			for k := range c.History {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				want := c.History[k]
				got := h.History[k]
				if len(got) != len(want) {
					t.Errorf("History[%q]: got %v; want %v (Keras)", k, got, want)
					continue
				}
				for e := range want {
					if !closeRel(float32(got[e]), float32(want[e]), 1e-4) {
						t.Errorf("History[%q] epoch %d: got %.7g; want %.7g (Keras)", k, e+1, got[e], want[e])
					}
				}
			}
			if len(h.History) != len(c.History) {
				t.Errorf("History keys: got %d keys; want %v", len(h.History), keys)
			}
			compareTensors(t, "weights after Fit", weightData(m), c.After, 1e-4)
		})
	}
}
