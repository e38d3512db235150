package gokernel

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// A model is a graph of layer calls. Keras writes it as a list of layers,
// each with the calls ("inbound nodes") that feed it: the tensors of a
// call are the outputs of earlier calls, named by [layer, call, output]
// (keras_history). A Sequential is the chain of its layers. A layer called
// several times shares its weights between the calls (a shared layer); a
// model inside a model is a layer whose call runs the inner graph.
//
// Parsing makes a modelDef per model (its layers and its calls in an order
// where every call comes after the calls it reads), then instantiate lays
// the calls of the outer model, and of every call of an inner one, into one
// graph of nodes over numbered tensors, inferring each tensor's shape.

// layerEntry is one layer of the model.
type layerEntry struct {
	index     int    // position in its model's Keras "layers" list
	name      string // with the names of enclosing models: "inner/dense"
	className string
	trainable bool
	layer     Layer
	calls     int     // calls laid into the graph
	inShapes  [][]int // the first call's input shapes
	weights   []weightSpec
	firstW    int // index of its first weight in the model's weights
}

func (l *layerEntry) where() string {
	return fmt.Sprintf("layer %d %q (%s)", l.index, l.name, l.className)
}

// node is one call of a layer in the graph.
type node struct {
	layer   *layerEntry
	fn      Layer // the layer as this call uses it: layer.layer, or what its call's keyword arguments made of it (see kwargsTaker)
	call    int   // which call of the layer, from 0
	in, out []int // tensor ids
	// inMask and outMask are the masks (ids into graph.masks, -1 for
	// none) the call's inputs carry when it runs and its outputs get; see
	// planMasks.
	inMask, outMask []int
	explicit        []int8 // see tmplNode
	// builtIn and builtOut are the masks as the model was built (see
	// planMasks).
	builtIn, builtOut []int
}

// tensorInfo is one tensor of the graph.
type tensorInfo struct {
	shape []int // per sample
	node  int   // producing node; -1 for a model input
	// ids marks an integer tensor: a model input whose Keras dtype is
	// int32 or int64 (token ids). It holds int32 values; see intInput.
	ids bool
}

// graph is a model's calls in execution order.
type graph struct {
	layers      []*layerEntry // every layer with weights order, nested ones flattened
	nodes       []node
	tensors     []tensorInfo
	inputs      []int // tensor ids of the model inputs, in order
	outputs     []int
	inputNames  []string
	outputNames []string
	masks       []maskInfo // the masks of the graph; see planMasks
	outMask     []int      // per model output: the mask its loss and metrics see (-1: none)
}

// ioRef names one tensor of a model being parsed: output k of call n of
// the layer named layer.
type ioRef struct {
	layer   string
	node, k int
}

// tmplNode is one call in a modelDef: of a layer, or of an inner model.
type tmplNode struct {
	entry *layerEntry
	sub   *modelDef
	where string
	in    []int // local tensor ids
	out   []int
	// shapes Keras recorded for the inputs (nil where it recorded none).
	keras [][]int
	fn    Layer // the layer as this call uses it (nil for a model)
	op    bool  // a Keras operation (see checkOperations), not laid into the graph
	// explicit says per input whether Keras recorded its mask (see
	// kwargs.mask); nil for none.
	explicit []int8
	// order lists the call's input tensors as Keras orders them (its
	// positional arguments, then its keyword arguments by name), for
	// sortKeras.
	order []int
}

// modelDef is one parsed model: Sequential or Functional.
type modelDef struct {
	name      string
	scope     string // prefix of its layers' names ("" at the top)
	layers    []*layerEntry
	inputs    []int   // local tensor ids of the inputs
	inShapes  [][]int // their shapes
	inIDs     []bool  // which inputs are integer (see tensorInfo.ids)
	inNames   []string
	nodes     []tmplNode
	nLocal    int // local tensor ids used
	outputs   []int
	outNames  []string
	trainable bool
}

