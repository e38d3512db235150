package gokernel

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// Layer is the math of one Keras layer kind, parsed from its config. A
// Layer holds only its arguments: it is shared by every model built from a
// Spec and never changes. What a layer needs per model (its weights, the
// buffers of each call, the random stream) comes in a *call.
//
// Shapes are per sample, without the batch axis; activations are float32
// batches of such samples, row-major, batch first, channels last.
type Layer interface {
	// outputShapes returns the shapes of the outputs of one call on inputs
	// of the given shapes, or an error naming what does not fit. A shared
	// layer is asked once per call.
	outputShapes(in [][]int) ([][]int, error)
	// weights declares the layer's weights, in Keras' get_weights() order,
	// for the input shapes of its first call (every call of a shared layer
	// uses the same weights).
	weights(in [][]int) []weightSpec
	// forward computes c.y from c.x (c.training says which mode).
	forward(c *call)
	// backward sets c.dx[i] (the non-nil ones) from c.dy and adds the
	// weight gradients into c.dw[j] (the non-nil ones: trainable weights
	// of a trainable layer). It runs after forward on the same call and may
	// read what forward kept (c.buf, c.state) and c.y. c.dy is the layer's
	// to overwrite.
	backward(c *call)
}

// layerParser parses the arguments of one layer kind from its Keras
// config. The keys every layer has (name, trainable, dtype) are read
// before; every other key must be read (honoured) or refused by name: a
// key left unread is an error.
type layerParser func(c *obj) (Layer, error)

// layerKinds is the registry: Keras class name → parser. A new layer kind
// is one file with its type and parser, and one line here. (The wrappers,
// Bidirectional and TimeDistributed, add their line in an init of their
// file: they parse the layer they wrap through this map.)
var layerKinds = map[string]layerParser{
	"Activation":             parseActivationLayer,
	"ActivityRegularization": parseActivityReg,
	"Add":                    mergeParser(mergeAdd),
	"AdditiveAttention":      parseAdditiveAttention,
	"Attention":              parseAttention,
	"Average":                mergeParser(mergeAverage),
	"AveragePooling1D":       poolParser(1, poolAvg),
	"AveragePooling2D":       poolParser(2, poolAvg),
	"BatchNormalization":     parseBatchNorm,
	"Concatenate":            parseConcatenate,
	"Conv1D":                 convParser(1),
	"Conv1DTranspose":        convTransposeParser(1),
	"Conv2D":                 convParser(2),
	"Conv2DTranspose":        convTransposeParser(2),
	"Cropping1D":             croppingParser(1),
	"Cropping2D":             croppingParser(2),
	"Cropping3D":             croppingParser(3),
	"Dense":                  parseDense,
	"DepthwiseConv1D":        depthwiseParser(1),
	"DepthwiseConv2D":        depthwiseParser(2),
	"Dot":                    parseDot,
	"Dropout":                parseDropout,
	"ELU":                    parseELULayer,
	"Embedding":              parseEmbedding,
	"Flatten":                parseFlatten,
	"GRU":                    parseGRU,
	"GaussianDropout":        parseGaussianDropout,
	"GaussianNoise":          parseGaussianNoise,
	"GlobalAveragePooling1D": globalPoolParser(1, poolAvg),
	"GlobalAveragePooling2D": globalPoolParser(2, poolAvg),
	"GlobalMaxPooling1D":     globalPoolParser(1, poolMax),
	"GlobalMaxPooling2D":     globalPoolParser(2, poolMax),
	"GroupNormalization":     parseGroupNorm,
	"LSTM":                   parseLSTM,
	"LayerNormalization":     parseLayerNorm,
	"LeakyReLU":              parseLeakyReLU,
	"Masking":                parseMasking,
	"MaxPooling1D":           poolParser(1, poolMax),
	"MaxPooling2D":           poolParser(2, poolMax),
	"Maximum":                mergeParser(mergeMaximum),
	"Minimum":                mergeParser(mergeMinimum),
	"MultiHeadAttention":     parseMultiHeadAttention,
	"Multiply":               mergeParser(mergeMultiply),
	"Normalization":          parseNormalization,
	"PReLU":                  parsePReLU,
	"Permute":                parsePermute,
	"RMSNormalization":       parseRMSNorm,
	"ReLU":                   parseReLULayer,
	"RepeatVector":           parseRepeatVector,
	"Rescaling":              parseRescaling,
	"Reshape":                parseReshape,
	"SeparableConv1D":        separableParser(1),
	"SeparableConv2D":        separableParser(2),
	"SimpleRNN":              parseSimpleRNN,
	"Softmax":                parseSoftmaxLayer,
	"SpatialDropout1D":       spatialDropoutParser(1),
	"SpatialDropout2D":       spatialDropoutParser(2),
	"SpatialDropout3D":       spatialDropoutParser(3),
	"Subtract":               mergeParser(mergeSubtract),
	"UnitNormalization":      parseUnitNorm,
	"UpSampling1D":           upSamplingParser(1),
	"UpSampling2D":           upSamplingParser(2),
	"UpSampling3D":           upSamplingParser(3),
	"ZeroPadding1D":          zeroPaddingParser(1),
	"ZeroPadding2D":          zeroPaddingParser(2),
	"ZeroPadding3D":          zeroPaddingParser(3),
}

