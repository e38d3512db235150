package gokernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// gl is one layer of a Functional model written by funcJSON: its class,
// name, extra config (",key":value...) and its calls, each a list of the
// tensors it takes ("layer" for output 0 of call 0, "layer:1" for output 0
// of call 1).
type gl struct {
	class, name, config string
	calls               [][]string
}

// funcJSON writes the to_json text of a Functional model with the given
// inputs (name → width), layers and outputs, and a compile config if
// compile is not "".
func funcJSON(inputs []string, width int, layers []gl, outputs []string, compile string) []byte {
	var ls []string
	ref := func(s string) string {
		name, node := s, 0
		if i := strings.IndexByte(s, ':'); i >= 0 {
			name = s[:i]
			fmt.Sscan(s[i+1:], &node)
		}
		return fmt.Sprintf(`["%s",%d,0]`, name, node)
	}
	for _, in := range inputs {
		ls = append(ls, fmt.Sprintf(`{"class_name":"InputLayer","name":%q,"config":{"batch_shape":[null,%d],"name":%q},"inbound_nodes":[]}`, in, width, in))
	}
	for _, l := range layers {
		var nodes []string
		for _, call := range l.calls {
			var args []string
			for _, t := range call {
				args = append(args, `{"class_name":"__keras_tensor__","config":{"keras_history":`+ref(t)+`}}`)
			}
			arg := args[0]
			if len(args) > 1 {
				arg = "[" + strings.Join(args, ",") + "]"
			}
			nodes = append(nodes, `{"args":[`+arg+`],"kwargs":{}}`)
		}
		ls = append(ls, fmt.Sprintf(`{"class_name":%q,"name":%q,"config":{"name":%q%s},"inbound_nodes":[%s]}`, l.class, l.name, l.name, l.config, strings.Join(nodes, ",")))
	}
	var ins, outs []string
	for _, in := range inputs {
		ins = append(ins, ref(in))
	}
	for _, o := range outputs {
		outs = append(outs, ref(o))
	}
	model := `{"class_name":"Functional","config":{"name":"g","layers":[` + strings.Join(ls, ",") + `],"input_layers":[` + strings.Join(ins, ",") + `],"output_layers":[` + strings.Join(outs, ",") + `]}}`
	if compile == "" {
		return []byte(model)
	}
	return []byte(`{"model":` + model + `,"compile":` + compile + `}`)
}

func dl(name string, units int, act string, in ...[]string) gl {
	return gl{"Dense", name, fmt.Sprintf(`,"units":%d,"activation":%q,"bias_initializer":"random_normal"`, units, act), in}
}

func one(names ...string) [][]string { return [][]string{names} }

// TestGraphGradients checks the backward pass of graphs Keras fixtures do
// not cover against central differences: a tensor read twice by one call,
// an output that also feeds a later layer, a layer shared three times and
// every merge.
func TestGraphGradients(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"add x x", funcJSON([]string{"x"}, 3, []gl{dl("h", 3, "tanh", one("x")...), {"Add", "sum", "", one("h", "h")}}, []string{"sum"}, "")},
		{"multiply x x x", funcJSON([]string{"x"}, 3, []gl{{"Multiply", "prod", "", one("x", "x", "x")}}, []string{"prod"}, "")},
		{"output feeds on", funcJSON([]string{"x"}, 3, []gl{dl("a", 4, "sigmoid", one("x")...), dl("b", 2, "linear", one("a")...)}, []string{"a", "b"}, "")},
		{"shared thrice", funcJSON([]string{"x", "z"}, 3, []gl{
			{"Dense", "s", `,"units":3,"activation":"tanh","bias_initializer":"random_normal"`, [][]string{{"x"}, {"z"}, {"s"}}},
			{"Concatenate", "cat", `,"axis":-1`, one("s", "s:1", "s:2", "x")},
		}, []string{"cat"}, "")},
		{"merges", funcJSON([]string{"x", "z"}, 3, []gl{
			{"Maximum", "mx", "", one("x", "z", "x")},
			{"Minimum", "mn", "", one("z", "x")},
			{"Subtract", "sub", "", one("mx", "mn")},
			{"Average", "avg", "", one("sub", "z", "mx")},
			dl("d", 2, "gelu", one("avg")...),
		}, []string{"d", "mn"}, "")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustModel(t, tt.data, WithSeed(int64(i)), WithThreads(1), withInputGrads())
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			var xs [][]float32
			for _, in := range m.g.inputs {
				xs = append(xs, randFloats(rng, 3*prod(m.g.tensors[in].shape), -1, 1))
			}
			gradCheck(t, m, xs, 3, uint64(i), 1e-2, 1e-3, 1e-2)
		})
	}
}

