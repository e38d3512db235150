package gokernel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/gophas/gophas/gokernel/internal/vec"
)

// NamedTensor is one named float32 tensor in row-major order: a weight, or a
// piece of optimizer state. len(Data) is the product of Shape (1 for a scalar,
// whose Shape is empty).
//
// It is defined here, beside the optimizers, because the optimizers landed
// first; the model side uses the same type for Weights.
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Optimizer updates parameters from their gradients, one step at a time, with
// the update rules, argument names and defaults of Keras 3.
//
// Apply performs one step: params[i] is updated in place from grads[i]. It
// returns an error (naming the index and both sizes) when the lists or any
// pair of slices differ in length, or when the sizes differ from those the
// optimizer state was built for. The state is built on the first Apply (or by
// SetState). grads is not modified.
//
// State returns a copy of the optimizer state, see each optimizer for its
// names and order; SetState replaces it (same names, order and sizes).
//
// Name is the optimizer's Keras name (its "name" config entry).
//
// The learning rate is a constant or a Schedule (see optimizer_step.go):
// LearningRate, SetLearningRate, Step and SetStep say which rate the next
// Apply uses and let a distributed fit drive the schedule's step.
type Optimizer interface {
	Apply(params, grads [][]float32) error
	State() []NamedTensor
	SetState(state []NamedTensor) error
	Name() string
	LearningRate() float32
	SetLearningRate(rate float32) error
	Step() int64
	SetStep(step, stride int64)
}

// Errors reported by NewOptimizer and the optimizers start with this prefix.
const optPrefix = "gokernel: optimizer"

// baseOptions are the arguments every Keras 3 optimizer takes
// (keras/src/optimizers/base_optimizer.py).
type baseOptions struct {
	name           string
	learningRate   float32 // this step's rate: the constant, or the schedule's
	weightDecay    float32 // 0: none
	clipnorm       float32 // 0: none
	globalClipnorm float32 // 0: none
	clipvalue      float32 // 0: none

	schedule Schedule // nil: learningRate is constant
}

// base holds what every optimizer shares: the step counter, gradient clipping,
// weight decay, and the scratch buffers clipping writes into.
type base struct {
	opt        baseOptions
	iterations int64
	clock      stepClock   // the schedule's step when SetStep drives it
	sizes      []int       // parameter sizes the state was built for; nil until built
	scratch    [][]float32 // clipped gradients; allocated once, only when clipping is on
	gradsView  [][]float32 // the gradients the update rule reads
	params     [][]float32 // this step's parameters and gradients, for updateSpan
	grads      [][]float32
	parts      [][]span // the element ranges of each parallel part
	wg         sync.WaitGroup
}

// Name returns the optimizer's Keras name: its "name" argument, or the Keras
// default ("sgd", "adam", "adam_w", "rm_sprop", "adagrad").
func (b *base) Name() string { return b.opt.name }

// check validates params and grads against each other and against the built
// state; it reports whether the state must still be built.
func (b *base) check(params, grads [][]float32) (build bool, err error) {
	if len(params) != len(grads) {
		return false, fmt.Errorf("%s %s: %d parameters but %d gradients", optPrefix, b.opt.name, len(params), len(grads))
	}
	for i := range params {
		if len(params[i]) != len(grads[i]) {
			return false, fmt.Errorf("%s %s: parameter %d has %d values but its gradient has %d", optPrefix, b.opt.name, i, len(params[i]), len(grads[i]))
		}
	}
	if b.sizes == nil {
		return true, nil
	}
	if len(b.sizes) != len(params) {
		return false, fmt.Errorf("%s %s: state built for %d parameters, got %d", optPrefix, b.opt.name, len(b.sizes), len(params))
	}
	for i, n := range b.sizes {
		if len(params[i]) != n {
			return false, fmt.Errorf("%s %s: parameter %d has %d values but the state was built for %d", optPrefix, b.opt.name, i, len(params[i]), n)
		}
	}
	return false, nil
}