// parseModelDef parses the to_json object of a Sequential or Functional
// model (class_name, config, build_config).
func parseModelDef(raw json.RawMessage, where, scope string, buildShapeOuter []int) (*modelDef, error) {
	m, err := newObj(where, raw)
	if err != nil {
		return nil, err
	}
	cls, err := m.str("class_name", "")
	if err != nil {
		return nil, err
	}
	// An inner model's own compile config plays no part in training the
	// outer one.
	m.ignore("module", "registered_name", "name", "inbound_nodes", "compile_config")
	if cls != "Sequential" && cls != "Functional" && cls != "Model" {
		return nil, m.errf("class_name %q is not supported (want Sequential or Functional)", cls)
	}
	buildShape := buildShapeOuter
	if bc := m.get("build_config"); !isNull(bc) {
		b, err := newObj(where+" build_config", bc)
		if err != nil {
			return nil, err
		}
		if s, _, err := b.shape("input_shape"); err != nil {
			return nil, err
		} else if s != nil {
			buildShape = s
		}
		if err := b.done(); err != nil {
			return nil, err
		}
	}
	c, err := newObj(where+" config", m.get("config"))
	if err != nil {
		return nil, err
	}
	if err := m.done(); err != nil {
		return nil, err
	}
	d := &modelDef{scope: scope}
	if d.name, err = c.str("name", ""); err != nil {
		return nil, err
	}
	if d.trainable, err = c.boolean("trainable", true); err != nil {
		return nil, err
	}
	if err := c.dtype(); err != nil {
		return nil, err
	}
	var rawLayers []json.RawMessage
	if err := json.Unmarshal(c.get("layers"), &rawLayers); err != nil {
		return nil, c.errf("layers: want a list: %v", err)
	}
	if cls == "Sequential" {
		bis, _, err := c.shape("build_input_shape")
		if err != nil {
			return nil, err
		}
		if buildShape == nil {
			buildShape = bis
		}
		if err := c.done(); err != nil {
			return nil, err
		}
		return d, d.parseSequential(rawLayers, buildShape)
	}
	inRefs, inNames, err := endpoints(c, "input_layers")
	if err != nil {
		return nil, err
	}
	outRefs, _, err := endpoints(c, "output_layers")
	if err != nil {
		return nil, err
	}
	if err := c.done(); err != nil {
		return nil, err
	}
	return d, d.parseFunctional(rawLayers, inRefs, inNames, outRefs)
}

// endpoints reads input_layers or output_layers: one [name, node, k], a
// list of them, or a dict of them keyed by name (in the dict's order).
func endpoints(c *obj, key string) ([]ioRef, []string, error) {
	r := c.get(key)
	bad := func() error { return c.errf("%s: want [name, node, index] entries, got %s", key, short(r)) }
	one := func(v any) (ioRef, bool) {
		l, ok := v.([]any)
		if !ok || len(l) != 3 {
			return ioRef{}, false
		}
		name, ok := l[0].(string)
		n, ok1 := l[1].(float64)
		k, ok2 := l[2].(float64)
		if !ok || !ok1 || !ok2 {
			return ioRef{}, false
		}
		return ioRef{name, int(n), int(k)}, true
	}
	dec := json.NewDecoder(strings.NewReader(string(r)))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, bad()
	}
	if d, ok := tok.(json.Delim); ok && d == '{' {
		// A dict keeps the order Keras wrote.
		var refs []ioRef
		var names []string
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, nil, bad()
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				return nil, nil, bad()
			}
			ref, ok := one(v)
			if !ok {
				return nil, nil, bad()
			}
			refs = append(refs, ref)
			names = append(names, kt.(string))
		}
		return refs, names, nil
	}
	var v any
	if err := json.Unmarshal(r, &v); err != nil {
		return nil, nil, bad()
	}
	if ref, ok := one(v); ok {
		return []ioRef{ref}, []string{ref.layer}, nil
	}
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return nil, nil, bad()
	}
	var refs []ioRef
	var names []string
	for _, e := range l {
		ref, ok := one(e)
		if !ok {
			return nil, nil, bad()
		}
		refs = append(refs, ref)
		names = append(names, ref.layer)
	}
	return refs, names, nil
}

// rawLayer is the outer object of one entry of a model's "layers".
type rawLayer struct {
	index     int
	className string
	name      string
	raw       json.RawMessage
	o         *obj // class_name, config, build_config, inbound_nodes
	buildIn   []int
}

