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
	call    int   // which call of the layer, from 0
	in, out []int // tensor ids
}

// tensorInfo is one tensor of the graph.
type tensorInfo struct {
	shape []int // per sample
	node  int   // producing node; -1 for a model input
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
}

// modelDef is one parsed model: Sequential or Functional.
type modelDef struct {
	name      string
	scope     string // prefix of its layers' names ("" at the top)
	layers    []*layerEntry
	inputs    []int   // local tensor ids of the inputs
	inShapes  [][]int // their shapes
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

// inputLayer parses an InputLayer's config and returns its shape.
func inputLayer(rl *rawLayer) ([]int, error) {
	rl.o.ignore("inbound_nodes", "build_config")
	c, err := newObj(rl.o.where+": config", rl.o.get("config"))
	if err != nil {
		return nil, err
	}
	if err := rl.o.done(); err != nil {
		return nil, err
	}
	c.ignore("name")
	key := "batch_shape"
	if !c.has(key) {
		key = "batch_input_shape"
	}
	shape, _, err := c.shape(key)
	if err != nil {
		return nil, err
	}
	if shape == nil {
		return nil, c.errf("no batch_shape")
	}
	if err := c.dtype(); err != nil {
		return nil, err
	}
	for _, k := range []string{"sparse", "ragged", "optional"} {
		if err := c.mustBe(k, "false"); err != nil {
			return nil, err
		}
	}
	return shape, c.done()
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
			shape, err := inputLayer(rl)
			if err != nil {
				return err
			}
			cur = d.newLocal()
			d.inputs, d.inShapes, d.inNames = []int{cur}, [][]int{shape}, []string{rl.name}
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
			d.inputs, d.inShapes, d.inNames = []int{cur}, [][]int{shape}, []string{d.name + "_input"}
		}
		e, sub, err := d.layer(rl, buildIn)
		if err != nil {
			return err
		}
		n := tmplNode{entry: e, sub: sub, where: rl.o.where, in: []int{cur}, keras: [][]int{buildIn}}
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
	refs  []ioRef
	keras [][]int
}

func (d *modelDef) parseFunctional(rawLayers []json.RawMessage, inRefs []ioRef, inNames []string, outRefs []ioRef) error {
	local := map[ioRef]int{}
	var pending []*pendingCall
	seen := map[string]bool{}
	inputLayers := map[string][]int{}
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
			shape, err := inputLayer(rl)
			if err != nil {
				return err
			}
			inputLayers[rl.name] = shape
			continue
		}
		var nodes []json.RawMessage
		if err := json.Unmarshal(rl.o.get("inbound_nodes"), &nodes); err != nil {
			return rl.o.errf("inbound_nodes: want a list, got %s", short(rl.o.m["inbound_nodes"]))
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
			refs, shapes, err := callArgs(where, raw)
			if err != nil {
				return err
			}
			pending = append(pending, &pendingCall{rl: rl, e: e, sub: sub, node: k, where: where, refs: refs, keras: shapes})
		}
	}
	for i, r := range inRefs {
		shape, ok := inputLayers[r.layer]
		if !ok || r.node != 0 || r.k != 0 {
			return fmt.Errorf("gokernel: model %q: input %v is not an InputLayer of the model", d.name, r)
		}
		id := d.newLocal()
		local[r] = id
		d.inputs = append(d.inputs, id)
		d.inShapes = append(d.inShapes, shape)
		d.inNames = append(d.inNames, inNames[i])
	}
	// Lay the calls in an order where each comes after what it reads: the
	// Keras order of the layers, a call waiting until its inputs exist.
	for len(pending) > 0 {
		progress := false
		rest := pending[:0]
		for _, p := range pending {
			var in []int
			ready := true
			for _, r := range p.refs {
				id, ok := local[r]
				if !ok {
					ready = false
					break
				}
				in = append(in, id)
			}
			if !ready {
				rest = append(rest, p)
				continue
			}
			progress = true
			n := tmplNode{entry: p.e, sub: p.sub, where: p.where, in: in, keras: p.keras}
			outs := 1
			if p.sub != nil {
				outs = len(p.sub.outputs)
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
			for _, r := range p.refs {
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
	return nil
}

// callArgs reads one inbound node: the Keras tensors among its args, in
// order (a merge layer takes a list of them), and the call's kwargs, of
// which training (set again by fit and predict) and a null mask carry no
// meaning here; any other is refused.
func callArgs(where string, raw json.RawMessage) ([]ioRef, [][]int, error) {
	n, err := newObj(where+": inbound node", raw)
	if err != nil {
		return nil, nil, err
	}
	var args []any
	if err := json.Unmarshal(n.get("args"), &args); err != nil {
		return nil, nil, n.errf("args: want a list, got %s", short(n.m["args"]))
	}
	var refs []ioRef
	var shapes [][]int
	var walk func(v any) error
	walk = func(v any) error {
		switch t := v.(type) {
		case []any:
			for _, e := range t {
				if err := walk(e); err != nil {
					return err
				}
			}
			return nil
		case map[string]any:
			if t["class_name"] == "__keras_tensor__" {
				cfg, _ := t["config"].(map[string]any)
				h, _ := cfg["keras_history"].([]any)
				if len(h) == 3 {
					name, ok := h[0].(string)
					nd, ok1 := h[1].(float64)
					k, ok2 := h[2].(float64)
					if ok && ok1 && ok2 {
						refs = append(refs, ioRef{name, int(nd), int(k)})
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
						shapes = append(shapes, s)
						return nil
					}
				}
			}
		}
		b, _ := json.Marshal(v)
		return n.errf("call argument %s is not supported (only Keras tensors, or lists of them)", short(b))
	}
	if err := walk(args); err != nil {
		return nil, nil, err
	}
	if len(refs) == 0 {
		return nil, nil, n.errf("the call has no input tensor")
	}
	if kw := n.get("kwargs"); !isNull(kw) {
		k, err := newObj(where+": call kwargs", kw)
		if err != nil {
			return nil, nil, err
		}
		// Keras overrides a recorded training flag with the one fit and
		// predict pass, so it carries no meaning here.
		if _, err := k.boolean("training", false); err != nil {
			return nil, nil, err
		}
		if err := k.mustBe("mask"); err != nil {
			return nil, nil, err
		}
		if err := k.done(); err != nil {
			return nil, nil, err
		}
	}
	return refs, shapes, n.done()
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
			g.tensors = append(g.tensors, tensorInfo{shape: d.inShapes[i], node: -1})
			g.inputs = append(g.inputs, ids[l])
			continue
		}
		if got := g.tensors[inputs[i]].shape; !slices.Equal(got, d.inShapes[i]) {
			return nil, fmt.Errorf("gokernel: model %q: input %d %q has shape %s but gets a tensor of shape %s", d.name, i, d.inNames[i], shapeStr(d.inShapes[i]), shapeStr(got))
		}
		ids[l] = inputs[i]
	}
	for _, tn := range d.nodes {
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
			oshapes, err := e.layer.outputShapes(shapes)
			if err != nil {
				return nil, fmt.Errorf("gokernel: %s: input shape %s: %v", tn.where, shapesStr(shapes), err)
			}
			ws := e.layer.weights(shapes)
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
			g.nodes = append(g.nodes, node{layer: e, call: e.calls, in: in, out: outs})
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
