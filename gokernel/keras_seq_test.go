package gokernel

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// seqFixture is one case of testdata/keras/seq_layers.json or
// seq_models.json (made by make_seq_fixtures.py): a layerFixture whose
// integer inputs hold ids (their dx null) and which records the Keras
// mask of each output and the metrics of the first training step.
type seqFixture struct {
	Name         string             `json:"name"`
	Spec         json.RawMessage    `json:"spec"`
	Weights      []kerasTensor      `json:"weights"`
	Trainable    []bool             `json:"trainable"`
	X            []kerasTensor      `json:"x"`
	Y            []kerasTensor      `json:"y"`
	Forward      []kerasTensor      `json:"forward"`
	ForwardTrain []kerasTensor      `json:"forward_train"`
	Masks        []*kerasTensor     `json:"masks"`
	Evaluate     map[string]float64 `json:"evaluate"`
	Order        []string           `json:"order"`
	Loss         *float64           `json:"loss"`
	Grads        []kerasTensor      `json:"grads"`
	Dx           []*kerasTensor     `json:"dx"`
	Train        []struct {
		Optimizer string          `json:"optimizer"`
		Config    json.RawMessage `json:"config"`
		Losses    []float64       `json:"losses"`
		After1    []kerasTensor   `json:"after1"`
		After10   []kerasTensor   `json:"after10"`
	} `json:"train"`
}

func readSeqFixtures(t *testing.T, file string) []seqFixture {
	var fix struct {
		Cases []seqFixture `json:"cases"`
	}
	readKerasFixture(t, file, &fix)
	if len(fix.Cases) == 0 {
		t.Fatalf("no cases in %s", file)
	}
	return fix.Cases
}

func TestKerasSeqLayerParity(t *testing.T) {
	for _, c := range readSeqFixtures(t, "seq_layers.json") {
		t.Run(c.Name, func(t *testing.T) { c.check(t) })
	}
}

// TestKerasSeqModelParity checks whole sequence models against Keras: an
// Embedding→LSTM classifier, transformer encoders, a masked transformer
// block, a two-input Embedding dot-product model.
func TestKerasSeqModelParity(t *testing.T) {
	for _, c := range readSeqFixtures(t, "seq_models.json") {
		t.Run(c.Name, func(t *testing.T) { c.check(t) })
	}
}

// TestKerasOrder: the graph runs its calls in the order Keras' Functional
// runs them (see sortKeras), in every sequence fixture.
func TestKerasOrder(t *testing.T) {
	for _, file := range []string{"seq_layers.json", "seq_models.json"} {
		for _, c := range readSeqFixtures(t, file) {
			if c.Order == nil {
				continue
			}
			s, err := ParseSpec(c.Spec)
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			var got []string
			for _, n := range s.graph.nodes {
				got = append(got, n.layer.name)
			}
			if strings.Join(got, " ") != strings.Join(c.Order, " ") {
				t.Errorf("%s: calls run in the order %v; want %v (Keras)", c.Name, got, c.Order)
			}
		}
	}
}

