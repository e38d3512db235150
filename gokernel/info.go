package gokernel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// DefaultOptimizer is the optimizer of a compile config that names none,
// as Keras' compile defaults it; every entry (Spec.Compile, the Spark ML
// estimator, the Python package) uses this one.
const DefaultOptimizer = "rmsprop"

// EvaluateKeys are the keys of an evaluation's or an epoch's sums, in
// order, as Keras' History names them: "loss", then with several outputs
// each trained output's "<output>_loss", then each compiled metric (with
// several outputs "<output>_<metric>"), then the weighted metrics
// (WeightedKeys); none without a loss.
func (s *Spec) EvaluateKeys() []string {
	if !s.trains() {
		return []string{}
	}
	keys := []string{"loss"}
	if len(s.heads) > 1 {
		for _, h := range s.heads {
			if h.loss != nil {
				keys = append(keys, h.name+"_loss")
			}
		}
	}
	for _, k := range s.Metrics() {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return append(keys, s.WeightedKeys()...)
}

// trains reports whether some output has a loss.
func (s *Spec) trains() bool {
	for _, h := range s.heads {
		if h.loss != nil {
			return true
		}
	}
	return false
}

// OutputShape is the first output's shape without the batch axis.
func (s *Spec) OutputShape() []int {
	return append([]int(nil), s.graph.tensors[s.graph.outputs[0]].shape...)
}

// Classifier reports whether the loss makes the model a classifier (the
// cross-entropy losses): its output is class probabilities, one per class,
// or the probability of class 1 for one binary output. It is
// OutputClassifier(0).
func (s *Spec) Classifier() bool { return s.OutputClassifier(0) }

// OutputClassifier reports whether the loss of output j makes it a
// classifier head (a cross-entropy loss).
func (s *Spec) OutputClassifier(j int) bool {
	switch s.OutputLabelKind(j) {
	case ClassIndex, Categorical, Binary:
		return true
	}
	return false
}

// OptimizerName is the Keras name of the compile config's optimizer
// ("adam", "rmsprop", ...), DefaultOptimizer when it names none; "" without
// a compile config.
func (s *Spec) OptimizerName() string {
	if s.compile == nil {
		return ""
	}
	var name string
	if json.Unmarshal(s.optimizer, &name) == nil {
		return strings.ToLower(name)
	}
	var ser struct {
		ClassName string `json:"class_name"`
	}
	_ = json.Unmarshal(s.optimizer, &ser)
	return strings.ToLower(ser.ClassName)
}

// Info is what the Scala shim and the Python package need to know of a
// spec, so that they ask the kernel instead of re-deriving it; `gophas
// inspect` prints it (with the weights' count). The JSON names are the
// protocol's.
type Info struct {
	Name string `json:"name"`
	// InputShape and OutputShape are without the batch axis; InputDim and
	// OutputDim their products, the widths of a row's features and output.
	InputShape  []int `json:"inputShape"`
	InputDim    int   `json:"inputDim"`
	OutputShape []int `json:"outputShape"`
	OutputDim   int   `json:"outputDim"`
	// InputIDs says whether the first input holds integer ids (IO.IDs);
	// IDLimit is its IO.IDLimit: ids must lie in [0, IDLimit) (0: no
	// Embedding reads the input directly).
	InputIDs bool `json:"inputIds"`
	IDLimit  int  `json:"idLimit"`
	// Loss is the compiled loss as Keras names its function; "" without a
	// compile config or loss.
	Loss    string   `json:"loss"`
	Metrics []string `json:"metrics"`
	// EvaluateKeys are the keys of the evaluate and train outputs, in
	// order (Spec.EvaluateKeys).
	EvaluateKeys []string `json:"evaluateKeys"`
	// WeightedKeys are the evaluate keys that are weighted metrics: their
	// partial sums are divided by those of WeightKey, not by the counts
	// (Spec.WeightedKeys).
	WeightedKeys []string `json:"weightedKeys"`
	// HigherIsBetter are the evaluate keys whose larger values are better
	// (accuracies), as Keras' metrics' direction says; the losses and the
	// other metrics are better lower. Callbacks' "auto" mode reads it.
	HigherIsBetter []string `json:"higherIsBetter"`
	// LearningRate is the optimizer's learning rate: the constant, or a
	// schedule's at step 0; Schedule names the schedule ("" for a
	// constant rate), whose rate callbacks cannot set.
	LearningRate float64 `json:"learningRate"`
	Schedule     string  `json:"schedule"`
	// LabelKind and LabelWidths say what a label must be (Spec.LabelKind,
	// Spec.LabelWidths).
	LabelKind   LabelKind `json:"labelKind"`
	LabelWidths []int     `json:"labelWidths"`
	// Classifier says whether the output is class probabilities
	// (Spec.Classifier).
	Classifier bool `json:"classifier"`
	// Optimizer is the compiled optimizer's Keras name; "" without a
	// compile config. DefaultOptimizer is the one a compile config without
	// an optimizer gets.
	Optimizer        string `json:"optimizer"`
	DefaultOptimizer string `json:"defaultOptimizer"`
	// StateKeys says whether the evaluate and train sums carry metric
	// states (the "<key>[<i>]" keys of AUC, Precision, ...: Model.SumKeys),
	// whose results only the kernel computes (Model.Result, `gophas inspect
	// --sums`); without them every result is Σsum/Σcount.
	StateKeys bool `json:"stateKeys"`
	// Inputs are the model's inputs and Outputs its outputs, in Keras'
	// order: a model with several takes one column per input and one
	// label column per output (the fields above describe the first ones).
	Inputs  []InputInfo  `json:"inputs"`
	Outputs []OutputInfo `json:"outputs"`
}

// InputInfo is what a column feeding one model input must hold.
type InputInfo struct {
	// Name is the input's Keras name (its InputLayer's).
	Name string `json:"name"`
	// Shape is the input's shape without the batch axis; Dim its product,
	// the values of a row.
	Shape []int `json:"shape"`
	Dim   int   `json:"dim"`
	// IDs says whether the input holds integer ids (IO.IDs); IDLimit is
	// IO.IDLimit: ids must lie in [0, IDLimit) (0: no Embedding reads the
	// input directly).
	IDs     bool `json:"ids"`
	IDLimit int  `json:"idLimit"`
}

// OutputInfo is what one model output is and what its label column must
// hold.
type OutputInfo struct {
	// Name is the output's Keras name (model.output_names), which prefixes
	// its History keys when the model has several outputs.
	Name string `json:"name"`
	// Shape is the output's shape without the batch axis; Dim its product,
	// the values of a row's prediction.
	Shape []int `json:"shape"`
	Dim   int   `json:"dim"`
	// Loss is the output's loss as Keras names its function; "" for an
	// output without a loss, which takes no label column.
	Loss string `json:"loss"`
	// LabelKind and LabelWidths say what its label must be
	// (Spec.OutputLabelKind, Spec.OutputLabelWidths); Classes is its last
	// axis, the class count of class index labels.
	LabelKind   LabelKind `json:"labelKind"`
	LabelWidths []int     `json:"labelWidths"`
	Classes     int       `json:"classes"`
	// Classifier says whether the output is class probabilities
	// (Spec.OutputClassifier).
	Classifier bool `json:"classifier"`
}

// inputInfos returns the InputInfo of each model input.
func (s *Spec) inputInfos() []InputInfo {
	ios := s.Inputs()
	out := make([]InputInfo, len(ios))
	for i, io := range ios {
		out[i] = InputInfo{Name: io.Name, Shape: append([]int{}, io.Shape...), Dim: prod(io.Shape), IDs: io.IDs, IDLimit: io.IDLimit}
	}
	return out
}

// outputInfos returns the OutputInfo of each model output.
func (s *Spec) outputInfos() []OutputInfo {
	ios := s.Outputs()
	out := make([]OutputInfo, len(ios))
	for j, io := range ios {
		dim, _, classes := s.outputGeometry(j)
		out[j] = OutputInfo{Name: io.Name, Shape: append([]int{}, io.Shape...), Dim: dim, LabelKind: s.OutputLabelKind(j),
			LabelWidths: s.OutputLabelWidths(j), Classes: classes, Classifier: s.OutputClassifier(j)}
		if j < len(s.heads) && s.heads[j].loss != nil {
			out[j].Loss = s.heads[j].loss.kind.String()
		}
	}
	return out
}

// Info returns what the Scala shim and the Python package need to know of
// the spec.
func (s *Spec) Info() Info {
	in := s.InputShape()
	if in == nil {
		in = []int{}
	}
	first := s.Inputs()[0]
	info := Info{Name: s.Name(), InputShape: in, InputDim: s.InputDim(), OutputShape: s.OutputShape(), OutputDim: s.OutputDim(),
		InputIDs: first.IDs, IDLimit: first.IDLimit,
		Loss: s.Loss(), Metrics: append([]string{}, s.Metrics()...), EvaluateKeys: s.EvaluateKeys(),
		LabelKind: s.LabelKind(), LabelWidths: s.LabelWidths(), Classifier: s.Classifier(),
		Optimizer: s.OptimizerName(), DefaultOptimizer: DefaultOptimizer, StateKeys: s.stateKeys(),
		Inputs: s.inputInfos(), Outputs: s.outputInfos()}
	s.trainingInfo(&info)
	return info
}

// stateKeys reports whether a compiled metric keeps a state (metricState).
func (s *Spec) stateKeys() bool {
	for _, h := range s.heads {
		for _, ms := range h.metrics {
			if ms.st != nil && h.loss != nil {
				return true
			}
		}
	}
	return false
}

// CompileOptions override a spec's compile config (Spec.Compile). The zero
// value of each field keeps what the spec has.
type CompileOptions struct {
	// Loss is a Keras loss name.
	Loss string
	// Optimizer is a Keras optimizer name ("adam"), as it is or as a JSON
	// string, or its serialization (a JSON object, as
	// keras.optimizers.serialize writes it).
	Optimizer string
	// LearningRate, when above 0, sets the optimizer's learning_rate.
	LearningRate float64
	// Metrics, when not empty, replace the metrics.
	Metrics []string
}

// Compile returns a copy of s with the compile config overridden by o: the
// one place a spec's training config is edited (the Spark ML estimator's
// loss, optimizer, learningRate and metrics params come here through
// `gophas inspect`). Without an optimizer in either, the optimizer is
// DefaultOptimizer; without a loss in either, it is an error.
func (s *Spec) Compile(o CompileOptions) (*Spec, error) {
	cc := map[string]json.RawMessage{}
	if s.compile != nil {
		if err := json.Unmarshal(s.compile, &cc); err != nil {
			return nil, fmt.Errorf("gokernel: compile config: %w", err)
		}
	}
	opt := cc["optimizer"]
	if t := strings.TrimSpace(o.Optimizer); t != "" {
		if strings.HasPrefix(t, "{") || strings.HasPrefix(t, `"`) {
			opt = json.RawMessage(t)
		} else {
			opt, _ = json.Marshal(t)
		}
	}
	if isNull(opt) {
		opt, _ = json.Marshal(DefaultOptimizer)
	}
	if o.LearningRate > 0 {
		var err error
		if opt, err = withLearningRate(opt, o.LearningRate); err != nil {
			return nil, err
		}
	}
	cc["optimizer"] = opt
	if o.Loss != "" {
		cc["loss"], _ = json.Marshal(strings.TrimSpace(o.Loss))
	}
	if isNull(cc["loss"]) {
		return nil, fmt.Errorf("gokernel: compile config: no loss: give one or a spec with a compile config that has one")
	}
	if len(o.Metrics) > 0 {
		cc["metrics"], _ = json.Marshal(o.Metrics)
	}
	raw, err := json.Marshal(cc)
	if err != nil {
		return nil, fmt.Errorf("gokernel: compile config: %w", err)
	}
	wrapped, err := json.Marshal(map[string]json.RawMessage{"model": s.model, "compile": raw})
	if err != nil {
		return nil, fmt.Errorf("gokernel: compile config: %w", err)
	}
	return ParseSpec(wrapped)
}

// withLearningRate returns the optimizer serialization opt (a name or an
// object) with config.learning_rate set to lr.
func withLearningRate(opt json.RawMessage, lr float64) (json.RawMessage, error) {
	var ser map[string]json.RawMessage
	var name string
	if json.Unmarshal(opt, &name) == nil {
		ser = map[string]json.RawMessage{"class_name": opt}
	} else if err := json.Unmarshal(bytes.TrimSpace(opt), &ser); err != nil || ser == nil {
		return nil, fmt.Errorf("gokernel: compile config: optimizer %s is neither a name nor an object", short(opt))
	}
	cfg := map[string]json.RawMessage{}
	if c := ser["config"]; !isNull(c) {
		if err := json.Unmarshal(c, &cfg); err != nil {
			return nil, fmt.Errorf("gokernel: compile config: optimizer config %s is not an object", short(c))
		}
	}
	cfg["learning_rate"], _ = json.Marshal(lr)
	ser["config"], _ = json.Marshal(cfg)
	return json.Marshal(ser)
}