// TestFixtureGradients checks every Keras fixture's model (layers and
// graphs) against central differences as well: the fixtures test the
// numbers against Keras, this tests the backward pass against the forward.
func TestFixtureGradients(t *testing.T) {
	files, err := filepath.Glob("testdata/keras/layers*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("fixture files: %v %v", files, err)
	}
	files = append(files, "testdata/keras/graphs.json")
	for _, path := range files {
		file := filepath.Base(path)
		var fix struct {
			Cases []layerFixture `json:"cases"`
		}
		readKerasFixture(t, file, &fix)
		for i, c := range fix.Cases {
			t.Run(c.Name, func(t *testing.T) {
				m := kerasModel(t, c.Spec, c.Weights, WithThreads(1), withInputGrads())
				gradCheck(t, m, copyData(c.X), c.X[0].Shape[0], uint64(i), 1e-3, 2e-3, 2e-2)
			})
		}
	}
}

// TestTwoOutputsOneLoss: an output without a loss gets no gradient, and
// the model's loss is the other output's.
func TestTwoOutputsOneLoss(t *testing.T) {
	data := funcJSON([]string{"x"}, 3, []gl{dl("a", 4, "tanh", one("x")...), dl("b", 2, "linear", one("a")...), dl("c", 2, "linear", one("a")...)},
		[]string{"b", "c"}, `{"optimizer":"sgd","loss":[null,"mse"]}`)
	m := mustModel(t, data, WithThreads(1))
	rng := rand.New(rand.NewPCG(1, 1))
	x, y := randFloats(rng, 12, -1, 1), randFloats(rng, 8, -1, 1)
	loss := m.stepAll([][]float32{x}, [][]float32{nil, y}, 4)
	for i, w := range m.wts {
		g := m.grads[i]
		zero := true
		for _, v := range g {
			zero = zero && v == 0
		}
		if strings.HasPrefix(w.name, "b/") != zero {
			t.Errorf("gradient of %s: all zero %v; want zero only for output b's layer", w.name, zero)
		}
	}
	if keys := m.spec.Metrics(); len(keys) != 0 {
		t.Errorf("Metrics: got %v; want none", keys)
	}
	m.run([][]float32{x}, 4, false)
	var want float64
	for j, v := range m.val[m.g.outputs[1]][:8] {
		e := float64(v) - float64(y[j])
		want += e * e / 2
	}
	if !close(loss, want, 1e-6, 1e-5) {
		t.Errorf("loss: got %v; want %v (output c's mse summed over rows)", loss, want)
	}
}

// TestFrozenLayer: a frozen layer's weights are not trainable, get no
// gradient, no regularization, and stay bit-identical through training.
func TestFrozenLayer(t *testing.T) {
	data := seqJSON(4, `"mse"`, "",
		dense("base", 5, "relu", `,"trainable":false,"kernel_regularizer":"l2"`),
		dense("head", 2, "linear", ""))
	m := mustModel(t, data)
	if got := m.Trainable(); fmt.Sprint(got) != "[false false true true]" {
		t.Fatalf("Trainable: got %v; want [false false true true]", got)
	}
	if len(m.params) != 2 {
		t.Fatalf("optimizer parameters: got %d; want the head's 2", len(m.params))
	}
	before := m.Weights()
	x, y, _ := blobs(64, 1)
	yy := make([]float32, 64*2)
	copy(yy, y)
	if _, err := m.Fit(dense2(64, 4, x), dense2(64, 2, yy), FitOptions{Epochs: 2, BatchSize: 8}); err != nil {
		t.Fatal(err)
	}
	after := m.Weights()
	for i := range before {
		same := fmt.Sprint(before[i].Data) == fmt.Sprint(after[i].Data)
		if same != (i < 2) {
			t.Errorf("%s: unchanged %v after training; want unchanged only for the frozen layer", after[i].Name, same)
		}
	}
	if pen := m.regularize(false); pen != 0 {
		t.Errorf("regularization of the frozen kernel: got %v; want 0 (Keras regularizes trainable weights only)", pen)
	}
}

