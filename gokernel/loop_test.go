package gokernel

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// loopModel is a small classifier with Dropout and Adam: every random
// stream of the loop and the optimizer state matter to its weights.
func loopModel(t testing.TB, seed int64) *Model {
	t.Helper()
	spec := seqJSON(4, `"categorical_crossentropy"`, `["accuracy"]`, dense("h", 16, "relu", ""),
		`{"class_name":"Dropout","config":{"name":"dr","rate":0.3}}`, dense("o", 3, "softmax", ""))
	spec = []byte(strings.Replace(string(spec), `{"class_name":"SGD","config":{"learning_rate":0.1}}`, `"adam"`, 1))
	return mustModel(t, spec, WithSeed(seed), WithThreads(1))
}

func blobRows(rows int, seed uint64) *Batch {
	x, y, _ := blobs(rows, seed)
	return NewBatch(rows, x, 4, y, 3)
}

func weightBits(m *Model) [][]float32 {
	var out [][]float32
	for _, w := range m.Weights() {
		out = append(out, w.Data)
	}
	return out
}

func TestGather(t *testing.T) {
	src := &Batch{Rows: 4,
		X:       [][]float32{{0, 1, 10, 11, 20, 21, 30, 31}, {0, 1, 2, 3}},
		Y:       [][]float32{{5, 6, 7, 8}},
		XWidths: []int{2, 1}, YWidths: []int{1}}
	var b Batch
	b.Gather(src, []int{3, 0, 2})
	want := Batch{Rows: 3, X: [][]float32{{30, 31, 0, 1, 20, 21}, {3, 0, 2}}, Y: [][]float32{{8, 5, 7}}, XWidths: []int{2, 1}, YWidths: []int{1}}
	if !reflect.DeepEqual(b, want) {
		t.Errorf("Gather: got %+v; want %+v", b, want)
	}
	b.Gather(src, []int{1})
	if b.Rows != 1 || !reflect.DeepEqual(b.X[0], []float32{10, 11}) || !reflect.DeepEqual(b.Y[0], []float32{6}) {
		t.Errorf("Gather into a used batch: got %+v; want row 1", b)
	}
	s := src.Slice(1, 3)
	if s.Rows != 2 || !reflect.DeepEqual(s.X[0], []float32{10, 11, 20, 21}) || !reflect.DeepEqual(s.X[1], []float32{1, 2}) {
		t.Errorf("Slice(1, 3): got %+v", s)
	}
}

