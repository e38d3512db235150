package gokernel

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
)

type weightsFixture struct {
	Keras string `json:"keras"`
	Cases []struct {
		Name               string             `json:"name"`
		Spec               json.RawMessage    `json:"spec"`
		Weights            []kerasTensor      `json:"weights"`
		X                  kerasTensor        `json:"x"`
		Y                  kerasTensor        `json:"y"`
		ClassWeight        json.RawMessage    `json:"class_weight"`
		SampleWeight       kerasTensor        `json:"sample_weight"`
		EvaluateUnweighted map[string]float64 `json:"evaluate_unweighted"`
		Evaluate           map[string]float64 `json:"evaluate"`
		TrainOnBatch       map[string]float64 `json:"train_on_batch"`
		AfterStep          []kerasTensor      `json:"after_step"`
		FitBatchSize       int                `json:"fit_batch_size"`
		FitEpochs          int                `json:"fit_epochs"`
		History            map[string][]float64
		AfterFit           []kerasTensor `json:"after_fit"`
	} `json:"cases"`
}

// compareLogs checks that got has exactly want's keys, each within tol
// (relative above 1).
func compareLogs(t *testing.T, what string, got, want map[string]float64, tol float64) {
	t.Helper()
	gk, wk := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))
	if !slices.Equal(gk, wk) {
		t.Errorf("%s: keys %v; Keras has %v", what, gk, wk)
	}
	for _, k := range wk {
		g, w := got[k], want[k]
		if math.Abs(g-w) > tol*max(1, math.Abs(w)) {
			t.Errorf("%s: %s = %.8g; Keras %.8g", what, k, g, w)
		}
	}
}

func fixtureBatch(x, y kerasTensor, w []float32) *Batch {
	rows := x.Shape[0]
	b := NewBatch(rows, append([]float32(nil), x.Data...), len(x.Data)/rows, append([]float32(nil), y.Data...), len(y.Data)/rows)
	if w != nil {
		b.W = append([]float32(nil), w...)
	}
	return b
}

// TestKerasSampleWeightParity checks class and sample weights against Keras
// (testdata/keras/weights.json): the loss and metrics, weighted and not, of
// evaluate with sample_weight (within 1e-5), of one train_on_batch step
// with sample_weight and the weights after it, and the History and
// weights of a fit with class_weight or sample_weight.
func TestKerasSampleWeightParity(t *testing.T) {
	var fix weightsFixture
	readKerasFixture(t, "weights.json", &fix)
	if len(fix.Cases) == 0 {
		t.Fatal("no cases in weights.json")
	}
	for _, c := range fix.Cases {
		t.Run(c.Name, func(t *testing.T) {
			sw := c.SampleWeight.Data
			m := kerasModel(t, c.Spec, c.Weights)

			s := m.newSums()
			if err := m.EvaluateBatch(fixtureBatch(c.X, c.Y, nil), &s); err != nil {
				t.Fatal(err)
			}
			compareLogs(t, "evaluate without weights", s.Result(), c.EvaluateUnweighted, 1e-5)

			// In two parts, as Spark's partitions would give them: the
			// sums add up exactly.
			b := fixtureBatch(c.X, c.Y, sw)
			s1, s2 := m.newSums(), m.newSums()
			if err := m.EvaluateBatch(b.Slice(0, 5), &s1); err != nil {
				t.Fatal(err)
			}
			if err := m.EvaluateBatch(b.Slice(5, b.Rows), &s2); err != nil {
				t.Fatal(err)
			}
			compareLogs(t, "evaluate with sample_weight", s1.Add(s2).Result(), c.Evaluate, 1e-5)

			var st Sums
			if err := m.TrainStep(b, &st); err != nil {
				t.Fatal(err)
			}
			if err := m.ApplyGradients(); err != nil {
				t.Fatal(err)
			}
			compareLogs(t, "train_on_batch with sample_weight", st.Result(), c.TrainOnBatch, 1e-5)
			compareTensors(t, "weights after one weighted step", weightData(m), c.AfterStep, 1e-5)

			f := kerasModel(t, c.Spec, c.Weights)
			opts := FitOptions{Epochs: c.FitEpochs, BatchSize: c.FitBatchSize}
			rows := fixtureBatch(c.X, c.Y, nil)
			if string(c.ClassWeight) != "null" {
				cw, err := ParseClassWeight(c.ClassWeight)
				if err != nil {
					t.Fatal(err)
				}
				opts.ClassWeight = cw
			} else {
				rows.W = append([]float32(nil), sw...)
			}
			h, err := f.FitRows(rows, opts)
			if err != nil {
				t.Fatal(err)
			}
			for e := range c.FitEpochs {
				got, want := map[string]float64{}, map[string]float64{}
				for k, v := range h.History {
					got[k] = v[e]
				}
				for k, v := range c.History {
					want[k] = v[e]
				}
				compareLogs(t, "fit epoch "+string(rune('1'+e)), got, want, 1e-5)
			}
			compareTensors(t, "weights after fit", weightData(f), c.AfterFit, 1e-4)
		})
	}
}