// TestRoles: Roles tells the optimizer's weights from a trainable
// BatchNormalization's moving statistics (Moving) and from every weight of a
// frozen layer, a frozen BatchNormalization's statistics included (Frozen);
// a frozen BatchNormalization's statistics stay put in training, a
// trainable one's move.
func TestRoles(t *testing.T) {
	bn := func(name, extra string) string {
		return fmt.Sprintf(`{"class_name":"BatchNormalization","config":{"name":%q%s}}`, name, extra)
	}
	data := seqJSON(4, `"mse"`, "",
		dense("base", 5, "relu", `,"trainable":false`),
		bn("frozen_bn", `,"trainable":false`),
		bn("bn", ""),
		dense("head", 2, "linear", ""))
	m := mustModel(t, data)
	got := fmt.Sprint(m.Roles())
	want := "[frozen frozen frozen frozen frozen frozen trainable trainable moving moving trainable trainable]"
	if got != want {
		t.Fatalf("Roles: got %v; want %v", got, want)
	}
	before := m.Weights()
	x, y, _ := blobs(64, 1)
	yy := make([]float32, 64*2)
	copy(yy, y)
	if _, err := m.Fit(dense2(64, 4, x), dense2(64, 2, yy), FitOptions{Epochs: 1, BatchSize: 8}); err != nil {
		t.Fatal(err)
	}
	for i, w := range m.Weights() {
		same := fmt.Sprint(before[i].Data) == fmt.Sprint(w.Data)
		if same != (m.Roles()[i] == Frozen) {
			t.Errorf("%s (%v): unchanged %v after training; want unchanged only when frozen", w.Name, m.Roles()[i], same)
		}
	}
}

// TestGraphStepAllocs: a training step of a graph (shared layer, merges,
// two outputs) allocates nothing once the buffers exist.
func TestGraphStepAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	data := funcJSON([]string{"x", "z"}, 6, []gl{
		{"Dense", "s", `,"units":6,"activation":"relu"`, [][]string{{"x"}, {"z"}}},
		{"Add", "sum", "", one("s", "s:1", "x")},
		{"Concatenate", "cat", "", one("sum", "s")},
		{"Dropout", "dr", `,"rate":0.2`, one("cat")},
		dl("o1", 3, "softmax", one("dr")...),
		dl("o2", 2, "linear", one("sum")...),
	}, []string{"o1", "o2"}, `{"optimizer":"adam","loss":["categorical_crossentropy","mse"],"metrics":[["accuracy"],["mae"]]}`)
	m := mustModel(t, data, WithThreads(1))
	rng := rand.New(rand.NewPCG(1, 1))
	xs := [][]float32{randFloats(rng, 32*6, -1, 1), randFloats(rng, 32*6, -1, 1)}
	y1 := make([]float32, 32*3)
	for r := 0; r < 32; r++ {
		y1[r*3+r%3] = 1
	}
	ys := [][]float32{y1, randFloats(rng, 32*2, -1, 1)}
	step := func() {
		m.stepAll(xs, ys, 32)
		if err := m.opt.Apply(m.params, m.grads); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if n := testing.AllocsPerRun(20, step); n != 0 {
		t.Errorf("allocations per step: got %v; want 0", n)
	}
	if got := strings.Join(m.spec.Metrics(), ","); got != "o1_accuracy,o2_mae" {
		t.Errorf("Metrics: got %s; want o1_accuracy,o2_mae", got)
	}
}