// setSizes records the parameter sizes and allocates the clipping buffers.
func (b *base) setSizes(params [][]float32) {
	b.sizes = make([]int, len(params))
	for i, p := range params {
		b.sizes[i] = len(p)
	}
	b.gradsView = make([][]float32, len(params))
	b.parts = splitSpans(b.sizes, runtime.GOMAXPROCS(0), minParallel)
	if b.opt.clipnorm > 0 || b.opt.globalClipnorm > 0 || b.opt.clipvalue > 0 {
		b.scratch = make([][]float32, len(params))
		for i, n := range b.sizes {
			b.scratch[i] = make([]float32, n)
		}
	}
}

// prepare applies clipping and weight decay, as Keras'
// _backend_apply_gradients does before the update step, and returns the
// gradients the update rule must use. At most one clipping is set:
//
//	clipnorm c:        g ← g·c / max(‖g‖₂, c)             per tensor
//	global_clipnorm c: g ← g·c·min(1/N, 1/c), N = √Σ‖g_i‖² over all tensors
//	clipvalue c:       g ← clip(g, −c, c)
//	weight_decay wd:   p ← p − p·wd·lr                    (before the update)
func (b *base) prepare(params, grads [][]float32) [][]float32 {
	o := &b.opt
	b.tick()
	view := b.gradsView
	switch {
	case o.clipnorm > 0:
		c := float64(o.clipnorm)
		for i, g := range grads {
			n := math.Sqrt(sumSquares(g))
			s := b.scratch[i]
			if n == 0 {
				copy(s, g)
			} else {
				scale := c / math.Max(n, c)
				for j, v := range g {
					s[j] = float32(float64(v) * scale)
				}
			}
			view[i] = s
		}
	case o.globalClipnorm > 0:
		c := float64(o.globalClipnorm)
		var sum float64
		for _, g := range grads {
			sum += sumSquares(g)
		}
		n := math.Sqrt(sum)
		scale := c * math.Min(1/n, 1/c)
		for i, g := range grads {
			s := b.scratch[i]
			for j, v := range g {
				s[j] = float32(float64(v) * scale)
			}
			view[i] = s
		}
	case o.clipvalue > 0:
		c := o.clipvalue
		for i, g := range grads {
			s := b.scratch[i]
			for j, v := range g {
				s[j] = min(max(v, -c), c)
			}
			view[i] = s
		}
	default:
		copy(view, grads)
	}
	if wd := o.weightDecay; wd > 0 {
		lr := o.learningRate
		for _, p := range params {
			for j, v := range p {
				p[j] = v - v*wd*lr
			}
		}
	}
	return view
}

func sumSquares(g []float32) float64 {
	var s float64
	for _, v := range g {
		s += float64(v) * float64(v)
	}
	return s
}

// iterationState is the "iteration" entry every optimizer's State starts with:
// the number of steps taken, as one float32 (exact up to 2^24 steps).
func (b *base) iterationState() NamedTensor {
	return NamedTensor{Name: "iteration", Shape: []int{}, Data: []float32{float32(b.iterations)}}
}

// slotState copies one kind of per-parameter slot into State entries named
// "<kind>/<i>".
func slotState(kind string, slots [][]float32) []NamedTensor {
	out := make([]NamedTensor, len(slots))
	for i, s := range slots {
		out[i] = NamedTensor{Name: fmt.Sprintf("%s/%d", kind, i), Shape: []int{len(s)}, Data: append([]float32(nil), s...)}
	}
	return out
}