func TestSampleWeightErrors(t *testing.T) {
	var fix weightsFixture
	readKerasFixture(t, "weights.json", &fix)
	c := fix.Cases[0]
	m := kerasModel(t, c.Spec, c.Weights)
	for _, tc := range []struct {
		w    []float32
		want string
	}{
		{[]float32{1, 2}, "has 2 sample weights"},
		{append(make([]float32, c.X.Shape[0]-1), -1), "sample weight -1 of row 11"},
		{append(make([]float32, c.X.Shape[0]-1), float32(math.NaN())), "sample weight NaN"},
	} {
		b := fixtureBatch(c.X, c.Y, nil)
		b.W = tc.w
		var s Sums
		if err := m.TrainStep(b, &s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("TrainStep with weights %v: err %v; want %q", tc.w, err, tc.want)
		}
	}
	// class_weight and sample weights together, as Keras refuses them.
	b := fixtureBatch(c.X, c.Y, c.SampleWeight.Data)
	if _, err := m.FitRows(b, FitOptions{ClassWeight: ClassWeight{0: 2}}); err == nil || !strings.Contains(err.Error(), "cannot be used together") {
		t.Errorf("class_weight with sample weights: err %v", err)
	}
	for _, tc := range []struct{ raw, want string }{
		{`{"a": 1}`, `key "a" is not a class index`},
		{`{"0": -1}`, "weight -1 of class 0"},
		{`[1, 2]`, "want an object"},
	} {
		if _, err := ParseClassWeight([]byte(tc.raw)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseClassWeight(%s): err %v; want %q", tc.raw, err, tc.want)
		}
	}
}

// TestWeightedKeys checks the History names of weighted metrics, as
// Keras' CompileMetrics.result gives them.
func TestWeightedKeys(t *testing.T) {
	for _, tc := range []struct {
		compile string
		want    []string
	}{
		{`{"loss":"mse","metrics":["mae"],"weighted_metrics":["mae","mse"]}`, []string{"loss", "mae", "weighted_mae", "mse"}},
		{`{"loss":"mse","weighted_metrics":["mae"]}`, []string{"loss", "mae"}},
		{`{"loss":"mse","metrics":["mae"],"weighted_metrics":[]}`, []string{"loss", "mae"}},
	} {
		spec := `{"model":{"class_name":"Sequential","config":{"name":"s","layers":[{"class_name":"InputLayer","config":{"batch_shape":[null,3],"dtype":"float32","name":"in"}},{"class_name":"Dense","config":{"name":"d","units":2,"activation":"linear","use_bias":true,"dtype":"float32"}}]}},"compile":` + tc.compile + `}`
		s, err := ParseSpec([]byte(spec))
		if err != nil {
			t.Fatalf("%s: %v", tc.compile, err)
		}
		if got := s.EvaluateKeys(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: EvaluateKeys() = %v; want %v", tc.compile, got, tc.want)
		}
	}
}