// TestSeveralInputsRefusedByTensorMethods: Predict and friends take one
// input and one output, and say so naming the model's.
func TestSeveralInputsRefusedByTensorMethods(t *testing.T) {
	m := mustModel(t, funcJSON([]string{"a", "b"}, 2, []gl{{"Add", "s", "", one("a", "b")}}, []string{"s"}, ""))
	_, err := m.Predict(tensor.New(tensor.WithShape(1, 2), tensor.WithBacking([]float32{1, 2})))
	if err == nil || !strings.Contains(err.Error(), "2 inputs (a (None, 2), b (None, 2))") {
		t.Errorf("Predict: got %v; want an error naming both inputs", err)
	}
	if ins := m.Spec().Inputs(); len(ins) != 2 || ins[1].Name != "b" {
		t.Errorf("Inputs: got %v", ins)
	}
}

// TestGraphSpecErrors: what a graph cannot be is refused by name.
func TestGraphSpecErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{"cycle", funcJSON([]string{"x"}, 3, []gl{{"Add", "p", "", one("x", "q")}, {"Add", "q", "", one("p")}}, []string{"q"}, ""), []string{`"q"`, "cycle"}},
		{"shared shapes", funcJSON([]string{"x"}, 3, []gl{dl("a", 4, "linear", one("x")...), {"Dense", "s", `,"units":2`, [][]string{{"x"}, {"a"}}}}, []string{"s:1"}, ""), []string{`"s"`, "shared", "(None, 4)"}},
		{"subtract three", funcJSON([]string{"x"}, 3, []gl{{"Subtract", "s", "", one("x", "x", "x")}}, []string{"s"}, ""), []string{`"s"`, "exactly two"}},
		{"concatenate axis", funcJSON([]string{"x"}, 3, []gl{{"Concatenate", "c", `,"axis":0`, one("x", "x")}}, []string{"c"}, ""), []string{`"c"`, "axis 0"}},
		{"concatenate rank", funcJSON([]string{"x"}, 3, []gl{{"Concatenate", "c", `,"axis":3`, one("x", "x")}}, []string{"c"}, ""), []string{`"c"`, "axis 3", "rank 2"}},
		{"unknown layer", funcJSON([]string{"x"}, 3, []gl{{"Frobnicate", "f", "", one("x")}}, []string{"f"}, ""), []string{`"f"`, "Frobnicate", "Conv2D", "Dense", "MaxPooling2D"}},
		{"loss dict", funcJSON([]string{"x"}, 3, []gl{dl("a", 2, "linear", one("x")...)}, []string{"a"}, `{"loss":{"b":"mse"}}`), []string{`"b"`, "not an output"}},
		{"metrics flat", funcJSON([]string{"x"}, 3, []gl{dl("a", 2, "linear", one("x")...), dl("b", 2, "linear", one("x")...)}, []string{"a", "b"}, `{"loss":"mse","metrics":["mae"]}`), []string{"metrics", "1 entries", "2 outputs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec(tt.data)
			if err == nil {
				t.Fatalf("got no error; want one mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q; want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestBackwardSetsEveryGradient runs every fixture model's backward pass
// twice, the second time over gradient buffers filled with NaN: a layer
// must set every value of its input gradients (not add to what is there),
// and the two passes must agree.
func TestBackwardSetsEveryGradient(t *testing.T) {
	files, _ := filepath.Glob("testdata/keras/layers*.json")
	for _, path := range append(files, "testdata/keras/graphs.json") {
		var fix struct {
			Cases []layerFixture `json:"cases"`
		}
		readKerasFixture(t, filepath.Base(path), &fix)
		for _, c := range fix.Cases {
			t.Run(c.Name, func(t *testing.T) {
				m := kerasModel(t, c.Spec, c.Weights, WithThreads(1), withInputGrads())
				rows := c.X[0].Shape[0]
				m.replay = false
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
					m.run(copyData(c.X), rows, true)
					m.replay = true
					if pass == 1 {
						nan := float32(math.NaN())
						for _, g := range append(append([][]float32{}, m.grad...), m.temps...) {
							for i := range g {
								g[i] = nan
							}
						}
					}
					m.backpropFrom(dys, rows)
					var got [][]float32
					for _, in := range m.g.inputs {
						got = append(got, append([]float32(nil), m.grad[in][:rows*prod(m.g.tensors[in].shape)]...))
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
}