// setState checks state against the expected slot kinds (after "iteration"),
// each with one entry per parameter, and returns the per-kind slot copies.
func (b *base) setState(state []NamedTensor, kinds ...string) ([][][]float32, error) {
	if len(state) == 0 || state[0].Name != "iteration" || len(state[0].Data) != 1 {
		return nil, fmt.Errorf("%s %s: state must start with a one-value \"iteration\" entry", optPrefix, b.opt.name)
	}
	rest := state[1:]
	if len(kinds) == 0 {
		if len(rest) != 0 {
			return nil, fmt.Errorf("%s %s: state has %d entries, want 1", optPrefix, b.opt.name, len(state))
		}
		b.iterations = int64(state[0].Data[0])
		return nil, nil
	}
	if len(rest)%len(kinds) != 0 {
		return nil, fmt.Errorf("%s %s: %d state entries after \"iteration\" is not a multiple of %d (%s)", optPrefix, b.opt.name, len(rest), len(kinds), strings.Join(kinds, ", "))
	}
	np := len(rest) / len(kinds)
	if np == 0 && b.sizes == nil {
		// The state of an optimizer that has not stepped yet (its slots are
		// built on the first Apply): only the iteration count to restore.
		b.iterations = int64(state[0].Data[0])
		return make([][][]float32, len(kinds)), nil
	}
	out := make([][][]float32, len(kinds))
	sizes := make([]int, np)
	for k, kind := range kinds {
		out[k] = make([][]float32, np)
		for i := 0; i < np; i++ {
			e := rest[k*np+i]
			if want := fmt.Sprintf("%s/%d", kind, i); e.Name != want {
				return nil, fmt.Errorf("%s %s: state entry %d is %q, want %q", optPrefix, b.opt.name, 1+k*np+i, e.Name, want)
			}
			if k == 0 {
				sizes[i] = len(e.Data)
			} else if len(e.Data) != sizes[i] {
				return nil, fmt.Errorf("%s %s: state entry %q has %d values, want %d", optPrefix, b.opt.name, e.Name, len(e.Data), sizes[i])
			}
			out[k][i] = append([]float32(nil), e.Data...)
		}
	}
	if b.sizes != nil {
		if len(b.sizes) != np {
			return nil, fmt.Errorf("%s %s: state has %d parameters, optimizer has %d", optPrefix, b.opt.name, np, len(b.sizes))
		}
		for i, n := range b.sizes {
			if sizes[i] != n {
				return nil, fmt.Errorf("%s %s: state for parameter %d has %d values, want %d", optPrefix, b.opt.name, i, sizes[i], n)
			}
		}
	}
	params := make([][]float32, np)
	for i, n := range sizes {
		params[i] = make([]float32, n)
	}
	b.setSizes(params)
	b.iterations = int64(state[0].Data[0])
	return out, nil
}

func zeros(params [][]float32, fill float32) [][]float32 {
	out := make([][]float32, len(params))
	for i, p := range params {
		s := make([]float32, len(p))
		if fill != 0 {
			for j := range s {
				s[j] = fill
			}
		}
		out[i] = s
	}
	return out
}

// NewOptimizer builds an optimizer from its Keras 3 serialization,
//
//	{"module": "keras.optimizers", "class_name": "Adam", "config": {...}, "registered_name": null}
//
// (module and registered_name optional), or from a JSON string naming it with
// default arguments: "sgd", "adam", "adamw", "rmsprop", "adagrad", "nadam",
// "adamax", "adadelta", "ftrl", "lion", "adafactor" (any case).
// Arguments missing from config take the Keras defaults. An argument Gophas
// does not support (use_ema true, loss_scale_factor,
// gradient_accumulation_steps, an unknown key) is an error naming it. The
// learning_rate may be a number or a schedule's serialization (NewSchedule).
func NewOptimizer(config []byte) (Optimizer, error) {
	config = bytes.TrimSpace(config)
	var className string
	args := map[string]json.RawMessage{}
	if len(config) > 0 && config[0] == '"' {
		if err := json.Unmarshal(config, &className); err != nil {
			return nil, fmt.Errorf("%s: %w", optPrefix, err)
		}
	} else {
		var ser struct {
			Module         *string                    `json:"module"`
			ClassName      string                     `json:"class_name"`
			Config         map[string]json.RawMessage `json:"config"`
			RegisteredName *string                    `json:"registered_name"`
		}
		dec := json.NewDecoder(bytes.NewReader(config))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ser); err != nil {
			return nil, fmt.Errorf("%s: parsing config: %w", optPrefix, err)
		}
		if ser.Module != nil && *ser.Module != "keras.optimizers" {
			return nil, fmt.Errorf("%s: module %q is not supported, want \"keras.optimizers\"", optPrefix, *ser.Module)
		}
		if ser.RegisteredName != nil && *ser.RegisteredName != ser.ClassName {
			return nil, fmt.Errorf("%s: registered_name %q is not supported", optPrefix, *ser.RegisteredName)
		}
		className = ser.ClassName
		if ser.Config != nil {
			args = ser.Config
		}
	}
	p := &argParser{args: args}
	var o Optimizer
	switch strings.ToLower(className) {
	case "sgd":
		o = newSGD(p)
	case "adam":
		o = newAdam(p, "adam", nil)
	case "adamw":
		wd := float32(0.004)
		o = newAdam(p, "adam_w", &wd)
	case "rmsprop":
		o = newRMSprop(p)
	case "adagrad":
		o = newAdagrad(p)
	case "nadam":
		o = newNadam(p)
	case "adamax":
		o = newAdamax(p)
	case "adadelta":
		o = newAdadelta(p)
	case "ftrl":
		o = newFtrl(p)
	case "lion":
		o = newLion(p)
	case "adafactor":
		o = newAdafactor(p)
	default:
		return nil, fmt.Errorf("%s: unknown optimizer %q (supported: SGD, Adam, AdamW, RMSprop, Adagrad, Nadam, Adamax, Adadelta, Ftrl, Lion, Adafactor)", optPrefix, className)
	}
	if err := p.finish(className); err != nil {
		return nil, err
	}
	return o, nil
}