// TestEpochSampleWeights: Gather and Slice carry the weights; weighted
// rows fed in pieces train exactly as the whole weighted table does, and
// differently from the same rows unweighted; a Feed may not mix weighted
// and unweighted rows.
func TestEpochSampleWeights(t *testing.T) {
	src := &Batch{Rows: 3, X: [][]float32{{1, 2, 3}}, Y: [][]float32{{4, 5, 6}}, XWidths: []int{1}, YWidths: []int{1}, W: []float32{0.5, 1, 2}}
	var g Batch
	g.Gather(src, []int{2, 0})
	if !slices.Equal(g.W, []float32{2, 0.5}) {
		t.Errorf("Gather: weights %v; want [2 0.5]", g.W)
	}
	if s := src.Slice(1, 3); !slices.Equal(s.W, []float32{1, 2}) {
		t.Errorf("Slice(1, 3): weights %v; want [1 2]", s.W)
	}
	g.Gather(&Batch{Rows: 1, X: [][]float32{{1}}, Y: [][]float32{{1}}, XWidths: []int{1}, YWidths: []int{1}}, []int{0})
	if g.W != nil {
		t.Errorf("Gather of unweighted rows left weights %v", g.W)
	}

	rows := blobRows(203, 1)
	rows.W = make([]float32, rows.Rows)
	for i := range rows.W {
		rows.W[i] = float32(i%4) * 0.5
	}
	run := func(feed []int) (*Model, *Epoch) {
		m := loopModel(t, 1)
		e, err := m.NewEpoch(EpochOptions{BatchSize: 16, Shuffle: true, Seed: 9, Epoch: 1})
		if err != nil {
			t.Fatal(err)
		}
		if feed == nil {
			if err := e.Train(rows); err != nil {
				t.Fatal(err)
			}
			return m, e
		}
		from := 0
		for _, n := range feed {
			if err := e.Feed(rows.Slice(from, from+n)); err != nil {
				t.Fatal(err)
			}
			from += n
		}
		if err := e.Finish(); err != nil {
			t.Fatal(err)
		}
		return m, e
	}
	whole, we := run(nil)
	fed, fe := run([]int{7, 100, 96})
	if !slices.EqualFunc(weightBits(whole), weightBits(fed), slices.Equal) {
		t.Error("weighted rows fed in pieces train differently from the whole table")
	}
	if we.Sums().Sums["loss"] != fe.Sums().Sums["loss"] {
		t.Errorf("loss sums %v and %v differ", we.Sums().Sums["loss"], fe.Sums().Sums["loss"])
	}
	plain := loopModel(t, 1)
	e, err := plain.NewEpoch(EpochOptions{BatchSize: 16, Shuffle: true, Seed: 9, Epoch: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := blobRows(203, 1)
	if err := e.Train(r); err != nil {
		t.Fatal(err)
	}
	if slices.EqualFunc(weightBits(whole), weightBits(plain), slices.Equal) {
		t.Error("sample weights changed nothing")
	}
	mixed := blobRows(10, 2)
	e2, _ := loopModel(t, 1).NewEpoch(EpochOptions{BatchSize: 4})
	if err := e2.Feed(rows.Slice(0, 5)); err != nil {
		t.Fatal(err)
	}
	if err := e2.Feed(mixed); err == nil {
		t.Error("Feed of unweighted rows after weighted ones: no error")
	}
}

// TestWeightsRefusedWhereNotSupported: a stateful weighted metric, and
// weights (weighted metrics, sample weights) on an output that carries a
// mask, are refused by name rather than computed wrong.
func TestWeightsRefusedWhereNotSupported(t *testing.T) {
	masked := []kl{emb(true), {class: "Dense", name: "d", config: `,"units":2`, in: []string{"emb"}}}
	newModel := func(layers []kl, out, compile string) (*Model, error) {
		s, err := ParseSpec(kjson(tokens5, layers, []string{out}, compile))
		if err != nil {
			t.Fatalf("%s: %v", compile, err)
		}
		return NewModel(s)
	}
	for _, tc := range []struct {
		layers       []kl
		out, compile string
		want         string
	}{
		{[]kl{emb(false), {class: "Flatten", name: "f", in: []string{"emb"}}, {class: "Dense", name: "d", config: `,"units":1,"activation":"sigmoid"`, in: []string{"f"}}},
			"d", `{"loss":"binary_crossentropy","weighted_metrics":["auc"]}`, `weighted metric "auc" of output "d" keeps a state`},
		{masked, "d", `{"loss":"mse","weighted_metrics":["mae"]}`, `output "d" carries a mask; weighted_metrics`},
	} {
		if _, err := newModel(tc.layers, tc.out, tc.compile); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v; want %q", tc.compile, err, tc.want)
		}
	}
	m, err := newModel(masked, "d", `{"loss":"mse"}`)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, len(tokenIDs))
	for i, id := range tokenIDs {
		x[i] = float32(id)
	}
	b := &Batch{Rows: 2, X: [][]float32{x}, Y: [][]float32{make([]float32, 2*5*2)}, XWidths: []int{5}, YWidths: []int{10}, W: []float32{1, 2}}
	var s Sums
	if err := m.TrainStep(b, &s); err == nil || !strings.Contains(err.Error(), `output "d" carries a mask; sample weights`) {
		t.Errorf("TrainStep with sample weights on a masked output: err %v", err)
	}
	b.W = nil
	if err := m.TrainStep(b, &s); err != nil {
		t.Errorf("TrainStep without sample weights: %v", err)
	}
}

