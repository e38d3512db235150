package gokernel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Spec is a parsed Keras 3 model description: the JSON that model.to_json()
// writes for a Sequential or Functional model (any graph of supported
// layers, with several inputs and outputs, shared layers and models inside
// models), plus the training configuration (optimizer, losses, metrics) if
// one was given.
//
// A Spec keeps the JSON it was parsed from, so MarshalJSON gives back what
// Keras wrote (compacted) and a Keras user can load it with
// keras.models.model_from_json. A Spec is immutable.
type Spec struct {
	model   json.RawMessage // the to_json object, compacted, without compile_config
	compile json.RawMessage // the compile config, compacted; nil if none

	className string
	name      string
	graph     *graph

	// From the compile config.
	optimizer json.RawMessage
	heads     []headSpec // per output; nil without a compile config
	loss      *lossSpec  // output 0's loss (nil without one)
	metrics   []metricSpec
}

// IO is one input or output of a model: its Keras name and its shape
// without the batch axis.
type IO struct {
	Name  string
	Shape []int
	// IDs marks an integer input (Keras dtype int32 or int64): token ids,
	// which the kernel carries as int32 (see the package documentation).
	IDs bool
	// IDLimit is, for an input that Embeddings read directly, the number
	// of ids they take (the smallest input_dim): every id must lie in
	// [0, IDLimit); 0 for an input no Embedding reads directly.
	IDLimit int
}