// check compares the case with Keras: forward outputs in inference and
// training mode and the outputs' masks, the loss, its gradients with
// respect to the weights and the float inputs, and per optimizer the
// losses, the first step's metrics and every weight after 1 and 10 steps.
func (c *seqFixture) check(t *testing.T) {
	xs, ys := copyData(c.X), copyData(c.Y)
	rows := c.X[0].Shape[0]
	m := kerasModel(t, c.Spec, c.Weights, withInputGrads())
	for i, w := range m.Weights() {
		if k := c.Weights[i].Name; k != w.Name && !strings.HasSuffix(k, "/"+w.Name) {
			t.Errorf("weight %d: got name %q; want the end of Keras' variable path %q", i, w.Name, k)
		}
	}
	if got := m.Trainable(); len(got) != len(c.Trainable) {
		t.Fatalf("Trainable: got %v; want %v (Keras)", got, c.Trainable)
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
	for i, want := range c.Masks {
		id := m.g.outMask[i]
		switch {
		case want == nil && id >= 0:
			t.Errorf("output %d: got a mask; want none (Keras)", i)
		case want != nil && id < 0:
			t.Errorf("output %d: got no mask; want %v (Keras)", i, want.Data)
		case want != nil:
			got := m.maskVal[id][:rows*prod(m.g.masks[id].shape)]
			for j, v := range want.Data {
				if got[j] != (v != 0) {
					t.Errorf("output %d mask: got %v; want %v (Keras)", i, got, want.Data)
					break
				}
			}
		}
	}
	c.checkEvaluate(t, m, xs, ys, rows)
	if c.ForwardTrain == nil {
		return // training is random: Keras' draws cannot be matched
	}
	compareTensors(t, "forward output (training)", outputs(true), c.ForwardTrain, 1e-5)
	loss := m.stepAll(xs, ys, rows) / float64(rows)
	if !closeRel(float32(loss), float32(*c.Loss), 1e-4) {
		t.Errorf("loss: got %.8g; want %.8g (Keras)", loss, *c.Loss)
	}
	compareTensors(t, "gradients", m.grads, c.Grads, 1e-4)
	for i, in := range m.g.inputs {
		want := c.Dx[i]
		if want == nil {
			if !m.g.tensors[in].ids {
				t.Errorf("input %d: Keras gives no gradient, but it is a float input", i)
			}
			continue
		}
		compareTensors(t, "input gradients", [][]float32{m.grad[in][:rows*prod(m.g.tensors[in].shape)]}, []kerasTensor{*want}, 1e-4)
	}
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
			for step := range len(tr.Losses) {
				loss := m.stepAll(copyData(c.X), ys, rows) / float64(rows)
				if err := m.opt.Apply(m.params, m.grads); err != nil {
					t.Fatal(err)
				}
				if want := tr.Losses[step]; !closeRel(float32(loss), float32(want), 1e-4) {
					t.Errorf("step %d: got loss %.8g; want %.8g (Keras)", step+1, loss, want)
				}
				switch step + 1 {
				case 1:
					compareTensors(t, "weights after 1 step", noisyWeights(m, weightData(m), tr.After1), tr.After1, 1e-4)
				case len(tr.Losses):
					compareTensors(t, "weights after 10 steps", noisyWeights(m, weightData(m), tr.After10), tr.After10, 1e-4)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// checkEvaluate compares the loss and metrics of an inference pass with
// Keras' evaluate.
func (c *seqFixture) checkEvaluate(t *testing.T, m *Model, xs, ys [][]float32, rows int) {
	t.Helper()
	m.run(xs, rows, false)
	loss := m.lossSums(ys, rows, false)/float64(rows) + m.regularize(false)
	if want := c.Evaluate["loss"]; !closeRel(float32(loss), float32(want), 1e-5) {
		t.Errorf("evaluate: got loss %.8g; want %.8g (Keras)", loss, want)
	}
	keys := m.spec.Metrics()
	k := 0
	for _, h := range m.heads {
		for j := range h.metrics {
			w, ok := c.Evaluate[keys[k]]
			if !ok {
				t.Errorf("metric %q: Keras' evaluate gives %v", keys[k], c.Evaluate)
			} else if got := h.msum[j] / float64(rows); !closeRel(float32(got), float32(w), 1e-5) {
				t.Errorf("evaluate: metric %q: got %.8g; want %.8g (Keras)", keys[k], got, w)
			}
			k++
		}
	}
}

// TestSeqFixtureGradients checks the sequence fixtures' models against
// central differences too.
func TestSeqFixtureGradients(t *testing.T) {
	cases := append(readSeqFixtures(t, "seq_layers.json"), readSeqFixtures(t, "seq_models.json")...)
	for i, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			opts := []Option{WithThreads(1), withInputGrads()}
			if strings.Contains(string(c.Spec), `"Masking"`) {
				// Masking is not continuous at its masked steps (all
				// features mask_value): check the weights only.
				opts = opts[:1]
			}
			m := kerasModel(t, c.Spec, c.Weights, opts...)
			gradCheck(t, m, copyData(c.X), c.X[0].Shape[0], uint64(i), 1e-3, 2e-3, 2e-2)
		})
	}
}

// noisyWeights replaces, in got, the weights whose gradient is zero in
// exact arithmetic by Keras' values (want), after checking that the
// model's gradient of them is below 1e-6: MultiHeadAttention's key bias
// adds q_i·b to every score of row i, which the softmax ignores. Both
// Keras and the kernel compute float32 rounding noise there, which Adam
// turns into steps of about its learning rate that no two
// implementations share.
func noisyWeights(m *Model, got [][]float32, want []kerasTensor) [][]float32 {
	k := 0
	for i, w := range m.wts {
		if w.trainable && strings.HasSuffix(w.name, "/key/bias") {
			for _, g := range m.grads[k] {
				if math.Abs(float64(g)) > 1e-6 {
					return got // not noise: compare it
				}
			}
			got[i] = want[i].Data
		}
		if w.trainable {
			k++
		}
	}
	return got
}

// TestSeqBackwardSetsEveryGradient is TestBackwardSetsEveryGradient for
// the sequence fixtures: a second backward pass over NaN-filled gradient
// buffers gives the same gradients as the first.
func TestSeqBackwardSetsEveryGradient(t *testing.T) {
	cases := append(readSeqFixtures(t, "seq_layers.json"), readSeqFixtures(t, "seq_models.json")...)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			m := kerasModel(t, c.Spec, c.Weights, WithThreads(1), withInputGrads())
			rows := c.X[0].Shape[0]
			var dys [][]float32
			for _, o := range m.g.outputs {
				d := make([]float32, rows*prod(m.g.tensors[o].shape))
				for i := range d {
					d[i] = float32(i%7) - 3
				}
				dys = append(dys, d)
			}
			var first [][]float32
			for pass := 0; pass < 2; pass++ {
				m.replay = pass == 1
				m.run(copyData(c.X), rows, true)
				if pass == 1 {
					for _, g := range append(append([][]float32{}, m.grad...), m.temps...) {
						for i := range g {
							g[i] = float32(math.NaN())
						}
					}
				}
				m.backpropFrom(dys, rows)
				var got [][]float32
				for _, in := range m.g.inputs {
					if !m.g.tensors[in].ids {
						got = append(got, append([]float32(nil), m.grad[in][:rows*prod(m.g.tensors[in].shape)]...))
					}
				}
				for _, g := range m.grads {
					got = append(got, append([]float32(nil), g...))
				}
				if pass == 0 {
					first = got
					continue
				}
				for i := range got {
					for j, v := range got[i] {
						if v != first[i][j] && !(v != v && first[i][j] != first[i][j]) {
							t.Fatalf("gradient %d value %d: got %v over NaN-filled buffers; want %v as over clean ones", i, j, v, first[i][j])
						}
					}
				}
			}
		})
	}
}