// supportedLayers lists the registered kinds for error messages.
func supportedLayers() string {
	names := []string{"InputLayer", "Sequential", "Functional"}
	for k := range layerKinds {
		names = append(names, k)
	}
	sort.Strings(names[3:])
	return strings.Join(names, ", ")
}

// weightSpec declares one weight of a layer.
type weightSpec struct {
	// name is Keras' variable name within the layer ("kernel", "bias",
	// "moving_mean"); the weight is named "<layer>/<name>".
	name  string
	shape []int
	init  initSpec
	reg   regSpec
	// state marks a non-trainable weight (BatchNormalization's moving
	// statistics): the forward pass in training mode may change it, the
	// optimizer never does. Every weight of a frozen layer (trainable
	// false) is non-trainable too.
	state bool
}

// fans returns Keras' fan-in and fan-out of a weight shape
// (keras.src.initializers.random_initializers.compute_fans): for a shape
// (..., in, out) with receptive field r = the product of the leading axes,
// fan_in = in·r and fan_out = out·r; a vector has fan_in = fan_out = its
// length.
func fans(shape []int) (in, out int) {
	switch len(shape) {
	case 0:
		return 1, 1
	case 1:
		return shape[0], shape[0]
	}
	r := prod(shape[:len(shape)-2])
	return shape[len(shape)-2] * r, shape[len(shape)-1] * r
}

// call is one application of a layer in a model: its shapes, the views of
// its inputs and outputs for the current batch, its weights and the buffers
// it keeps between batches.
type call struct {
	rows    int     // samples in this batch
	in, out [][]int // per-sample shapes of the inputs and outputs

	// x[i] holds rows×prod(in[i]) values. y[k] is a buffer of
	// rows×prod(out[k]) values to fill; a layer whose output equals an
	// input (Flatten, an inactive Dropout) may instead point y[k] at it.
	x, y [][]float32
	// dy[k] = ∂L/∂y[k]; dx[i] = ∂L/∂x[i] to set, nil where no gradient is
	// needed.
	dx, dy [][]float32
	// w are the layer's weights in weights() order; dw[j] their gradients
	// to add to, nil for a non-trainable weight.
	w, dw [][]float32

	// ids[i] holds the rows×prod(in[i]) int32 ids of input i where the
	// layer reads it as ids (see idTaker), else nil.
	ids [][]int32
	// mask[i] is the mask input i carries (rows×prod(in[i][:-1]) values,
	// true where the position holds data), nil for none; maskOut[k] is the
	// buffer of the mask the layer computes for output k (nil unless its
	// masker said maskComputed). See mask.go.
	mask, maskOut [][]bool

	training bool // the forward pass runs in training mode
	frozen   bool // the layer has trainable false
	// replay asks layers that draw random numbers to reuse the draws of
	// their previous forward pass (gradient checks).
	replay  bool
	rng     *rand.Rand // this call's random stream
	threads int        // goroutines a matrix product may use

	bufs    [][]float32
	ints    [][]int32
	scratch *[]float32 // shared by every call of the model
	state   any        // whatever else the layer keeps per call
	par     *callJobs  // reusable parallel jobs

	entry *layerEntry
}

// layer returns the call's layer.
func (c *call) layer() Layer { return c.entry.layer }

// buf returns the call's float buffer i with n values, allocated the first
// time it is needed at that size and kept for later batches: a layer keeps
// what its backward pass needs there. Its contents are what the layer
// left.
func (c *call) buf(i, n int) []float32 {
	for len(c.bufs) <= i {
		c.bufs = append(c.bufs, nil)
	}
	if cap(c.bufs[i]) < n {
		c.bufs[i] = make([]float32, n)
	}
	return c.bufs[i][:n]
}

