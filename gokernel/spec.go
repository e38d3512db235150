package gokernel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Spec is a parsed Keras 3 model description: the JSON that model.to_json()
// writes for a Sequential or a single-chain Functional model, plus the
// training configuration (optimizer, loss, metrics) if one was given.
//
// A Spec keeps the JSON it was parsed from, so MarshalJSON gives back what
// Keras wrote (compacted) and a Keras user can load it with
// keras.models.model_from_json. A Spec is immutable.
type Spec struct {
	model   json.RawMessage // the to_json object, compacted, without compile_config
	compile json.RawMessage // the compile config, compacted; nil if none

	className  string
	name       string
	inputShape []int // without the batch axis
	layers     []layerSpec

	// From the compile config.
	optimizer json.RawMessage
	loss      *lossSpec
	metrics   []metricSpec
}

// layerKind is what a layer computes.
type layerKind int

const (
	kindDense layerKind = iota
	kindActivation
	kindDropout
	kindFlatten
)

// layerSpec is one layer of the chain after the InputLayer.
type layerSpec struct {
	index     int // position in the Keras "layers" list
	name      string
	className string
	kind      layerKind
	inShape   []int
	outShape  []int

	// Dense
	units                int
	useBias              bool
	kernelInit, biasInit initSpec
	kernelReg, biasReg   regSpec
	act                  activation // Dense and Activation

	// Dropout
	rate    float64
	seed    int64
	hasSeed bool
}