// argParser reads Keras config arguments, remembering the first error and
// which keys were consumed.
type argParser struct {
	args map[string]json.RawMessage
	used map[string]bool
	err  error
}

func (p *argParser) raw(key string) (json.RawMessage, bool) {
	if p.used == nil {
		p.used = map[string]bool{}
	}
	p.used[key] = true
	v, ok := p.args[key]
	if !ok || string(bytes.TrimSpace(v)) == "null" {
		return nil, false
	}
	return v, true
}

func (p *argParser) fail(format string, a ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%s: "+format, append([]any{optPrefix}, a...)...)
	}
}

// float reads a number; absent or null gives def.
func (p *argParser) float(key string, def float64) float64 {
	v, ok := p.raw(key)
	if !ok {
		return def
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		if len(v) > 0 && v[0] == '{' {
			p.fail("argument %s: want a number, not an object (got %s)", key, v)
		} else {
			p.fail("argument %s: want a number, got %s", key, v)
		}
		return def
	}
	return f
}

// optFloat reads a number that may be absent or null (reported as ok=false).
func (p *argParser) optFloat(key string) (float64, bool) {
	if _, ok := p.raw(key); !ok {
		return 0, false
	}
	return p.float(key, 0), true
}

func (p *argParser) bool(key string, def bool) bool {
	v, ok := p.raw(key)
	if !ok {
		return def
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		p.fail("argument %s: want true or false, got %s", key, v)
		return def
	}
	return b
}

func (p *argParser) string(key, def string) string {
	v, ok := p.raw(key)
	if !ok {
		return def
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		p.fail("argument %s: want a string, got %s", key, v)
		return def
	}
	return s
}

// base reads the arguments of keras.optimizers.Optimizer. defWD is the
// default weight_decay (nil: none).
func (p *argParser) base(defName string, defLR float64, defWD *float32) baseOptions {
	o := baseOptions{name: p.string("name", defName)}
	o.learningRate, o.schedule = p.learningRate(defLR)
	if defWD != nil {
		if v, ok := p.args["weight_decay"]; ok && string(bytes.TrimSpace(v)) == "null" {
			p.fail("argument weight_decay: must be a number for %s, got null", defName)
		}
		o.weightDecay = float32(p.float("weight_decay", float64(*defWD)))
	} else if wd, ok := p.optFloat("weight_decay"); ok {
		o.weightDecay = float32(wd)
	}
	if o.weightDecay < 0 {
		p.fail("argument weight_decay: must be >= 0, got %g", o.weightDecay)
	}
	nclip := 0
	for _, c := range []struct {
		key string
		dst *float32
	}{{"clipnorm", &o.clipnorm}, {"global_clipnorm", &o.globalClipnorm}, {"clipvalue", &o.clipvalue}} {
		if v, ok := p.optFloat(c.key); ok {
			nclip++
			*c.dst = float32(v)
		}
	}
	if nclip > 1 {
		p.fail("only one of clipnorm, global_clipnorm and clipvalue may be set")
	}
	if p.bool("use_ema", false) {
		p.fail("argument use_ema: true is not supported")
	}
	p.float("ema_momentum", 0.99)         // inert without use_ema
	p.optFloat("ema_overwrite_frequency") // inert without use_ema
	if _, ok := p.optFloat("loss_scale_factor"); ok {
		p.fail("argument loss_scale_factor is not supported")
	}
	if _, ok := p.optFloat("gradient_accumulation_steps"); ok {
		p.fail("argument gradient_accumulation_steps is not supported")
	}
	if p.bool("is_legacy_optimizer", false) {
		p.fail("argument is_legacy_optimizer: true is not supported")
	}
	p.bool("jit_compile", true) // tf.keras 2.x; inert
	if d := p.float("decay", 0); d != 0 {
		p.fail("argument decay (legacy learning-rate decay) is not supported")
	}
	return o
}