func readRawLayer(i int, raw json.RawMessage) (*rawLayer, error) {
	l, err := newObj(fmt.Sprintf("layer %d", i), raw)
	if err != nil {
		return nil, err
	}
	cls, err := l.str("class_name", "")
	if err != nil {
		return nil, err
	}
	name := layerName(raw)
	l.where = fmt.Sprintf("layer %d %q (%s)", i, name, cls)
	l.ignore("module", "registered_name", "name")
	return &rawLayer{index: i, className: cls, name: name, raw: raw, o: l}, nil
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

// isModelClass reports whether a layer entry is itself a model.
func isModelClass(cls string) bool {
	return cls == "Sequential" || cls == "Functional" || cls == "Model"
}

// inputLayer parses an InputLayer's config and returns its shape and
// whether it is an integer input (dtype int32 or int64, as
// keras.Input(shape, dtype="int32") writes).
func inputLayer(rl *rawLayer) ([]int, bool, error) {
	rl.o.ignore("inbound_nodes", "build_config")
	c, err := newObj(rl.o.where+": config", rl.o.get("config"))
	if err != nil {
		return nil, false, err
	}
	if err := rl.o.done(); err != nil {
		return nil, false, err
	}
	c.ignore("name")
	key := "batch_shape"
	if !c.has(key) {
		key = "batch_input_shape"
	}
	shape, _, err := c.shape(key)
	if err != nil {
		return nil, false, err
	}
	if shape == nil {
		return nil, false, c.errf("no batch_shape")
	}
	ids := false
	if dt, err := c.str("dtype", "float32"); err != nil || (dt != "int32" && dt != "int64") {
		c.read["dtype"] = false
		if err := c.dtype(); err != nil {
			return nil, false, fmt.Errorf("%w (an input may also be int32 or int64)", err)
		}
	} else {
		ids = true
	}
	for _, k := range []string{"sparse", "ragged", "optional"} {
		if err := c.mustBe(k, "false"); err != nil {
			return nil, false, err
		}
	}
	return shape, ids, c.done()
}

// layer parses one layer entry that is not an InputLayer: a registered
// layer kind, or an inner model.
func (d *modelDef) layer(rl *rawLayer, buildIn []int) (*layerEntry, *modelDef, error) {
	e := &layerEntry{index: rl.index, name: d.scope + rl.name, className: rl.className}
	if isModelClass(rl.className) {
		sub, err := parseModelDef(rl.raw, rl.o.where, d.scope+rl.name+"/", buildIn)
		if err != nil {
			return nil, nil, err
		}
		sub.trainable = sub.trainable && d.trainable
		for _, l := range sub.layers {
			l.trainable = l.trainable && sub.trainable
		}
		return nil, sub, nil
	}
	c, err := newObj(rl.o.where+": config", rl.o.get("config"))
	if err != nil {
		return nil, nil, err
	}
	c.ignore("name")
	parse, ok := layerKinds[rl.className]
	if !ok {
		return nil, nil, c.errf("layer class %s is not supported (%s are)", rl.className, supportedLayers())
	}
	if e.trainable, err = c.boolean("trainable", true); err != nil {
		return nil, nil, err
	}
	e.trainable = e.trainable && d.trainable
	if err := c.dtype(); err != nil {
		return nil, nil, err
	}
	if e.layer, err = parse(c); err != nil {
		return nil, nil, err
	}
	if err := c.done(); err != nil {
		return nil, nil, err
	}
	return e, nil, nil
}

// buildConfig reads a layer's build_config input shape (nil if none; nil
// too for several inputs, whose shapes the graph gives).
func buildConfig(rl *rawLayer) ([]int, error) {
	bc := rl.o.get("build_config")
	if isNull(bc) {
		return nil, nil
	}
	b, err := newObj(rl.o.where+": build_config", bc)
	if err != nil {
		return nil, err
	}
	var s []int
	// A call with several tensor arguments (an RNN's initial_state)
	// records their shapes by argument name: the graph gives them.
	b.ignore("shapes_dict")
	if r := b.get("input_shape"); !isNull(r) {
		var v []any
		if json.Unmarshal(r, &v) == nil && len(v) > 0 {
			if _, nested := v[0].([]any); !nested {
				b.read["input_shape"] = false
				if s, _, err = b.shape("input_shape"); err != nil {
					return nil, err
				}
			}
		}
	}
	return s, b.done()
}

func (d *modelDef) newLocal() int {
	d.nLocal++
	return d.nLocal - 1
}

func (d *modelDef) parseSequential(rawLayers []json.RawMessage, buildShape []int) error {
	cur := -1
	for i, raw := range rawLayers {
		rl, err := readRawLayer(i, raw)
		if err != nil {
			return err
		}
		if rl.className == "InputLayer" {
			if i != 0 {
				return rl.o.errf("an InputLayer must come first")
			}
			shape, ids, err := inputLayer(rl)
			if err != nil {
				return err
			}
			cur = d.newLocal()
			d.inputs, d.inShapes, d.inIDs, d.inNames = []int{cur}, [][]int{shape}, []bool{ids}, []string{rl.name}
			continue
		}
		rl.o.ignore("inbound_nodes")
		buildIn, err := buildConfig(rl)
		if err != nil {
			return err
		}
		if cur < 0 {
			// A Sequential without an InputLayer: Keras records the input
			// shape in the build config.
			shape := buildShape
			if shape == nil {
				shape = buildIn
			}
			if shape == nil {
				return rl.o.errf("the model's input shape is unknown (no InputLayer and no build_input_shape)")
			}
			cur = d.newLocal()
			d.inputs, d.inShapes, d.inIDs, d.inNames = []int{cur}, [][]int{shape}, []bool{false}, []string{d.name + "_input"}
		}
		e, sub, err := d.layer(rl, buildIn)
		if err != nil {
			return err
		}
		n := tmplNode{entry: e, sub: sub, where: rl.o.where, in: []int{cur}, order: []int{cur}, keras: [][]int{buildIn}}
		if e != nil {
			n.fn = e.layer
		}
		if sub != nil {
			d.layers = append(d.layers, sub.layers...)
			if len(sub.outputs) != 1 {
				return rl.o.errf("a model with %d outputs inside a Sequential", len(sub.outputs))
			}
		} else {
			d.layers = append(d.layers, e)
		}
		cur = d.newLocal()
		n.out = []int{cur}
		d.nodes = append(d.nodes, n)
	}
	if cur < 0 {
		return fmt.Errorf("gokernel: spec: the model has no layers")
	}
	d.outputs = []int{cur}
	last := d.name
	if len(d.nodes) > 0 {
		last = layerName(rawLayers[len(rawLayers)-1])
	}
	d.outNames = []string{last}
	return nil
}

// pendingCall is a Functional call waiting for its inputs.
type pendingCall struct {
	rl    *rawLayer
	e     *layerEntry
	sub   *modelDef
	node  int // call index
	where string
	site  *callSite
	op    bool // a Keras operation
}

// inputDecl is one InputLayer of a Functional model.
type inputDecl struct {
	shape []int
	ids   bool
}

func (d *modelDef) parseFunctional(rawLayers []json.RawMessage, inRefs []ioRef, inNames []string, outRefs []ioRef) error {
	local := map[ioRef]int{}
	var pending []*pendingCall
	seen := map[string]bool{}
	inputLayers := map[string]inputDecl{}
	for i, raw := range rawLayers {
		rl, err := readRawLayer(i, raw)
		if err != nil {
			return err
		}
		if seen[rl.name] {
			return rl.o.errf("a second layer named %q", rl.name)
		}
		seen[rl.name] = true
		if rl.className == "InputLayer" {
			shape, ids, err := inputLayer(rl)
			if err != nil {
				return err
			}
			inputLayers[rl.name] = inputDecl{shape, ids}
			continue
		}
		var nodes []json.RawMessage
		if err := json.Unmarshal(rl.o.get("inbound_nodes"), &nodes); err != nil {
			return rl.o.errf("inbound_nodes: want a list, got %s", short(rl.o.m["inbound_nodes"]))
		}
		if isOperation(rl) {
			// A Keras operation (keras.src.ops): Keras records the
			// computations of the masks it passes to layers as such
			// calls; see maskOps.
			for k, raw := range nodes {
				site, err := callArgs(rl.o.where, raw, true)
				if err != nil {
					return err
				}
				pending = append(pending, &pendingCall{rl: rl, node: k, where: rl.o.where, site: site, op: true})
			}
			continue
		}
		buildIn, err := buildConfig(rl)
		if err != nil {
			return err
		}
		e, sub, err := d.layer(rl, buildIn)
		if err != nil {
			return err
		}
		if sub != nil {
			d.layers = append(d.layers, sub.layers...)
		} else {
			d.layers = append(d.layers, e)
		}
		for k, raw := range nodes {
			where := rl.o.where
			if len(nodes) > 1 {
				where += fmt.Sprintf(" call %d", k)
			}
			site, err := callArgs(where, raw, false)
			if err != nil {
				return err
			}
			if e != nil {
				site.fn = e.layer
			}
			if err := site.apply(); err != nil {
				return err
			}
			if sub != nil && site.explicit != nil {
				return fmt.Errorf("gokernel: %s: a mask passed into a model inside the model is not supported", where)
			}
			pending = append(pending, &pendingCall{rl: rl, e: e, sub: sub, node: k, where: where, site: site})
		}
	}
	for i, r := range inRefs {
		decl, ok := inputLayers[r.layer]
		if !ok || r.node != 0 || r.k != 0 {
			return fmt.Errorf("gokernel: model %q: input %v is not an InputLayer of the model", d.name, r)
		}
		id := d.newLocal()
		local[r] = id
		d.inputs = append(d.inputs, id)
		d.inShapes = append(d.inShapes, decl.shape)
		d.inIDs = append(d.inIDs, decl.ids)
		d.inNames = append(d.inNames, inNames[i])
	}
	// Lay the calls in an order where each comes after what it reads: the
	// Keras order of the layers, a call waiting until its inputs exist;
	// sortKeras then puts them in the order Keras runs them.
	for len(pending) > 0 {
		progress := false
		rest := pending[:0]
		for _, p := range pending {
			var in, order []int
			ready := true
			for _, r := range p.site.order {
				id, ok := local[r]
				if !ok {
					ready = false
					break
				}
				order = append(order, id)
			}
			if !ready {
				rest = append(rest, p)
				continue
			}
			for _, r := range p.site.refs {
				in = append(in, local[r])
			}
			progress = true
			n := tmplNode{entry: p.e, sub: p.sub, where: p.where, in: in, order: order, keras: p.site.shapes, fn: p.site.fn, op: p.op, explicit: p.site.explicit}
			if p.op {
				n.where = fmt.Sprintf("%s (the Keras operation %s)", p.where, p.rl.className)
			}
			outs := 1
			if p.sub != nil {
				outs = len(p.sub.outputs)
			} else if mo, ok := p.site.fn.(multiOutput); ok {
				outs = mo.outputs()
			}
			for k := 0; k < outs; k++ {
				id := d.newLocal()
				n.out = append(n.out, id)
				local[ioRef{p.rl.name, p.node, k}] = id
			}
			d.nodes = append(d.nodes, n)
		}
		pending = rest
		if !progress {
			p := pending[0]
			for _, r := range p.site.order {
				if _, ok := local[r]; !ok {
					return fmt.Errorf("gokernel: %s: its input [%q, %d, %d] is not the output of any layer call of the model (or the graph has a cycle)", p.where, r.layer, r.node, r.k)
				}
			}
		}
	}
	for _, r := range outRefs {
		id, ok := local[r]
		if !ok {
			return fmt.Errorf("gokernel: model %q: output [%q, %d, %d] is not the output of any layer call", d.name, r.layer, r.node, r.k)
		}
		d.outputs = append(d.outputs, id)
		d.outNames = append(d.outNames, r.layer)
	}
	if len(d.inputs) == 0 {
		return fmt.Errorf("gokernel: model %q has no inputs", d.name)
	}
	if err := d.checkOperations(); err != nil {
		return err
	}
	d.sortKeras()
	return nil
}

// isOperation reports whether a layer entry is a Keras operation
// (keras.ops.not_equal and friends called on Keras tensors) rather than a
// layer.
func isOperation(rl *rawLayer) bool {
	var module string
	_ = json.Unmarshal(rl.o.m["module"], &module)
	return strings.HasPrefix(module, "keras.src.ops")
}

// checkOperations refuses a Keras operation whose output is used as data:
// the kernel supports operations only as the mask computations Keras
// records (see planMasks), which it does not need to run.
func (d *modelDef) checkOperations() error {
	op := make([]string, d.nLocal)
	for _, tn := range d.nodes {
		if tn.op {
			for _, t := range tn.out {
				op[t] = tn.where
			}
		}
	}
	for _, tn := range d.nodes {
		if tn.op {
			continue
		}
		for _, t := range tn.in {
			if op[t] != "" {
				return fmt.Errorf("gokernel: %s: its input is the output of %s: Keras operations on tensors are supported only as the mask computations Keras records", tn.where, op[t])
			}
		}
	}
	for _, t := range d.outputs {
		if op[t] != "" {
			return fmt.Errorf("gokernel: model %q: its output is the output of %s: Keras operations on tensors are not supported", d.name, op[t])
		}
	}
	return nil
}

// callSite is one inbound node of a layer: the tensors of the call and
// its keyword arguments.
type callSite struct {
	where string
	// refs are the call's input tensors: those among its positional
	// arguments (a merge layer takes a list of them), then those of the
	// keyword arguments its layer reads (see kwargs.tensor), in that
	// order; shapes are the shapes Keras recorded for them.
	refs   []ioRef
	shapes [][]int
	// order lists the same tensors as Keras orders them: its positional
	// arguments, then its keyword arguments sorted by name (as
	// keras.tree.flatten does), for sortKeras.
	order []ioRef
	kw    *obj
	fn    Layer // the layer as this call uses it (nil for a model)
	// explicit says, per input, whether Keras recorded the mask the call
	// gets (see maskExplicit); nil when it recorded none.
	explicit []int8
}

// multiOutput is implemented by the layer kinds whose calls have several
// outputs (an RNN with return_state): outputs is their number.
type multiOutput interface {
	outputs() int
}

// kerasTensorRef reads a serialized Keras tensor ({"class_name":
// "__keras_tensor__", ...}): the layer call that makes it and its shape
// without the batch axis (-1 for an unknown dimension).
func kerasTensorRef(v any) (ioRef, []int, bool) {
	t, ok := v.(map[string]any)
	if !ok || t["class_name"] != "__keras_tensor__" {
		return ioRef{}, nil, false
	}
	cfg, _ := t["config"].(map[string]any)
	h, _ := cfg["keras_history"].([]any)
	if len(h) != 3 {
		return ioRef{}, nil, false
	}
	name, ok := h[0].(string)
	nd, ok1 := h[1].(float64)
	k, ok2 := h[2].(float64)
	if !ok || !ok1 || !ok2 {
		return ioRef{}, nil, false
	}
	var s []int
	if dims, ok := cfg["shape"].([]any); ok && len(dims) > 0 {
		for _, d := range dims[1:] {
			if f, ok := d.(float64); ok {
				s = append(s, int(f))
			} else {
				s = append(s, -1)
			}
		}
	}
	return ioRef{name, int(nd), int(k)}, s, true
}

// callArgs reads one inbound node: the Keras tensors among its args, in
// order (a merge layer takes a list of them), and its kwargs, which
// site.apply hands to the layer.
//
// An operation's call (lenient) may also take other values (the 0 of
// not_equal(x, 0)); they are skipped, and its kwargs too.
func callArgs(where string, raw json.RawMessage, lenient bool) (*callSite, error) {
	n, err := newObj(where+": inbound node", raw)
	if err != nil {
		return nil, err
	}
	var args []any
	if err := json.Unmarshal(n.get("args"), &args); err != nil {
		return nil, n.errf("args: want a list, got %s", short(n.m["args"]))
	}
	site := &callSite{where: where}
	var walk func(v any) error
	walk = func(v any) error {
		if l, ok := v.([]any); ok {
			for _, e := range l {
				if err := walk(e); err != nil {
					return err
				}
			}
			return nil
		}
		if ref, s, ok := kerasTensorRef(v); ok {
			site.refs = append(site.refs, ref)
			site.shapes = append(site.shapes, s)
			return nil
		}
		if lenient {
			return nil
		}
		b, _ := json.Marshal(v)
		return n.errf("call argument %s is not supported (only Keras tensors, or lists of them)", short(b))
	}
	if err := walk(args); err != nil {
		return nil, err
	}
	if len(site.refs) == 0 && !lenient {
		return nil, n.errf("the call has no input tensor")
	}
	site.order = append(site.order, site.refs...)
	if lenient {
		n.ignore("kwargs")
	} else if kw := n.get("kwargs"); !isNull(kw) {
		if site.kw, err = newObj(where+": call kwargs", kw); err != nil {
			return nil, err
		}
		names := make([]string, 0, len(site.kw.m))
		for k := range site.kw.m {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			var v any
			if json.Unmarshal(site.kw.m[k], &v) != nil {
				continue
			}
			var walk func(v any)
			walk = func(v any) {
				if l, ok := v.([]any); ok {
					for _, e := range l {
						walk(e)
					}
				} else if ref, _, ok := kerasTensorRef(v); ok {
					site.order = append(site.order, ref)
				}
			}
			walk(v)
		}
	}
	return site, n.done()
}

// kwargsTaker is implemented by the layer kinds whose calls take keyword
// arguments besides their input tensors (Keras' call kwargs: an RNN's
// initial_state, MultiHeadAttention's attention_mask and
// use_causal_mask). withKwargs reads them from k and returns the layer as
// this call uses it (a shared layer may be called with different ones).
type kwargsTaker interface {
	withKwargs(k *kwargs) (Layer, error)
}

// kwargs are the keyword arguments of one call, for kwargsTaker.
type kwargs struct {
	*obj
	site *callSite
}

// tensor reads the keyword argument name holding a Keras tensor (or
// null, or absent: -1) and returns its index among the call's inputs.
func (k *kwargs) tensor(name string) (int, error) {
	ids, err := k.tensors(name)
	if err != nil || ids == nil {
		return -1, err
	}
	if len(ids) != 1 {
		return -1, k.errf("%s: want one tensor, got %d", name, len(ids))
	}
	return ids[0], nil
}

// tensors reads the keyword argument name holding a Keras tensor or a
// list of them (nil when null or absent) and returns their indices among
// the call's inputs.
func (k *kwargs) tensors(name string) ([]int, error) {
	r := k.get(name)
	if isNull(r) {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(r, &v); err != nil {
		return nil, k.errf("%s: %v", name, err)
	}
	l, ok := v.([]any)
	if !ok {
		l = []any{v}
	}
	var ids []int
	for _, e := range l {
		ref, s, ok := kerasTensorRef(e)
		if !ok {
			return nil, k.errf("%s: want a Keras tensor or a list of them, got %s", name, short(r))
		}
		ids = append(ids, len(k.site.refs))
		k.site.refs = append(k.site.refs, ref)
		k.site.shapes = append(k.site.shapes, s)
	}
	return ids, nil
}

// apply hands the call's keyword arguments to its layer s.fn (nil for a
// model inside the model), which becomes the layer as the call uses it. Keras overrides a recorded training flag with
// the one fit and predict pass, so it carries no meaning here; a mask
// must be null (masks come from the layers that make them); anything else
// the layer does not read is refused.
func (s *callSite) apply() error {
	if s.kw == nil {
		return nil
	}
	if _, err := s.kw.boolean("training", false); err != nil {
		return err
	}
	positional := len(s.refs)
	k := &kwargs{obj: s.kw, site: s}
	if err := k.mask("mask", positional); err != nil {
		return err
	}
	if t, ok := s.fn.(kwargsTaker); ok {
		l, err := t.withKwargs(k)
		if err != nil {
			return err
		}
		s.fn = l
	}
	return s.kw.done()
}

// mask reads a recorded mask keyword argument "mask", for the call's
// positional inputs (of which there are positional): one tensor for input
// 0, or a list with one entry per input. Keras records such a mask
// (computed by operations, see checkOperations) when it passed it to the
// layer as the model was built; the call then gets that mask whatever
// mask its input carries when it runs. The kernel does not run those
// operations: their value is the mask planMasks gives the input as the
// model was built (maskExplicitBuilt).
func (k *kwargs) mask(name string, positional int) error {
	r := k.get(name)
	if isNull(r) {
		return nil
	}
	var v any
	if err := json.Unmarshal(r, &v); err != nil {
		return k.errf("%s: %v", name, err)
	}
	l, ok := v.([]any)
	if !ok {
		l = []any{v}
	}
	if len(l) > positional {
		return k.errf("%s: %d masks for %d input tensors", name, len(l), positional)
	}
	for i, e := range l {
		if e == nil {
			k.setExplicit(i, maskExplicitNone)
			continue
		}
		if _, _, ok := kerasTensorRef(e); !ok {
			return k.errf("%s: want Keras tensors (or null), got %s", name, short(r))
		}
		k.setExplicit(i, maskExplicitBuilt)
	}
	return nil
}

// maskFor reads a recorded mask keyword argument for input i (Keras'
// <arg>_mask keywords, as MultiHeadAttention's value_mask).
func (k *kwargs) maskFor(name string, i int) error {
	r := k.get(name)
	if isNull(r) {
		return nil
	}
	var v any
	if err := json.Unmarshal(r, &v); err != nil {
		return k.errf("%s: %v", name, err)
	}
	if _, _, ok := kerasTensorRef(v); !ok {
		return k.errf("%s: want a Keras tensor (or null), got %s", name, short(r))
	}
	k.setExplicit(i, maskExplicitBuilt)
	return nil
}

func (k *kwargs) setExplicit(i int, how int8) {
	for len(k.site.explicit) <= i {
		k.site.explicit = append(k.site.explicit, maskExplicitNo)
	}
	k.site.explicit[i] = how
}

// instantiate lays d's calls into g with the given input tensors (nil at
// the top: new model inputs) and returns its output tensors.
func (g *graph) instantiate(d *modelDef, inputs []int) ([]int, error) {
	ids := make([]int, d.nLocal)
	for i := range ids {
		ids[i] = -1
	}
	for i, l := range d.inputs {
		if inputs == nil {
			ids[l] = len(g.tensors)
			g.tensors = append(g.tensors, tensorInfo{shape: d.inShapes[i], node: -1, ids: d.inIDs[i]})
			g.inputs = append(g.inputs, ids[l])
			continue
		}
		if got := g.tensors[inputs[i]].shape; !slices.Equal(got, d.inShapes[i]) {
			return nil, fmt.Errorf("gokernel: model %q: input %d %q has shape %s but gets a tensor of shape %s", d.name, i, d.inNames[i], shapeStr(d.inShapes[i]), shapeStr(got))
		}
		ids[l] = inputs[i]
	}
	for _, tn := range d.nodes {
		if tn.op {
			continue
		}
		in := make([]int, len(tn.in))
		shapes := make([][]int, len(tn.in))
		for i, l := range tn.in {
			in[i] = ids[l]
			shapes[i] = g.tensors[in[i]].shape
			if k := tn.keras; i < len(k) && k[i] != nil && !shapeFits(k[i], shapes[i]) {
				return nil, fmt.Errorf("gokernel: %s: Keras recorded input %d of shape %s but the graph gives %s", tn.where, i, shapeStr(k[i]), shapeStr(shapes[i]))
			}
		}
		var outs []int
		if tn.sub != nil {
			var err error
			if outs, err = g.instantiate(tn.sub, in); err != nil {
				return nil, err
			}
		} else {
			e := tn.entry
			oshapes, err := tn.fn.outputShapes(shapes)
			if err != nil {
				return nil, fmt.Errorf("gokernel: %s: input shape %s: %v", tn.where, shapesStr(shapes), err)
			}
			ws := tn.fn.weights(shapes)
			if e.calls == 0 {
				e.inShapes, e.weights = shapes, ws
			} else if !sameWeightShapes(e.weights, ws) {
				return nil, fmt.Errorf("gokernel: %s: a shared layer called on %s after %s: its weights would differ in shape", tn.where, shapesStr(shapes), shapesStr(e.inShapes))
			}
			for _, s := range append(oshapes, wshapes(ws)...) {
				if !sizeFits(s) {
					return nil, fmt.Errorf("gokernel: %s: input shape %s: a tensor of shape %v is too large (more than 2^31 values per sample)", tn.where, shapesStr(shapes), s)
				}
			}
			nid := len(g.nodes)
			for _, s := range oshapes {
				outs = append(outs, len(g.tensors))
				g.tensors = append(g.tensors, tensorInfo{shape: s, node: nid})
			}
			g.nodes = append(g.nodes, node{layer: e, fn: tn.fn, call: e.calls, in: in, out: outs, explicit: tn.explicit})
			e.calls++
		}
		if len(outs) != len(tn.out) {
			return nil, fmt.Errorf("gokernel: %s: %d outputs, Keras refers to %d", tn.where, len(outs), len(tn.out))
		}
		for k, l := range tn.out {
			ids[l] = outs[k]
		}
	}
	out := make([]int, len(d.outputs))
	for i, l := range d.outputs {
		out[i] = ids[l]
	}
	return out, nil
}

// shapeFits reports whether a Keras-recorded shape (-1 for None) matches.
func shapeFits(keras, got []int) bool {
	if len(keras) != len(got) {
		return false
	}
	for i, d := range keras {
		if d >= 0 && d != got[i] {
			return false
		}
	}
	return true
}

func sameWeightShapes(a, b []weightSpec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i].shape, b[i].shape) {
			return false
		}
	}
	return true
}