// TestEpochFeedMatchesTrain: rows fed in uneven pieces into one block train
// exactly as the whole table does (the Spark worker and Model.Fit), and
// smaller blocks train every row exactly once.
func TestEpochFeedMatchesTrain(t *testing.T) {
	rows := blobRows(203, 1)
	run := func(feed []int, block int) (*Model, *Epoch) {
		m := loopModel(t, 1)
		e, err := m.NewEpoch(EpochOptions{BatchSize: 16, Shuffle: true, Seed: 9, Epoch: 2, BlockRows: block})
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
	whole, we := run(nil, 0)
	fed, fe := run([]int{7, 0, 100, 1, 95}, 0)
	if !reflect.DeepEqual(weightBits(whole), weightBits(fed)) {
		t.Error("weights after Feed in pieces differ from Train of the whole table")
	}
	if !reflect.DeepEqual(we.Sums(), fe.Sums()) || we.Steps() != 13 || fe.Steps() != 13 {
		t.Errorf("sums %v (%d steps) and %v (%d steps); want equal, 13 steps", we.Sums(), we.Steps(), fe.Sums(), fe.Steps())
	}
	for _, block := range []int{16, 40, 1} {
		_, e := run([]int{50, 50, 103}, block)
		if s := e.Sums(); s.Count != 203 || e.Steps() != 13 {
			t.Errorf("blocks of %d rows: %d rows in %d steps; want 203 in 13", block, s.Count, e.Steps())
		}
	}
}

// TestEpochStreams: an epoch depends only on its seed, epoch and worker, so
// that continuing from saved weights and optimizer state (a Spark task per
// epoch) gives what one Fit gives.
func TestEpochStreams(t *testing.T) {
	rows := blobRows(150, 2)
	fit := loopModel(t, 3)
	if _, err := fit.FitRows(rows, FitOptions{Epochs: 2, BatchSize: 20, Shuffle: true, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	one := loopModel(t, 3)
	if _, err := one.FitRows(rows, FitOptions{Epochs: 1, BatchSize: 20, Shuffle: true, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "m")
	if err := SaveModel(dir, one); err != nil {
		t.Fatal(err)
	}
	two, err := Open(dir, WithSeed(77)) // another seed: the epoch's streams must not depend on it
	if err != nil {
		t.Fatal(err)
	}
	e, err := two.NewEpoch(EpochOptions{BatchSize: 20, Shuffle: true, Seed: 4, Epoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Train(rows); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(weightBits(fit), weightBits(two)) {
		t.Error("epoch 2 from epoch 1's saved model differs from a two-epoch Fit")
	}
	other := loopModel(t, 3)
	e, _ = other.NewEpoch(EpochOptions{BatchSize: 20, Shuffle: true, Seed: 4, Epoch: 1, Worker: 1})
	if err := e.Train(rows); err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(weightBits(one), weightBits(other)) {
		t.Error("worker 1's epoch 1 equals worker 0's; want other streams")
	}
}

type skipHook struct {
	skip  func(step int) bool
	calls []string
	err   error
}

func (h *skipHook) BeforeStep(step, rows int) (bool, error) {
	h.calls = append(h.calls, "before")
	if h.err != nil && step == 2 {
		return false, h.err
	}
	return !h.skip(step), nil
}

func (h *skipHook) AfterStep(step, rows int, sums *Sums) error {
	h.calls = append(h.calls, "after")
	return nil
}

func TestEpochHooks(t *testing.T) {
	rows := blobRows(50, 3)
	m := loopModel(t, 1)
	before := weightBits(m)
	h := &skipHook{skip: func(int) bool { return true }}
	e, _ := m.NewEpoch(EpochOptions{BatchSize: 8, Hooks: h})
	if err := e.Train(rows); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, weightBits(m)) || e.Skipped() != 50 || e.Sums().Count != 0 || len(h.calls) != 7 {
		t.Errorf("every step skipped: %d rows skipped, %d trained, hooks %v; want 50, 0, 7 befores and weights unchanged", e.Skipped(), e.Sums().Count, h.calls)
	}
	h = &skipHook{skip: func(s int) bool { return s < 3 }}
	e, _ = m.NewEpoch(EpochOptions{BatchSize: 8, Hooks: h})
	if err := e.Train(rows); err != nil {
		t.Fatal(err)
	}
	if e.Skipped() != 24 || e.Sums().Count != 26 || strings.Count(strings.Join(h.calls, " "), "after") != 4 {
		t.Errorf("3 of 7 steps skipped: %d skipped, %d trained, hooks %v", e.Skipped(), e.Sums().Count, h.calls)
	}
	stop := errors.New("stop")
	h = &skipHook{skip: func(int) bool { return false }, err: stop}
	e, _ = m.NewEpoch(EpochOptions{BatchSize: 8, Hooks: h})
	if err := e.Train(rows); !errors.Is(err, stop) || e.Sums().Count != 16 {
		t.Errorf("a hook's error at step 2: got %v after %d rows; want it after 16", err, e.Sums().Count)
	}
}

func TestSplitValidation(t *testing.T) {
	rows := blobRows(10, 1)
	for _, tt := range []struct {
		split      float64
		train, val int
		err        string
	}{
		{0, 10, 0, ""}, {0.25, 7, 3, ""}, {0.95, 0, 0, "no training rows"}, {1e-17, 0, 0, "no validation rows"}, {1, 0, 0, "must be in [0, 1)"},
	} {
		tr, val, err := SplitValidation(rows, tt.split)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("split %v: got %v; want an error containing %q", tt.split, err, tt.err)
			}
			continue
		}
		if err != nil || tr.Rows != tt.train || (val == nil) != (tt.val == 0) || val != nil && val.Rows != tt.val {
			t.Errorf("split %v: got %v, %v, %v; want %d and %d rows", tt.split, tr, val, err, tt.train, tt.val)
		}
	}
}

func TestTrainStepErrors(t *testing.T) {
	m := mustModel(t, seqJSON(4, `"sparse_categorical_crossentropy"`, "", dense("o", 3, "softmax", "")))
	x, _, labels := blobs(10, 1)
	var s Sums
	for _, tt := range []struct {
		name string
		b    *Batch
		want string
	}{
		{"width", NewBatch(5, x, 8, labels, 1), "input 0: rows of 8 features; the model takes 4"},
		{"short", NewBatch(11, x, 4, labels, 1), "batch input 0 holds 40 values, want 11 rows of 4"},
		{"empty", NewBatch(0, nil, 4, nil, 1), "no rows"},
		{"label", NewBatch(2, x, 4, []float32{1, 3}, 1), "label 3 in row 1 is not an integer in [0, 3)"},
		{"inputs", &Batch{Rows: 1, X: [][]float32{x, x}, XWidths: []int{4, 4}, Y: [][]float32{labels}, YWidths: []int{1}}, "a batch of 2 inputs and 1 outputs; the model has 1 and 1"},
	} {
		if err := m.TrainStep(tt.b, &s); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v; want an error containing %q", tt.name, err, tt.want)
		}
	}
	if s.Count != 0 {
		t.Errorf("sums after failed steps: %+v; want none counted", s)
	}
}

func TestLabels(t *testing.T) {
	spec := func(loss string, out int, act string) *Spec {
		s, err := ParseSpec(seqJSON(2, loss, "", dense("o", out, act, "")))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cce, sparse, bce, mse := spec(`"categorical_crossentropy"`, 3, "softmax"), spec(`"sparse_categorical_crossentropy"`, 3, "softmax"),
		spec(`"binary_crossentropy"`, 1, "sigmoid"), spec(`"mse"`, 2, "linear")
	for _, tt := range []struct {
		name   string
		spec   *Spec
		width  int
		labels []float32
		want   []float32
		err    string
	}{
		{"cce one-hot", cce, 1, []float32{2, 0}, []float32{0, 0, 1, 1, 0, 0}, ""},
		{"cce vectors", cce, 3, []float32{0, 1, 0}, []float32{0, 1, 0}, ""},
		{"cce index out of range", cce, 1, []float32{0, 3}, nil, "row 6: value 3 is not a class index in [0, 3) for categorical_crossentropy with 3 outputs"},
		{"cce width", cce, 2, nil, nil, "the label has 2 values per row but categorical_crossentropy on 3 outputs wants 3 values or one class index"},
		{"sparse", sparse, 1, []float32{2, 1}, []float32{2, 1}, ""},
		{"sparse fraction", sparse, 1, []float32{0.5}, nil, "row 5: value 0.5 is not a class index"},
		{"sparse width", sparse, 3, nil, nil, "wants one class index"},
		{"bce", bce, 1, []float32{0, 1, 0.25}, []float32{0, 1, 0.25}, ""},
		{"bce range", bce, 1, []float32{0, 2}, nil, "row 6: value 2 is outside [0, 1]"},
		{"mse", mse, 2, []float32{-3, 4}, []float32{-3, 4}, ""},
		{"mse class index", mse, 1, nil, nil, "the label has 1 values per row but mean_squared_error on 2 outputs wants 2"},
	} {
		l, err := tt.spec.Labels(tt.width)
		var got []float32
		if err == nil {
			got, err = l.Shape([]float32{9}, tt.labels, len(tt.labels)/tt.width, 5)
		}
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: got %v; want an error containing %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, append([]float32{9}, tt.want...)) || l.Width()*(len(tt.labels)/tt.width) != len(tt.want) {
			t.Errorf("%s: got %v, %v; want %v appended", tt.name, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		spec       *Spec
		kind       LabelKind
		widths     []int
		classifier bool
	}{{cce, Categorical, []int{3, 1}, true}, {sparse, ClassIndex, []int{1}, true}, {bce, Binary, []int{1}, true}, {mse, Value, []int{2}, false}} {
		if tt.spec.LabelKind() != tt.kind || !slices.Equal(tt.spec.LabelWidths(), tt.widths) || tt.spec.Classifier() != tt.classifier {
			t.Errorf("%s: kind %q widths %v classifier %v; want %q %v %v", tt.spec.Loss(), tt.spec.LabelKind(), tt.spec.LabelWidths(), tt.spec.Classifier(), tt.kind, tt.widths, tt.classifier)
		}
	}
}

func TestCompile(t *testing.T) {
	plain, err := ParseSpec(seqJSON(2, "", "", dense("o", 3, "softmax", "")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Compile(CompileOptions{}); err == nil || !strings.Contains(err.Error(), "no loss") {
		t.Errorf("Compile without a loss: got %v; want a no-loss error", err)
	}
	s, err := plain.Compile(CompileOptions{Loss: "categorical_crossentropy", Metrics: []string{"accuracy"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.OptimizerName() != DefaultOptimizer || s.Loss() != "categorical_crossentropy" || !slices.Equal(s.Metrics(), []string{"accuracy"}) {
		t.Errorf("compiled: optimizer %q loss %q metrics %v; want %s, categorical_crossentropy, [accuracy]", s.OptimizerName(), s.Loss(), s.Metrics(), DefaultOptimizer)
	}
	s2, err := s.Compile(CompileOptions{Optimizer: "adam", LearningRate: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(s2)
	if err != nil {
		t.Fatal(err)
	}
	if s2.OptimizerName() != "adam" || s2.Loss() != "categorical_crossentropy" || !slices.Equal(s2.Metrics(), []string{"accuracy"}) || !strings.Contains(string(s2.OptimizerConfig()), `"learning_rate":0.25`) {
		t.Errorf("recompiled: %s %s %v %s; want adam at 0.25, the loss and metrics kept", s2.OptimizerName(), s2.Loss(), s2.Metrics(), s2.OptimizerConfig())
	}
	if m.Optimizer().Name() != "adam" {
		t.Errorf("optimizer built: %q; want adam", m.Optimizer().Name())
	}
	s3, err := s2.Compile(CompileOptions{Optimizer: `{"class_name":"SGD","config":{"momentum":0.9}}`, LearningRate: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(s3.OptimizerConfig()); !strings.Contains(got, `"momentum":0.9`) || !strings.Contains(got, `"learning_rate":0.5`) {
		t.Errorf("SGD config with a learning rate: got %s", got)
	}
	info := s2.Info()
	if info.Optimizer != "adam" || info.DefaultOptimizer != "rmsprop" || !info.Classifier || info.LabelKind != Categorical ||
		!slices.Equal(info.EvaluateKeys, []string{"loss", "accuracy"}) || !slices.Equal(info.OutputShape, []int{3}) || info.InputDim != 2 {
		t.Errorf("Info: %+v", info)
	}
}

func TestOpen(t *testing.T) {
	data := seqJSON(4, `"categorical_crossentropy"`, "", dense("o", 3, "softmax", ""))
	file := filepath.Join(t.TempDir(), "spec.json")
	writeTestFile(t, file, data)
	a, err := Open(file, WithSeed(5))
	if err != nil {
		t.Fatal(err)
	}
	b := mustModel(t, data, WithSeed(5))
	if !reflect.DeepEqual(weightBits(a), weightBits(b)) {
		t.Error("Open of a spec file: weights differ from NewModel with the same seed")
	}
	dir := filepath.Join(t.TempDir(), "m")
	x, y, _ := blobs(20, 1)
	if _, err := b.TrainOnBatch(dense2(20, 4, x), dense2(20, 3, y)); err != nil {
		t.Fatal(err)
	}
	if err := SaveModel(dir, b); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir, WithSeed(99))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(weightBits(c), weightBits(b)) || !reflect.DeepEqual(c.Optimizer().State(), b.Optimizer().State()) {
		t.Error("Open of a model directory: weights or optimizer state differ from the saved ones")
	}
	if has, err := HasWeights(dir); !has || err != nil {
		t.Errorf("HasWeights(dir) = %v, %v; want true", has, err)
	}
	specOnly := filepath.Join(t.TempDir(), "spec-only")
	writeTestFile(t, filepath.Join(specOnly, SpecFile), data)
	d, err := Open(specOnly, WithSeed(5))
	if err != nil || !reflect.DeepEqual(weightBits(d), weightBits(a)) {
		t.Errorf("Open of a directory without weights: %v; want the seed's weights", err)
	}
	if _, err := LoadModel(specOnly); err == nil || !strings.Contains(err.Error(), WeightsFile) {
		t.Errorf("LoadModel of a directory without weights: got %v; want an error naming %s", err, WeightsFile)
	}
	if has, _ := HasWeights(specOnly); has {
		t.Error("HasWeights of a directory without weights: true")
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none")); err == nil || !strings.HasPrefix(err.Error(), "gokernel: Open: stat ") {
		t.Errorf("Open of a missing path: got %v", err)
	}
	if s, err := OpenSpec(dir); err != nil || s.Loss() != "categorical_crossentropy" {
		t.Errorf("OpenSpec(dir): %v, %v", s, err)
	}
}

func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoopSeveralInputsAndOutputs: the loop's unit of data is a Batch of
// one array per model input and one per output, so a Functional model with
// two inputs and two outputs trains through FitRows as a one-input model
// does, with Keras' keys (loss, <output>_loss, <output>_<metric>), and its
// validation sums equal EvaluateBatch's.
func TestLoopSeveralInputsAndOutputs(t *testing.T) {
	data := funcJSON([]string{"p", "q"}, 2, []gl{
		{"Concatenate", "cat", "", [][]string{{"p", "q"}}},
		dl("h", 8, "tanh", one("cat")...), dl("cls", 3, "softmax", one("h")...), dl("reg", 2, "linear", one("h")...),
	}, []string{"cls", "reg"}, `{"optimizer":"adam","loss":["sparse_categorical_crossentropy","mse"],"loss_weights":[1,0.5],"metrics":[["accuracy"],["mae"]]}`)
	m := mustModel(t, data, WithSeed(2), WithThreads(1))
	const rows = 90
	x, _, labels := blobs(rows, 8)
	p, q := make([]float32, rows*2), make([]float32, rows*2)
	reg := make([]float32, rows*2)
	for r := range rows {
		copy(p[r*2:], x[r*4:r*4+2])
		copy(q[r*2:], x[r*4+2:r*4+4])
		reg[r*2], reg[r*2+1] = x[r*4], -x[r*4+1]
	}
	b := &Batch{Rows: rows, X: [][]float32{p, q}, XWidths: []int{2, 2}, Y: [][]float32{labels, reg}, YWidths: []int{1, 2}}
	wantKeys := []string{"loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae"}
	if got := m.Spec().EvaluateKeys(); !slices.Equal(got, wantKeys) {
		t.Fatalf("EvaluateKeys: got %v; want %v", got, wantKeys)
	}
	h, err := m.FitRows(b, FitOptions{Epochs: 8, BatchSize: 10, Shuffle: true, Seed: 1, ValidationSplit: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range append(wantKeys, "val_loss", "val_cls_accuracy", "val_reg_mae") {
		if len(h.History[k]) != 8 {
			t.Errorf("History[%q] = %v; want 8 values", k, h.History[k])
		}
	}
	if l := h.History["loss"]; !(l[7] < l[0]) {
		t.Errorf("loss %v; want it to fall", l)
	}
	if l, c, r := h.History["loss"][7], h.History["cls_loss"][7], h.History["reg_loss"][7]; !close(l, c+0.5*r, 1e-9, 1e-9) {
		t.Errorf("loss %v; want cls_loss %v + 0.5 reg_loss %v (no regularizer)", l, c, r)
	}
	var s Sums
	if err := m.EvaluateBatch(b.Slice(72, rows), &s); err != nil {
		t.Fatal(err)
	}
	for _, k := range wantKeys {
		if got, want := h.History["val_"+k][7], s.Result()[k]; !close(got, want, 1e-12, 1e-9) {
			t.Errorf("val_%s: got %v; want EvaluateBatch's %v", k, got, want)
		}
	}
	if _, err := m.Predict(dense2(2, 2, p[:4])); err == nil || !strings.Contains(err.Error(), "2 inputs") {
		t.Errorf("Predict on a two-input model: %v; want the tensor methods' one-input error", err)
	}
}

// TestLoopStatefulMetricOfAnOutput: a metric with a state (R2Score) on one
// output of two is carried as "<output>_<metric>[<i>]" sums, which add up
// over parts exactly, and Model.Result turns them into the History's
// "<output>_<metric>".
func TestLoopStatefulMetricOfAnOutput(t *testing.T) {
	data := funcJSON([]string{"p", "q"}, 2, []gl{
		{"Concatenate", "cat", "", [][]string{{"p", "q"}}},
		dl("h", 8, "tanh", one("cat")...), dl("cls", 3, "softmax", one("h")...), dl("reg", 2, "linear", one("h")...),
	}, []string{"cls", "reg"}, `{"optimizer":"adam","loss":["sparse_categorical_crossentropy","mse"],"metrics":[["accuracy"],["r2_score"]]}`)
	m := mustModel(t, data, WithSeed(2), WithThreads(1))
	const rows = 90
	x, _, labels := blobs(rows, 8)
	p, q := make([]float32, rows*2), make([]float32, rows*2)
	reg := make([]float32, rows*2)
	for r := range rows {
		copy(p[r*2:], x[r*4:r*4+2])
		copy(q[r*2:], x[r*4+2:r*4+4])
		reg[r*2], reg[r*2+1] = x[r*4], -x[r*4+1]
	}
	b := &Batch{Rows: rows, X: [][]float32{p, q}, XWidths: []int{2, 2}, Y: [][]float32{labels, reg}, YWidths: []int{1, 2}}
	keys := m.SumKeys()
	if slices.Contains(keys, "reg_r2_score") || !slices.Contains(keys, "reg_r2_score[0]") || !slices.Contains(keys, "cls_accuracy") {
		t.Fatalf("SumKeys: got %v; want cls_accuracy and the state keys reg_r2_score[i]", keys)
	}
	h, err := m.FitRows(b, FitOptions{Epochs: 3, BatchSize: 10, Shuffle: true, Seed: 1, ValidationSplit: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"reg_r2_score", "val_reg_r2_score"} {
		if v := h.History[k]; len(v) != 3 || math.IsNaN(v[2]) {
			t.Errorf("History[%q] = %v; want 3 values", k, v)
		}
	}
	var whole, a, c Sums
	for _, e := range []struct {
		from, to int
		s        *Sums
	}{{72, rows, &whole}, {72, 80, &a}, {80, rows, &c}} {
		if err := m.EvaluateBatch(b.Slice(e.from, e.to), e.s); err != nil {
			t.Fatal(err)
		}
	}
	want := m.Result(whole)["reg_r2_score"]
	if got := h.History["val_reg_r2_score"][2]; !close(got, want, 1e-12, 1e-9) {
		t.Errorf("val_reg_r2_score: got %v; want EvaluateBatch's %v", got, want)
	}
	if got := m.Result(a.Add(c))["reg_r2_score"]; !close(got, want, 1e-12, 1e-9) {
		t.Errorf("r2_score of two parts' sums: got %v; want %v", got, want)
	}
}