// intBuf is buf for int32 values (pooling's argmax positions).
func (c *call) intBuf(i, n int) []int32 {
	for len(c.ints) <= i {
		c.ints = append(c.ints, nil)
	}
	if cap(c.ints[i]) < n {
		c.ints[i] = make([]int32, n)
	}
	return c.ints[i][:n]
}

// shared returns n values of scratch memory shared by every call of the
// model: valid until the layer returns (convolution's patch matrices).
func (c *call) shared(n int) []float32 {
	if cap(*c.scratch) < n {
		*c.scratch = make([]float32, n)
	}
	return (*c.scratch)[:n]
}

// n returns the number of values of output k in this batch.
func (c *call) n(k int) int { return c.rows * prod(c.out[k]) }

// oneInput checks that a layer that takes one tensor got one.
func oneInput(in [][]int) ([]int, error) {
	if len(in) != 1 {
		return nil, fmt.Errorf("takes one input tensor, got %d", len(in))
	}
	return in[0], nil
}

// seeded is implemented by layers that draw random numbers with a seed of
// their own (Keras' seed argument); it is mixed into the call's stream.
type seeded interface {
	seed() (int64, bool)
}

// lossAdder is implemented by layers that add a term to the loss, as
// Keras' add_loss does (ActivityRegularization): addedLoss returns the term
// for the batch of the call's last forward pass, training or inference,
// and the layer's backward adds its gradient into c.dx.
type lossAdder interface {
	addedLoss(c *call) float64
}

// shapeStr writes a per-sample shape the way Keras prints it, with the
// batch axis: (None, 28, 28, 1).
func shapeStr(s []int) string {
	var b strings.Builder
	b.WriteString("(None")
	for _, d := range s {
		fmt.Fprintf(&b, ", %d", d)
	}
	b.WriteString(")")
	return b.String()
}

// refuse checks that each key is absent or null: an argument the kernel
// does not implement.
func refuse(c *obj, keys ...string) error {
	for _, k := range keys {
		if err := c.mustBe(k); err != nil {
			return err
		}
	}
	return nil
}

// errorf is fmt.Errorf for the shape errors of a layer; the graph adds
// the package prefix and the layer.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// parseInner parses the layer a wrapper's config holds under key (a
// serialized layer: {"class_name", "config", ...}), of a registered kind,
// and returns it with its name and class.
func parseInner(c *obj, key string) (Layer, string, string, error) {
	o, err := newObj(c.where+": "+key, c.get(key))
	if err != nil {
		return nil, "", "", err
	}
	cls, err := o.str("class_name", "")
	if err != nil {
		return nil, "", "", err
	}
	o.ignore("module", "registered_name", "build_config", "compile_config")
	cfg, err := newObj(c.where+": "+key+" "+cls, o.get("config"))
	if err != nil {
		return nil, "", "", err
	}
	if err := o.done(); err != nil {
		return nil, "", "", err
	}
	name, err := cfg.str("name", "")
	if err != nil {
		return nil, "", "", err
	}
	parse, ok := layerKinds[cls]
	if !ok {
		return nil, "", "", cfg.errf("layer class %s is not supported (%s are)", cls, supportedLayers())
	}
	if tr, err := cfg.boolean("trainable", true); err != nil {
		return nil, "", "", err
	} else if !tr {
		return nil, "", "", cfg.errf("a frozen layer (trainable false) inside %s is not supported: freeze the wrapper", c.where)
	}
	if err := cfg.dtype(); err != nil {
		return nil, "", "", err
	}
	l, err := parse(cfg)
	if err != nil {
		return nil, "", "", err
	}
	return l, name, cls, cfg.done()
}

// subCall returns a call of an inner layer of c's layer (a wrapper's),
// kept in *p between batches: it shares c's settings, random stream and
// scratch; the wrapper sets its shapes, views and weights.
func subCall(p **call, c *call, nIn, nOut int) *call {
	if *p == nil {
		*p = &call{x: make([][]float32, nIn), dx: make([][]float32, nIn), y: make([][]float32, nOut), dy: make([][]float32, nOut),
			ids: make([][]int32, nIn), mask: make([][]bool, nIn), maskOut: make([][]bool, nOut)}
	}
	s := *p
	s.rows, s.training, s.frozen, s.replay, s.rng, s.threads, s.scratch = c.rows, c.training, c.frozen, c.replay, c.rng, c.threads, c.scratch
	return s
}
