package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/protocol"
)

const mnistSpec = "../../gokernel/testdata/spec/mnist_mlp.json"

func inspect(t *testing.T, args ...string) protocol.ModelInfo {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), append([]string{"inspect"}, args...), strings.NewReader(""), &stdout, &stderr); code != protocol.ExitOK {
		t.Fatalf("inspect %q: exit %d, stderr %s", args, code, stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 1 || !strings.HasSuffix(stdout.String(), "\n") {
		t.Fatalf("inspect %q: stdout %q; want one line", args, stdout.String())
	}
	var info protocol.ModelInfo
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		t.Fatal(err)
	}
	return info
}

func TestInspect(t *testing.T) {
	out := filepath.Join(t.TempDir(), "init")
	info := inspect(t, "--model", mnistSpec, "--seed", "7", "--out", out)
	want := protocol.ModelInfo{Info: gokernel.Info{Name: "mnist_mlp", InputDim: 784, InputShape: []int{784}, OutputDim: 10, OutputShape: []int{10},
		Loss: "categorical_crossentropy", Metrics: []string{"accuracy"}, EvaluateKeys: []string{"loss", "accuracy"},
		WeightedKeys: []string{}, HigherIsBetter: []string{"accuracy"}, LearningRate: float64(float32(0.001)),
		LabelKind: gokernel.Categorical, LabelWidths: []int{10, 1}, Classifier: true, Optimizer: "adam", DefaultOptimizer: "rmsprop",
		Inputs: []gokernel.InputInfo{{Name: "input_layer", Shape: []int{784}, Dim: 784}},
		Outputs: []gokernel.OutputInfo{{Name: "dense_2", Shape: []int{10}, Dim: 10, Loss: "categorical_crossentropy",
			LabelKind: gokernel.Categorical, LabelWidths: []int{10, 1}, Classes: 10, Classifier: true}}},
		Params: 784*128 + 128 + 128*128 + 128 + 128*10 + 10}
	if !sameInfo(info, want) {
		t.Errorf("inspect spec file: got %+v; want %+v", info, want)
	}

	// The written dir holds the seed's weights, loads, and trains.
	m, err := gokernel.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(mnistSpec)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := gokernel.ParseSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := gokernel.NewModel(spec, gokernel.WithSeed(7))
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range m.Weights() {
		if !slices.Equal(w.Data, fresh.Weights()[i].Data) {
			t.Fatalf("written weight %s differs from the seed-7 initialization", w.Name)
		}
	}
	x := tensor.New(tensor.WithShape(2, 784), tensor.WithBacking(make([]float32, 2*784)))
	y := tensor.New(tensor.WithShape(2, 10), tensor.WithBacking([]float32{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}))
	if _, err := m.TrainOnBatch(x, y); err != nil {
		t.Errorf("training the written model: %v", err)
	}

	// A dir with weights keeps them, whatever the seed.
	info = inspect(t, "--model", out, "--seed", "8", "--out", filepath.Join(t.TempDir(), "copy"))
	want.HasWeights = true
	if !sameInfo(info, want) {
		t.Errorf("inspect model dir: got %+v; want %+v", info, want)
	}

	// A dir of a spec alone is initialized.
	bare := t.TempDir()
	if err := os.WriteFile(filepath.Join(bare, gokernel.SpecFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	info = inspect(t, "--model", bare)
	want.HasWeights = false
	if !sameInfo(info, want) {
		t.Errorf("inspect dir without weights: got %+v; want %+v", info, want)
	}
	if _, err := os.Stat(filepath.Join(bare, gokernel.WeightsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("inspect without --out wrote %s", gokernel.WeightsFile)
	}
}

func TestInspectNoCompile(t *testing.T) {
	b, err := os.ReadFile(mnistSpec)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.json")
	if err := os.WriteFile(path, doc["model"], 0o644); err != nil {
		t.Fatal(err)
	}
	info := inspect(t, "--model", path)
	if info.Loss != "" || info.EvaluateKeys == nil || len(info.EvaluateKeys) != 0 || info.Metrics == nil {
		t.Errorf("inspect without compile config: got %+v; want no loss and empty (not null) key lists", info)
	}
}

// TestInspectCompile: the compile flags override the spec's compile config
// (the Spark ML estimator's loss, optimizer, learningRate and metrics), and
// --out writes the compiled spec.
func TestInspectCompile(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.json")
	if err := os.WriteFile(plain, []byte(`{"class_name":"Sequential","config":{"name":"p","layers":[`+
		`{"class_name":"InputLayer","config":{"batch_shape":[null,3],"name":"in"}},`+
		`{"class_name":"Dense","config":{"name":"o","units":2,"activation":"softmax"}}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	info := inspect(t, "--model", plain, "--loss", "categorical_crossentropy", "--metrics", "accuracy, mse", "--out", out)
	if info.Optimizer != gokernel.DefaultOptimizer || info.Loss != "categorical_crossentropy" || !slices.Equal(info.EvaluateKeys, []string{"loss", "accuracy", "mse"}) {
		t.Errorf("compiled without an optimizer: %+v; want %s, the loss and the metrics", info, gokernel.DefaultOptimizer)
	}
	info = inspect(t, "--model", out, "--optimizer", "adam", "--learning-rate", "0.125")
	if info.Optimizer != "adam" || info.Loss != "categorical_crossentropy" || !info.HasWeights {
		t.Errorf("recompiled: %+v; want adam and the saved loss", info)
	}
	spec, err := gokernel.OpenSpec(out)
	if err != nil || spec.Loss() != "categorical_crossentropy" {
		t.Fatalf("the written spec: %v, %v", spec, err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"inspect", "--model", plain, "--optimizer", "adam"}, strings.NewReader(""), &stdout, &stderr); code != protocol.ExitError ||
		!strings.Contains(stderr.String(), "no loss") {
		t.Errorf("compile without a loss: exit %d, stderr %q; want an error saying there is no loss", code, stderr.String())
	}
}

func sameInfo(a, b protocol.ModelInfo) bool { return reflect.DeepEqual(a, b) }

func TestInspectErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inspect"}, protocol.ExitUsage, "inspect: --model is required"},
		{[]string{"inspect", "--model", "m.json", "extra"}, protocol.ExitUsage, `inspect: unexpected argument "extra"`},
		{[]string{"inspect", "--model", "m.json", "--seed", "x"}, protocol.ExitUsage, `invalid value "x" for flag -seed`},
		{[]string{"inspect", "--model", "/nonexistent/m.json"}, protocol.ExitError, "inspect: gokernel: Open: stat /nonexistent/m.json: no such file or directory"},
		{[]string{"inspect", "--model", "main.go"}, protocol.ExitError, `inspect: gokernel: Open: main.go: spec is not a JSON object`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
		last := lines[len(lines)-1]
		if code != tc.code || !strings.HasPrefix(last, protocol.ErrorPrefix) || !strings.Contains(last, tc.want) {
			t.Errorf("run(%q): got exit %d, last stderr line %q; want exit %d and a line starting %q containing %q", tc.args, code, last, tc.code, protocol.ErrorPrefix, tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("run(%q): got stdout %q; want none", tc.args, stdout.String())
		}
	}
}

// TestInspectWeightedMetrics: a spec that compiles weighted_metrics is
// served, and inspect names their keys (after the plain metrics) so that the
// shim divides their merged sums by the weights' sum, not the row count.
func TestInspectWeightedMetrics(t *testing.T) {
	b, err := os.ReadFile(mnistSpec)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	spec["compile"].(map[string]any)["weighted_metrics"] = []any{"accuracy"}
	b, err = json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "weighted.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"inspect", "--model", path}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("inspect of a spec with weighted_metrics: exit %d, stderr %q", code, stderr.String())
	}
	var info protocol.ModelInfo
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil {
		t.Fatalf("inspect's output %q: %v", stdout.String(), err)
	}
	if got, want := strings.Join(info.EvaluateKeys, ","), "loss,accuracy,weighted_accuracy"; got != want {
		t.Errorf("evaluate keys %s; want %s", got, want)
	}
	if got, want := strings.Join(info.WeightedKeys, ","), "weighted_accuracy"; got != want {
		t.Errorf("weighted keys %s; want %s", got, want)
	}
}

// inspect --sums turns merged sums into results: means, and the stateful
// metrics (here AUC) from their state keys, exactly as the kernel's own
// evaluation of the same rows.
func TestInspectSums(t *testing.T) {
	dir := t.TempDir()
	specFile := filepath.Join(dir, "model.json")
	spec := `{"model": {"module":"keras","class_name":"Sequential","config":{"name":"s","layers":[` +
		`{"class_name":"InputLayer","config":{"batch_shape":[null,1],"dtype":"float32","name":"in"}},` +
		`{"class_name":"Dense","config":{"name":"d","units":1,"activation":"linear","kernel_initializer":"ones","bias_initializer":"zeros"}}]}},` +
		`"compile": {"optimizer": "sgd", "loss": "binary_crossentropy", "metrics": ["accuracy", {"class_name": "AUC", "config": {"name": "auc", "num_thresholds": 20}}]}}`
	if err := os.WriteFile(specFile, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := gokernel.ParseSpec([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	m, err := gokernel.NewModel(s)
	if err != nil {
		t.Fatal(err)
	}
	p := []float32{0.1, 0.9, 0.35, 0.8, 0.05, 0.6, 0.45, 0.2}
	y := []float32{0, 1, 1, 1, 0, 0, 1, 0}
	var total gokernel.Sums
	for _, part := range [][2]int{{0, 3}, {3, 8}} {
		sums, err := m.EvaluateSums(tensor.New(tensor.WithShape(part[1]-part[0], 1), tensor.WithBacking(p[part[0]:part[1]])),
			tensor.New(tensor.WithShape(part[1]-part[0], 1), tensor.WithBacking(y[part[0]:part[1]])))
		if err != nil {
			t.Fatal(err)
		}
		total = total.Add(sums)
	}
	want, err := m.Evaluate(tensor.New(tensor.WithShape(8, 1), tensor.WithBacking(p)), tensor.New(tensor.WithShape(8, 1), tensor.WithBacking(y)))
	if err != nil {
		t.Fatal(err)
	}
	sets, _ := json.Marshal([]sumSet{{Count: total.Count, Sums: total.Sums}, {Count: 0, Sums: map[string]float64{}}})
	sumsFile := filepath.Join(dir, "sums.json")
	if err := os.WriteFile(sumsFile, sets, 0o644); err != nil {
		t.Fatal(err)
	}
	info := inspect(t, "--model", specFile, "--sums", sumsFile)
	if !info.StateKeys || len(info.Results) != 2 {
		t.Fatalf("got stateKeys %v, %d results; want true, 2", info.StateKeys, len(info.Results))
	}
	for _, k := range []string{"loss", "accuracy", "auc"} {
		got := info.Results[0][k]
		// Sums of parts add in another order than one sum: the loss may
		// differ in its last bits; the AUC's counts add exactly.
		if got == nil || math.Abs(*got-want[k]) > 1e-12*math.Abs(want[k]) || (k == "auc" && *got != want[k]) {
			t.Errorf("result %s: got %v; want %v (Evaluate on all rows)", k, got, want[k])
		}
	}
	if info.Results[1]["loss"] != nil {
		t.Errorf("no rows: loss %v; want null", *info.Results[1]["loss"])
	}
	if info := inspect(t, "--model", mnistSpec); info.StateKeys || info.Results != nil {
		t.Errorf("mnist: got stateKeys %v, results %v; want none", info.StateKeys, info.Results)
	}
}

// TestInspectScheduleStep: inspect reports a schedule's name and its
// learning rate at step 0, or at --step.
func TestInspectScheduleStep(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.json")
	if err := os.WriteFile(plain, []byte(`{"class_name":"Sequential","config":{"name":"p","layers":[`+
		`{"class_name":"InputLayer","config":{"batch_shape":[null,3],"name":"in"}},`+
		`{"class_name":"Dense","config":{"name":"o","units":2,"activation":"softmax"}}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	opt := `{"class_name":"SGD","config":{"learning_rate":{"class_name":"ExponentialDecay","config":{"initial_learning_rate":0.5,"decay_steps":10,"decay_rate":0.5}}}}`
	info := inspect(t, "--model", plain, "--loss", "categorical_crossentropy", "--optimizer", opt)
	if info.Schedule != "ExponentialDecay" || info.LearningRate != 0.5 {
		t.Errorf("schedule %q, rate %v; want ExponentialDecay at 0.5", info.Schedule, info.LearningRate)
	}
	info = inspect(t, "--model", plain, "--loss", "categorical_crossentropy", "--optimizer", opt, "--step", "20")
	if info.LearningRate != 0.125 {
		t.Errorf("rate at step 20: %v; want 0.125", info.LearningRate)
	}
}