func (l *layerSpec) where() string {
	return fmt.Sprintf("layer %d %q (%s)", l.index, l.name, l.className)
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
	if err := s.parseModel(model); err != nil {
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

// InputDim is the flattened input width: the product of the input shape
// without the batch axis.
func (s *Spec) InputDim() int { return prod(s.inputShape) }

// InputShape is the input shape without the batch axis, as Keras declares it.
func (s *Spec) InputShape() []int { return append([]int(nil), s.inputShape...) }

// OutputDim is the width of the model's output.
func (s *Spec) OutputDim() int {
	if len(s.layers) == 0 {
		return s.InputDim()
	}
	return prod(s.layers[len(s.layers)-1].outShape)
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

// Metrics are the metric names as the History keys show them.
func (s *Spec) Metrics() []string {
	out := make([]string, len(s.metrics))
	for i, m := range s.metrics {
		out[i] = m.name
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
		if d == nil || *d < 1 || *d != math.Trunc(*d) {
			return nil, false, o.errf("%s %s: dimension %d must be a positive integer", key, short(r), i+1)
		}
		out = append(out, int(*d))
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

func (s *Spec) parseModel(model map[string]json.RawMessage) error {
	raw, _ := json.Marshal(model)
	m, err := newObj("model", raw)
	if err != nil {
		return err
	}
	if s.className, err = m.str("class_name", ""); err != nil {
		return err
	}
	m.ignore("module", "registered_name")
	if s.className != "Sequential" && s.className != "Functional" && s.className != "Model" {
		return m.errf("class_name %q is not supported (want Sequential or Functional)", s.className)
	}
	c, err := newObj("model config", m.get("config"))
	if err != nil {
		return err
	}
	var buildShape []int
	if bc := m.get("build_config"); !isNull(bc) {
		b, err := newObj("model build_config", bc)
		if err != nil {
			return err
		}
		if buildShape, _, err = b.shape("input_shape"); err != nil {
			return err
		}
		if err := b.done(); err != nil {
			return err
		}
	}
	if err := m.done(); err != nil {
		return err
	}
	if s.name, err = c.str("name", ""); err != nil {
		return err
	}
	if err := c.mustBe("trainable", "true"); err != nil {
		return err
	}
	if err := c.dtype(); err != nil {
		return err
	}
	var rawLayers []json.RawMessage
	if err := json.Unmarshal(c.get("layers"), &rawLayers); err != nil {
		return c.errf("layers: want a list: %v", err)
	}
	if s.className == "Sequential" {
		bis, _, err := c.shape("build_input_shape")
		if err != nil {
			return err
		}
		if buildShape == nil {
			buildShape = bis
		}
		if err := c.done(); err != nil {
			return err
		}
		return s.parseChain(rawLayers, seqOrder(len(rawLayers)), buildShape)
	}
	order, err := functionalOrder(c, rawLayers)
	if err != nil {
		return err
	}
	if err := c.done(); err != nil {
		return err
	}
	return s.parseChain(rawLayers, order, nil)
}

func seqOrder(n int) []int {
	o := make([]int, n)
	for i := range o {
		o[i] = i
	}
	return o
}

// functionalOrder checks that a Functional graph is one chain from its one
// input to its one output and returns the layer indices along it.
func functionalOrder(c *obj, rawLayers []json.RawMessage) ([]int, error) {
	endpoint := func(key string) (string, error) {
		r := c.get(key)
		var flat []any
		if err := json.Unmarshal(r, &flat); err != nil || len(flat) == 0 {
			return "", c.errf("%s: want [name, 0, 0], got %s", key, short(r))
		}
		if inner, ok := flat[0].([]any); ok {
			if len(flat) != 1 {
				return "", c.errf("%s: %d tensors: only one input and one output are supported", key, len(flat))
			}
			flat = inner
		}
		name, ok := flat[0].(string)
		if !ok || len(flat) != 3 {
			return "", c.errf("%s: want [name, 0, 0], got %s", key, short(r))
		}
		return name, nil
	}
	in, err := endpoint("input_layers")
	if err != nil {
		return nil, err
	}
	out, err := endpoint("output_layers")
	if err != nil {
		return nil, err
	}
	byName := map[string]int{}
	next := map[string]int{} // layer name -> index of the layer consuming it
	for i, raw := range rawLayers {
		l, err := newObj(fmt.Sprintf("layer %d", i), raw)
		if err != nil {
			return nil, err
		}
		name, _ := l.str("name", "")
		byName[name] = i
		var nodes []json.RawMessage
		if err := json.Unmarshal(l.m["inbound_nodes"], &nodes); err != nil {
			return nil, l.errf("inbound_nodes: want a list, got %s", short(l.m["inbound_nodes"]))
		}
		if len(nodes) == 0 {
			continue
		}
		where := fmt.Sprintf("layer %d %q", i, name)
		if len(nodes) > 1 {
			return nil, fmt.Errorf("gokernel: %s: called %d times (shared layers are not supported)", where, len(nodes))
		}
		n, err := newObj(where+": inbound node", nodes[0])
		if err != nil {
			return nil, err
		}
		var args []json.RawMessage
		if err := json.Unmarshal(n.get("args"), &args); err != nil || len(args) != 1 {
			return nil, n.errf("want exactly one input tensor, got %s (multi-branch graphs are not supported)", short(n.m["args"]))
		}
		var kt struct {
			ClassName string `json:"class_name"`
			Config    struct {
				KerasHistory []any `json:"keras_history"`
			} `json:"config"`
		}
		if err := json.Unmarshal(args[0], &kt); err != nil || kt.ClassName != "__keras_tensor__" || len(kt.Config.KerasHistory) != 3 {
			return nil, n.errf("input %s is not a Keras tensor of one layer (multi-branch graphs are not supported)", short(args[0]))
		}
		from, _ := kt.Config.KerasHistory[0].(string)
		if kw := n.get("kwargs"); !isNull(kw) {
			k, err := newObj(where+": call kwargs", kw)
			if err != nil {
				return nil, err
			}
			// Keras overrides a recorded training flag with the one fit and
			// predict pass, so it carries no meaning here.
			if _, err := k.boolean("training", false); err != nil {
				return nil, err
			}
			if err := k.done(); err != nil {
				return nil, err
			}
		}
		if err := n.done(); err != nil {
			return nil, err
		}
		if j, dup := next[from]; dup {
			return nil, fmt.Errorf("gokernel: %s: the output of %q also feeds layer %d (multi-branch graphs are not supported)", where, from, j)
		}
		next[from] = i
	}
	start, ok := byName[in]
	if !ok {
		return nil, c.errf("input layer %q is not among the layers", in)
	}
	order := []int{start}
	for cur := in; cur != out; {
		i, ok := next[cur]
		if !ok {
			return nil, c.errf("output layer %q is not reachable from input %q in one chain", out, in)
		}
		order = append(order, i)
		cur = layerName(rawLayers[i])
	}
	if len(order) != len(rawLayers) {
		return nil, c.errf("%d of %d layers are not on the chain from %q to %q (multi-branch graphs are not supported)", len(rawLayers)-len(order), len(rawLayers), in, out)
	}
	return order, nil
}

func layerName(raw json.RawMessage) string {
	var l struct {
		Name   string `json:"name"`
		Config struct {
			Name string `json:"name"`
		} `json:"config"`
	}
	_ = json.Unmarshal(raw, &l)
	if l.Name != "" {
		return l.Name
	}
	return l.Config.Name
}

// parseChain parses the layers in chain order and infers their shapes.
func (s *Spec) parseChain(rawLayers []json.RawMessage, order []int, buildShape []int) error {
	var shape []int
	for pos, i := range order {
		raw := rawLayers[i]
		l, err := newObj(fmt.Sprintf("layer %d", i), raw)
		if err != nil {
			return err
		}
		cls, err := l.str("class_name", "")
		if err != nil {
			return err
		}
		name := layerName(raw)
		l.where = fmt.Sprintf("layer %d %q (%s)", i, name, cls)
		l.ignore("module", "registered_name", "name", "inbound_nodes")
		var buildIn []int
		if bc := l.get("build_config"); !isNull(bc) {
			b, err := newObj(l.where+": build_config", bc)
			if err != nil {
				return err
			}
			if buildIn, _, err = b.shape("input_shape"); err != nil {
				return err
			}
			if err := b.done(); err != nil {
				return err
			}
		}
		c, err := newObj(l.where+": config", l.get("config"))
		if err != nil {
			return err
		}
		if err := l.done(); err != nil {
			return err
		}
		c.ignore("name")
		if cls == "InputLayer" {
			if pos != 0 {
				return c.errf("an InputLayer must come first")
			}
			key := "batch_shape"
			if !c.has(key) {
				key = "batch_input_shape"
			}
			if shape, _, err = c.shape(key); err != nil {
				return err
			}
			if shape == nil {
				return c.errf("no batch_shape")
			}
			if err := c.dtype(); err != nil {
				return err
			}
			for _, k := range []string{"sparse", "ragged", "optional"} {
				if err := c.mustBe(k, "false"); err != nil {
					return err
				}
			}
			if err := c.done(); err != nil {
				return err
			}
			continue
		}
		if shape == nil {
			// A Sequential without an InputLayer: Keras records the input
			// shape in the build config.
			switch {
			case buildShape != nil:
				shape = buildShape
			case buildIn != nil:
				shape = buildIn
			default:
				return c.errf("the model's input shape is unknown (no InputLayer and no build_input_shape)")
			}
		}
		if buildIn != nil && !slices.Equal(buildIn, shape) {
			return c.errf("build_config input_shape %v does not match the shape %v flowing into it", buildIn, shape)
		}
		ls := layerSpec{index: i, name: name, className: cls, inShape: append([]int(nil), shape...)}
		if err := c.mustBe("trainable", "true"); err != nil {
			return err
		}
		if err := c.dtype(); err != nil {
			return err
		}
		switch cls {
		case "Dense":
			err = parseDense(c, &ls)
		case "Activation":
			ls.kind = kindActivation
			var a string
			if a, err = c.str("activation", "linear"); err == nil {
				ls.act, err = parseActivation(c, a)
			}
			ls.outShape = ls.inShape
		case "Dropout":
			ls.kind = kindDropout
			ls.outShape = ls.inShape
			err = parseDropout(c, &ls)
		case "Flatten":
			ls.kind = kindFlatten
			ls.outShape = []int{prod(ls.inShape)}
			var df string
			if df, err = c.str("data_format", "channels_last"); err == nil && df != "channels_last" && !(df == "channels_first" && len(ls.inShape) == 1) {
				err = c.errf("data_format %q is not supported", df)
			}
		default:
			return c.errf("layer class %s is not supported (InputLayer, Dense, Activation, Dropout, Flatten are)", cls)
		}
		if err != nil {
			return err
		}
		if err := c.done(); err != nil {
			return err
		}
		shape = ls.outShape
		s.layers = append(s.layers, ls)
		if s.inputShape == nil {
			s.inputShape = ls.inShape
		}
	}
	if s.inputShape == nil {
		if shape == nil {
			return fmt.Errorf("gokernel: spec: the model has no layers")
		}
		s.inputShape = shape
	}
	return nil
}

func parseDense(c *obj, ls *layerSpec) error {
	ls.kind = kindDense
	if len(ls.inShape) != 1 {
		return c.errf("input shape %v: Dense on a rank-%d input is not supported (add a Flatten before it)", ls.inShape, len(ls.inShape)+1)
	}
	units, ok, err := c.integer("units")
	if err != nil {
		return err
	}
	if !ok || units < 1 {
		return c.errf("units must be a positive integer")
	}
	ls.units = int(units)
	ls.outShape = []int{ls.units}
	a, err := c.str("activation", "linear")
	if err != nil {
		return err
	}
	if ls.act, err = parseActivation(c, a); err != nil {
		return err
	}
	if ls.useBias, err = c.boolean("use_bias", true); err != nil {
		return err
	}
	if ls.kernelInit, err = parseInit(c, "kernel_initializer", "glorot_uniform"); err != nil {
		return err
	}
	if ls.biasInit, err = parseInit(c, "bias_initializer", "zeros"); err != nil {
		return err
	}
	if ls.kernelReg, err = parseReg(c, "kernel_regularizer"); err != nil {
		return err
	}
	if ls.biasReg, err = parseReg(c, "bias_regularizer"); err != nil {
		return err
	}
	for _, k := range []string{"activity_regularizer", "kernel_constraint", "bias_constraint", "quantization_config", "lora_rank"} {
		if err := c.mustBe(k); err != nil {
			return err
		}
	}
	c.ignore("lora_alpha") // meaningful only with lora_rank, which must be null
	return nil
}

func parseDropout(c *obj, ls *layerSpec) error {
	var err error
	if ls.rate, err = c.num("rate", 0); err != nil {
		return err
	}
	if ls.rate < 0 || ls.rate >= 1 {
		return c.errf("rate %v must be in [0, 1)", ls.rate)
	}
	if ls.seed, ls.hasSeed, err = c.integer("seed"); err != nil {
		return err
	}
	return c.mustBe("noise_shape")
}
