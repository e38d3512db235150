package gokernel

import (
	"encoding/json"
	"strings"
	"testing"
)

// layerFixture is one case of testdata/keras/layers.json or graphs.json
// (made by make_layer_fixtures.py).
type layerFixture struct {
	Name         string          `json:"name"`
	Spec         json.RawMessage `json:"spec"`
	Weights      []kerasTensor   `json:"weights"`
	Trainable    []bool          `json:"trainable"`
	X            []kerasTensor   `json:"x"`
	Y            []kerasTensor   `json:"y"`
	Forward      []kerasTensor   `json:"forward"`
	ForwardTrain []kerasTensor   `json:"forward_train"`
	TrainSame    bool            `json:"forward_train_same"`
	Loss         *float64        `json:"loss"`
	Grads        []kerasTensor   `json:"grads"`
	Dx           []kerasTensor   `json:"dx"`
	Train        []struct {
		Optimizer string               `json:"optimizer"`
		Config    json.RawMessage      `json:"config"`
		Losses    []float64            `json:"losses"`
		Logs      []map[string]float64 `json:"logs"`
		After1    []kerasTensor        `json:"after1"`
		After10   []kerasTensor        `json:"after10"`
	} `json:"train"`
}

func TestKerasLayerParity(t *testing.T) { runLayerFixtures(t, "layers.json") }

func TestKerasGraphParity(t *testing.T) { runLayerFixtures(t, "graphs.json") }

// runLayerFixtures checks each case of a fixture file against Keras: the
// forward outputs in inference and training mode (1e-5 relative), the
// loss and its gradients with respect to the trainable weights and the
// inputs (1e-4), and per optimizer the losses and every weight after 1 and
// 10 steps (1e-4).
func runLayerFixtures(t *testing.T, file string) {
	var fix struct {
		Cases []layerFixture `json:"cases"`
	}
	readKerasFixture(t, file, &fix)
	if len(fix.Cases) == 0 {
		t.Fatalf("no cases in %s", file)
	}
	for _, c := range fix.Cases {
		t.Run(c.Name, func(t *testing.T) { c.check(t) })
	}
}

func (c *layerFixture) check(t *testing.T) {
	xs, ys := copyData(c.X), copyData(c.Y)
	rows := c.X[0].Shape[0]
	m := kerasModel(t, c.Spec, c.Weights, withInputGrads())
	// Keras' variable paths carry the scope the layer was built in
	// ("sequential/dense/kernel" or "dense/kernel", depending on how the
	// model was made): the kernel's name is the path's end.
	for i, w := range m.Weights() {
		if k := c.Weights[i].Name; k != w.Name && !strings.HasSuffix(k, "/"+w.Name) {
			t.Errorf("weight %d: got name %q; want the end of Keras' variable path %q", i, w.Name, k)
		}
	}
	if got := m.Trainable(); len(c.Trainable) != len(got) {
		t.Fatalf("Trainable: got %v; want %v", got, c.Trainable)
	} else {
		for i := range got {
			if got[i] != c.Trainable[i] {
				t.Fatalf("Trainable: got %v; want %v (Keras)", got, c.Trainable)
			}
		}
	}
	outputs := func(training bool) [][]float32 {
		m.run(xs, rows, training)
		var out [][]float32
		for _, o := range m.g.outputs {
			out = append(out, append([]float32(nil), m.val[o]...))
		}
		return out
	}
	compareTensors(t, "forward output (inference)", outputs(false), c.Forward, 1e-5)
	if c.TrainSame {
		c.ForwardTrain = c.Forward
	}
	if c.ForwardTrain == nil {
		return // training is random: Keras' draws cannot be matched
	}
	compareTensors(t, "forward output (training)", outputs(true), c.ForwardTrain, 1e-5)
	loss := m.stepAll(xs, ys, rows) / float64(rows)
	if !closeRel(float32(loss), float32(*c.Loss), 1e-4) {
		t.Errorf("loss: got %.8g; want %.8g (Keras)", loss, *c.Loss)
	}
	compareTensors(t, "gradients", m.grads, c.Grads, 1e-4)
	var dx [][]float32
	for _, in := range m.g.inputs {
		dx = append(dx, m.grad[in][:rows*prod(m.g.tensors[in].shape)])
	}
	compareTensors(t, "input gradients", dx, c.Dx, 1e-4)
	if t.Failed() {
		return
	}
	for _, tr := range c.Train {
		t.Run(tr.Optimizer, func(t *testing.T) {
			var spec struct {
				Model   json.RawMessage            `json:"model"`
				Compile map[string]json.RawMessage `json:"compile"`
			}
			if err := json.Unmarshal(c.Spec, &spec); err != nil {
				t.Fatal(err)
			}
			spec.Compile["optimizer"] = tr.Config
			raw, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			m := kerasModel(t, raw, c.Weights)
			for step := range 10 {
				loss := m.stepAll(copyData(c.X), ys, rows)
				var sums Sums
				m.addSums(&sums, rows, loss)
				loss /= float64(rows)
				if err := m.opt.Apply(m.params, m.grads); err != nil {
					t.Fatal(err)
				}
				if want := tr.Losses[step]; !closeRel(float32(loss), float32(want), 1e-4) {
					t.Errorf("step %d: got loss %.8g; want %.8g (Keras)", step+1, loss, want)
				}
				if tr.Logs != nil {
					got := sums.Result()
					if len(got) != len(tr.Logs[step]) {
						t.Errorf("step %d: got logs %v; want %v (Keras)", step+1, got, tr.Logs[step])
					}
					for k, want := range tr.Logs[step] {
						if v, ok := got[k]; !ok || !closeRel(float32(v), float32(want), 1e-4) {
							t.Errorf("step %d: log %q: got %.8g (present %v); want %.8g (Keras)", step+1, k, v, ok, want)
						}
					}
				}
				switch step + 1 {
				case 1:
					compareTensors(t, "weights after 1 step", weightData(m), tr.After1, 1e-4)
				case 10:
					compareTensors(t, "weights after 10 steps", weightData(m), tr.After10, 1e-4)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}