func shapesStr(s [][]int) string {
	if len(s) == 1 {
		return shapeStr(s[0])
	}
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = shapeStr(x)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// buildGraph parses a model and lays out its graph.
func buildGraph(raw json.RawMessage) (*graph, *modelDef, error) {
	d, err := parseModelDef(raw, "model", "", nil)
	if err != nil {
		return nil, nil, err
	}
	g := &graph{}
	outs, err := g.instantiate(d, nil)
	if err != nil {
		return nil, nil, err
	}
	g.outputs = outs
	g.inputNames, g.outputNames = d.inNames, d.outNames
	for _, e := range d.layers {
		if e.calls == 0 {
			return nil, nil, fmt.Errorf("gokernel: %s is never called in the model", e.where())
		}
	}
	g.layers = d.layers
	n := 0
	for _, e := range g.layers {
		e.firstW = n
		n += len(e.weights)
	}
	if err := g.planMasks(); err != nil {
		return nil, nil, err
	}
	return g, d, nil
}

func wshapes(ws []weightSpec) [][]int {
	out := make([][]int, len(ws))
	for i, w := range ws {
		out[i] = w.shape
	}
	return out
}

// sizeFits reports whether a shape holds fewer than 2^31 values.
func sizeFits(s []int) bool {
	n := 1
	for _, d := range s {
		if d < 0 || (d > 0 && n > (1<<31-1)/d) {
			return false
		}
		n *= d
	}
	return true
}