// ParseSpec parses a Keras 3 model description. data is either the text of
// model.to_json() (a top-level "compile_config", as in a .keras archive's
// config.json, is read as the compile config), or an object
//
//	{"model": <model.to_json() object>, "compile": <model.get_compile_config()>}
//
// whose compile part holds "optimizer" (the Keras optimizer serialization
// {"class_name": "Adam", "config": {...}} or a plain name like "adam";
// default "rmsprop" as in Keras' compile), "loss" (a name like
// "categorical_crossentropy" or a serialized loss object) and "metrics" (a
// list of names); an explicit "compile" replaces a "compile_config" inside
// the model. Anything outside the supported subset (see the package
// documentation) is an error naming it and the layer's index and name.
func ParseSpec(data []byte) (*Spec, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("gokernel: spec is not a JSON object: %w", err)
	}
	var modelRaw, compileRaw json.RawMessage
	if _, ok := top["model"]; ok {
		for k := range top {
			if k != "model" && k != "compile" {
				return nil, fmt.Errorf("gokernel: spec: unknown top-level key %q (want \"model\" and \"compile\")", k)
			}
		}
		modelRaw, compileRaw = top["model"], top["compile"]
		if isNull(compileRaw) {
			compileRaw = nil
		}
	} else {
		modelRaw = data
	}
	var model map[string]json.RawMessage
	if err := json.Unmarshal(modelRaw, &model); err != nil {
		return nil, fmt.Errorf("gokernel: spec: model is not a JSON object: %w", err)
	}
	if cc, ok := model["compile_config"]; ok {
		delete(model, "compile_config")
		if !isNull(cc) && compileRaw == nil {
			compileRaw = cc
		}
		var err error
		if modelRaw, err = json.Marshal(model); err != nil {
			return nil, fmt.Errorf("gokernel: spec: %w", err)
		}
	}
	s := &Spec{}
	var err error
	if s.model, err = compact(modelRaw); err != nil {
		return nil, err
	}
	if err := s.parseModel(s.model); err != nil {
		return nil, err
	}
	if compileRaw != nil {
		if s.compile, err = compact(compileRaw); err != nil {
			return nil, err
		}
		if err := s.parseCompile(s.compile); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// MarshalJSON writes the spec in the form ParseSpec reads: the plain
// model.to_json() object if the spec has no compile config, else
// {"model": ..., "compile": ...}. ParseSpec(MarshalJSON()) gives an equal
// Spec.
func (s *Spec) MarshalJSON() ([]byte, error) {
	if s.compile == nil {
		return append([]byte(nil), s.model...), nil
	}
	var b bytes.Buffer
	b.WriteString(`{"model":`)
	b.Write(s.model)
	b.WriteString(`,"compile":`)
	b.Write(s.compile)
	b.WriteString(`}`)
	return b.Bytes(), nil
}

// WithCompile returns a copy of s with the compile config replaced by the
// given optimizer serialization (nil: "rmsprop"), loss name and metric names.
func (s *Spec) WithCompile(optimizer []byte, loss string, metrics []string) (*Spec, error) {
	cc := map[string]any{"loss": loss, "metrics": metrics}
	if optimizer != nil {
		cc["optimizer"] = json.RawMessage(optimizer)
	}
	if metrics == nil {
		cc["metrics"] = []string{}
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

// Name is the model's Keras name.
func (s *Spec) Name() string { return s.name }

// InputDim is the flattened width of the model's first input: the product
// of its shape without the batch axis.
func (s *Spec) InputDim() int { return prod(s.InputShape()) }

// InputShape is the first input's shape without the batch axis, as Keras
// declares it.
func (s *Spec) InputShape() []int {
	return append([]int(nil), s.graph.tensors[s.graph.inputs[0]].shape...)
}

// OutputDim is the flattened width of the model's first output.
func (s *Spec) OutputDim() int { return prod(s.graph.tensors[s.graph.outputs[0]].shape) }

// Inputs are the model's inputs in Keras' order, named after their
// InputLayers.
func (s *Spec) Inputs() []IO {
	out := make([]IO, len(s.graph.inputs))
	bounds := s.graph.idBounds()
	for i, t := range s.graph.inputs {
		out[i] = IO{Name: s.graph.inputNames[i], Shape: append([]int(nil), s.graph.tensors[t].shape...), IDs: s.graph.tensors[t].ids,
			IDLimit: bounds[i].n}
	}
	return out
}

// Outputs are the model's outputs in Keras' order, named as Keras'
// model.output_names names them (after the layers that make them).
func (s *Spec) Outputs() []IO {
	out := make([]IO, len(s.graph.outputs))
	for i, t := range s.graph.outputs {
		out[i] = IO{Name: s.graph.outputNames[i], Shape: append([]int(nil), s.graph.tensors[t].shape...)}
	}
	return out
}

// HasCompile reports whether the spec carries a compile config.
func (s *Spec) HasCompile() bool { return s.compile != nil }

// Loss is the loss name as Keras' function names it
// ("categorical_crossentropy", "mean_squared_error", ...); "" without a
// compile config.
func (s *Spec) Loss() string {
	if s.loss == nil {
		return ""
	}
	return s.loss.kind.String()
}

// Metrics are the metric names as the History keys show them; for a model
// with several outputs, "<output>_<metric>".
func (s *Spec) Metrics() []string {
	var out []string
	for _, h := range s.heads {
		for _, m := range h.metrics {
			out = append(out, h.metricKey(m, len(s.heads)))
		}
	}
	return out
}

// OptimizerConfig is the optimizer serialization from the compile config,
// ready for NewOptimizer; nil without a compile config.
func (s *Spec) OptimizerConfig() []byte { return append([]byte(nil), s.optimizer...) }

func prod(shape []int) int {
	p := 1
	for _, d := range shape {
		p *= d
	}
	return p
}

func isNull(r json.RawMessage) bool {
	return len(bytes.TrimSpace(r)) == 0 || string(bytes.TrimSpace(r)) == "null"
}

func compact(r json.RawMessage) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, r); err != nil {
		return nil, fmt.Errorf("gokernel: spec: %w", err)
	}
	return b.Bytes(), nil
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// obj reads the keys of one JSON object and reports those left unread, so
// that nothing is silently ignored.
type obj struct {
	where string
	m     map[string]json.RawMessage
	read  map[string]bool
}

func newObj(where string, raw json.RawMessage) (*obj, error) {
	o := &obj{where: where, read: map[string]bool{}}
	if err := json.Unmarshal(raw, &o.m); err != nil || o.m == nil {
		return nil, fmt.Errorf("gokernel: %s: want a JSON object, got %s", where, short(raw))
	}
	return o, nil
}

func short(r json.RawMessage) string {
	s := string(bytes.TrimSpace(r))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

func (o *obj) errf(format string, args ...any) error {
	return fmt.Errorf("gokernel: %s: %s", o.where, fmt.Sprintf(format, args...))
}

// get returns the raw value of key (nil if absent) and marks it read.
func (o *obj) get(key string) json.RawMessage {
	o.read[key] = true
	return o.m[key]
}

func (o *obj) has(key string) bool { _, ok := o.m[key]; return ok }

func (o *obj) str(key string, def string) (string, error) {
	r := o.get(key)
	if isNull(r) {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", o.errf("%s: want a string, got %s", key, short(r))
	}
	return s, nil
}

func (o *obj) num(key string, def float64) (float64, error) {
	r := o.get(key)
	if isNull(r) {
		return def, nil
	}
	var f float64
	if err := json.Unmarshal(r, &f); err != nil {
		return 0, o.errf("%s: want a number, got %s", key, short(r))
	}
	return f, nil
}

func (o *obj) integer(key string) (int64, bool, error) {
	r := o.get(key)
	if isNull(r) {
		return 0, false, nil
	}
	var f float64
	if err := json.Unmarshal(r, &f); err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false, o.errf("%s: want an integer, got %s", key, short(r))
	}
	return int64(f), true, nil
}

func (o *obj) boolean(key string, def bool) (bool, error) {
	r := o.get(key)
	if isNull(r) {
		return def, nil
	}
	var b bool
	if err := json.Unmarshal(r, &b); err != nil {
		return false, o.errf("%s: want true or false, got %s", key, short(r))
	}
	return b, nil
}

// mustBe checks that key is absent, null or one of the allowed JSON values.
func (o *obj) mustBe(key string, allowed ...string) error {
	r := o.get(key)
	if isNull(r) {
		return nil
	}
	for _, a := range allowed {
		if jsonEqual(r, json.RawMessage(a)) {
			return nil
		}
	}
	return o.errf("%s %s is not supported", key, short(r))
}

// ignore marks keys that carry no meaning for the math.
func (o *obj) ignore(keys ...string) {
	for _, k := range keys {
		o.read[k] = true
	}
}

// done reports the keys left unread.
func (o *obj) done() error {
	var left []string
	for k := range o.m {
		if !o.read[k] {
			left = append(left, k)
		}
	}
	if len(left) == 0 {
		return nil
	}
	sort.Strings(left)
	return o.errf("unsupported key(s) %s", strings.Join(left, ", "))
}

// shape reads a Keras shape list like [null, 28, 28] into its dimensions
// without the leading batch axis.
func (o *obj) shape(key string) ([]int, bool, error) {
	r := o.get(key)
	if isNull(r) {
		return nil, false, nil
	}
	var dims []*float64
	if err := json.Unmarshal(r, &dims); err != nil || len(dims) < 2 {
		return nil, false, o.errf("%s: want a shape like [null, 784], got %s", key, short(r))
	}
	var out []int
	for i, d := range dims[1:] {
		if d == nil || *d < 1 || *d != math.Trunc(*d) || *d > 1<<31 {
			return nil, false, o.errf("%s %s: dimension %d must be a positive integer", key, short(r), i+1)
		}
		out = append(out, int(*d))
	}
	if !sizeFits(out) {
		return nil, false, o.errf("%s %s: more than 2^31 values per sample", key, short(r))
	}
	return out, true, nil
}

// dtype checks a dtype or DTypePolicy value for float32.
func (o *obj) dtype() error {
	r := o.get("dtype")
	if isNull(r) {
		return nil
	}
	var name string
	if json.Unmarshal(r, &name) != nil {
		p, err := newObj(o.where+": dtype", r)
		if err != nil {
			return err
		}
		cls, _ := p.str("class_name", "")
		if cls != "DTypePolicy" && cls != "FloatDTypePolicy" {
			return o.errf("dtype policy %q is not supported (float32 only)", cls)
		}
		p.ignore("module", "registered_name")
		c, err := newObj(o.where+": dtype config", p.get("config"))
		if err != nil {
			return err
		}
		if name, err = c.str("name", ""); err != nil {
			return err
		}
		if err := c.done(); err != nil {
			return err
		}
		if err := p.done(); err != nil {
			return err
		}
	}
	if name != "float32" {
		return o.errf("dtype %q is not supported (float32 only)", name)
	}
	return nil
}

func (s *Spec) parseModel(raw json.RawMessage) error {
	var err error
	var top struct {
		ClassName string `json:"class_name"`
		Config    struct {
			Name string `json:"name"`
		} `json:"config"`
	}
	_ = json.Unmarshal(raw, &top)
	s.className, s.name = top.ClassName, top.Config.Name
	s.graph, _, err = buildGraph(raw)
	return err
}