// TestTrainingInfo checks what Info tells the shim's callbacks: the
// weighted keys, the keys better higher, the learning rate and schedule.
func TestTrainingInfo(t *testing.T) {
	model := `{"class_name":"Sequential","config":{"name":"s","layers":[{"class_name":"InputLayer","config":{"batch_shape":[null,3],"dtype":"float32","name":"in"}},{"class_name":"Dense","config":{"name":"d","units":2,"activation":"softmax","use_bias":true,"dtype":"float32"}}]}}`
	for _, tc := range []struct {
		compile  string
		weighted []string
		up       []string
		lr       float64
		schedule string
	}{
		{`{"loss":"categorical_crossentropy","optimizer":{"class_name":"SGD","config":{"learning_rate":0.25}},"metrics":["accuracy","mse"],"weighted_metrics":["accuracy"]}`,
			[]string{"weighted_accuracy"}, []string{"accuracy", "weighted_accuracy"}, 0.25, ""},
		{`{"loss":"mse","optimizer":{"class_name":"Adam","config":{"learning_rate":{"class_name":"ExponentialDecay","config":{"initial_learning_rate":0.5,"decay_steps":10,"decay_rate":0.5}}}},"metrics":["mae"]}`,
			[]string{}, []string{}, 0.5, "ExponentialDecay"},
	} {
		s, err := ParseSpec([]byte(`{"model":` + model + `,"compile":` + tc.compile + `}`))
		if err != nil {
			t.Fatal(err)
		}
		info := s.Info()
		if !slices.Equal(info.WeightedKeys, tc.weighted) || !slices.Equal(info.HigherIsBetter, tc.up) || info.LearningRate != tc.lr || info.Schedule != tc.schedule {
			t.Errorf("%s: Info weighted %v, higher is better %v, learning rate %v, schedule %q; want %v, %v, %v, %q", tc.compile,
				info.WeightedKeys, info.HigherIsBetter, info.LearningRate, info.Schedule, tc.weighted, tc.up, tc.lr, tc.schedule)
		}
	}
}

// TestResultOfWireSums: sums that crossed a process boundary (the shim's
// merged partitions through gophas inspect --sums) carry no list of
// weighted keys; Model.Result still divides a weighted metric by the
// weights' sum, not by the rows.
func TestResultOfWireSums(t *testing.T) {
	spec := `{"model":{"class_name":"Sequential","config":{"name":"s","layers":[{"class_name":"InputLayer","config":{"batch_shape":[null,3],"dtype":"float32","name":"in"}},{"class_name":"Dense","config":{"name":"d","units":1,"activation":"linear","use_bias":true,"dtype":"float32"}}]}},"compile":{"loss":"mse","weighted_metrics":["mae"]}}`
	s, err := ParseSpec([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(s)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Result(Sums{Count: 4, Sums: map[string]float64{"loss": 8, "mae": 3, WeightKey: 2}})
	if got["loss"] != 2 || got["mae"] != 1.5 {
		t.Errorf("Result = %v; want loss 2 (8 over 4 rows), mae 1.5 (3 over the weights' sum 2)", got)
	}
	if _, ok := got[WeightKey]; ok {
		t.Errorf("Result holds %s: %v", WeightKey, got)
	}
}
