package gokernel

import (
	"encoding/json"
	"testing"
)

// TestKerasOptimizerParity replays the gradients of testdata/keras/
// optimizers.json and optimizers_more.json through each optimizer and
// compares the parameters after 1 and after 10 steps with Keras'.
func TestKerasOptimizerParity(t *testing.T) {
	for _, file := range []string{"optimizers.json", "optimizers_more.json"} {
		t.Run(file, func(t *testing.T) { kerasOptimizerParity(t, file) })
	}
}

func kerasOptimizerParity(t *testing.T, file string) {
	var fix struct {
		Keras string `json:"keras"`
		Cases []struct {
			Name    string          `json:"name"`
			Config  json.RawMessage `json:"config"`
			Params  []kerasTensor   `json:"params"`
			Grads   [][]kerasTensor `json:"grads"`
			After1  []kerasTensor   `json:"after1"`
			After10 []kerasTensor   `json:"after10"`
		} `json:"cases"`
	}
	readKerasFixture(t, file, &fix)
	if len(fix.Cases) == 0 {
		t.Fatalf("no cases in %s", file)
	}
	for _, c := range fix.Cases {
		t.Run(c.Name, func(t *testing.T) {
			opt, err := NewOptimizer(c.Config)
			if err != nil {
				t.Fatalf("NewOptimizer(%s): %v", c.Config, err)
			}
			if s, ok := opt.(interface{ SetShapes([][]int) error }); ok {
				var shapes [][]int
				for _, p := range c.Params {
					shapes = append(shapes, p.Shape)
				}
				if err := s.SetShapes(shapes); err != nil {
					t.Fatal(err)
				}
			}
			params := copyData(c.Params)
			for step, g := range c.Grads {
				if err := opt.Apply(params, copyData(g)); err != nil {
					t.Fatalf("step %d: %v", step+1, err)
				}
				switch step + 1 {
				case 1:
					compareTensors(t, "after 1 step", params, c.After1, 1e-5)
				case 10:
					compareTensors(t, "after 10 steps", params, c.After10, 1e-5)
				}
			}
		})
	}
}