// finish reports the first argument error, or else any argument no optimizer
// read.
func (p *argParser) finish(className string) error {
	if p.err != nil {
		return p.err
	}
	var unknown []string
	for k := range p.args {
		if !p.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%s %s: unsupported argument(s) %s", optPrefix, className, strings.Join(unknown, ", "))
	}
	return nil
}

// SGD is keras.optimizers.SGD: gradient descent with optional momentum.
// With learning rate η, momentum μ and gradient g:
//
//	μ = 0:      p ← p − η·g
//	otherwise:  m ← μ·m − η·g
//	            p ← p + m                 (nesterov false)
//	            p ← p + μ·m − η·g         (nesterov true)
//
// A momentum that turns subnormal is set to zero, as for Adam.
//
// Defaults: learning_rate 0.01, momentum 0, nesterov false, name "sgd".
// State: "iteration", then "momentum/<i>" per parameter when μ ≠ 0.
type SGD struct {
	base
	momentum  float32
	nesterov  bool
	momentums [][]float32
}

func newSGD(p *argParser) *SGD {
	o := &SGD{base: base{opt: p.base("sgd", 0.01, nil)}}
	o.momentum = float32(p.float("momentum", 0))
	o.nesterov = p.bool("nesterov", false)
	if o.momentum < 0 || o.momentum > 1 {
		p.fail("argument momentum: must be in [0, 1], got %g", o.momentum)
	}
	return o
}

// Apply performs one SGD step; see Optimizer.
func (o *SGD) Apply(params, grads [][]float32) error {
	build, err := o.check(params, grads)
	if err != nil {
		return err
	}
	if build {
		o.setSizes(params)
		if o.momentum != 0 {
			o.momentums = zeros(params, 0)
		}
	}
	o.params, o.grads = params, o.prepare(params, grads)
	o.update(o)
	o.iterations++
	return nil
}

// updateSpan applies the update rule to parameter i's elements [lo, hi).
func (o *SGD) updateSpan(i, lo, hi int) {
	lr, mu := o.opt.learningRate, o.momentum
	p := o.params[i][lo:hi]
	g := o.grads[i][lo:hi]
	g = g[:len(p)]
	switch {
	case mu == 0:
		for j := range p {
			p[j] -= g[j] * lr
		}
	case o.nesterov:
		m := o.momentums[i][lo:hi]
		m = m[:len(p)]
		for j := range p {
			mj := vec.FlushSubnormal(m[j]*mu - g[j]*lr)
			m[j] = mj
			p[j] += mj*mu - g[j]*lr
		}
	default:
		m := o.momentums[i][lo:hi]
		m = m[:len(p)]
		for j := range p {
			mj := vec.FlushSubnormal(m[j]*mu - g[j]*lr)
			m[j] = mj
			p[j] += mj
		}
	}
}

// State returns "iteration" and, with momentum, "momentum/<i>".
func (o *SGD) State() []NamedTensor {
	return append([]NamedTensor{o.iterationState()}, slotState("momentum", o.momentums)...)
}

// SetState replaces the state; see State for the entries.
func (o *SGD) SetState(state []NamedTensor) error {
	var kinds []string
	if o.momentum != 0 {
		kinds = []string{"momentum"}
	}
	slots, err := o.setState(state, kinds...)
	if err != nil {
		return err
	}
	if len(kinds) > 0 {
		o.momentums = slots[0]
	}
	return nil
}
