package gokernel

import (
	"math"

	"github.com/gophas/gophas/gokernel/internal/vec"
)

// Adam is keras.optimizers.Adam, and keras.optimizers.AdamW when weight decay
// is set. At step t = iterations+1, with learning rate η and gradient g:
//
//	α ← η·√(1−β₂ᵗ)/(1−β₁ᵗ)
//	m ← m + (g − m)·(1−β₁)
//	v ← v + (g² − v)·(1−β₂)
//	v̂ ← max(v̂, v)                        (amsgrad; then v̂ is used for v)
//	p ← p − m·α/(√v + ε)
//
// Moments that turn subnormal are set to zero, as TensorFlow's
// flush-to-zero CPU mode does (see package vec).
//
// Weight decay wd, when set, first does p ← p − p·wd·η (see base.prepare).
// Defaults: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7,
// amsgrad false, name "adam"; AdamW adds weight_decay 0.004, name "adam_w".
// State: "iteration", "momentum/<i>" per parameter, "velocity/<i>" per
// parameter, and with amsgrad "velocity_hat/<i>" per parameter.
type Adam struct {
	base
	beta1, beta2, epsilon float32
	amsgrad               bool
	m, v, vhat            [][]float32
	alpha                 float32 // this step's η·√(1−β₂ᵗ)/(1−β₁ᵗ)
}

func newAdam(p *argParser, name string, defWD *float32) *Adam {
	o := &Adam{base: base{opt: p.base(name, 0.001, defWD)}}
	o.beta1 = float32(p.float("beta_1", 0.9))
	o.beta2 = float32(p.float("beta_2", 0.999))
	o.epsilon = float32(p.float("epsilon", 1e-7))
	o.amsgrad = p.bool("amsgrad", false)
	return o
}

// Apply performs one Adam step; see Optimizer.
func (o *Adam) Apply(params, grads [][]float32) error {
	build, err := o.check(params, grads)
	if err != nil {
		return err
	}
	if build {
		o.setSizes(params)
		o.m, o.v = zeros(params, 0), zeros(params, 0)
		if o.amsgrad {
			o.vhat = zeros(params, 0)
		}
	}
	o.params, o.grads = params, o.prepare(params, grads)
	t := float64(o.iterations + 1)
	b1p := float32(math.Pow(float64(o.beta1), t))
	b2p := float32(math.Pow(float64(o.beta2), t))
	o.alpha = o.opt.learningRate * float32(math.Sqrt(float64(1-b2p))) / (1 - b1p)
	o.update(o)
	o.iterations++
	return nil
}

// updateSpan applies the update rule to parameter i's elements [lo, hi).
func (o *Adam) updateSpan(i, lo, hi int) {
	alpha, eps := o.alpha, o.epsilon
	c1, c2 := 1-o.beta1, 1-o.beta2
	p := o.params[i][lo:hi]
	g, m, v := o.grads[i][lo:hi], o.m[i][lo:hi], o.v[i][lo:hi]
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	if o.amsgrad {
		vh := o.vhat[i][lo:hi]
		vh = vh[:len(p)]
		for j := range p {
			gj := g[j]
			mj := vec.FlushSubnormal(m[j] + (gj-m[j])*c1)
			vj := vec.FlushSubnormal(v[j] + (gj*gj-v[j])*c2)
			m[j], v[j] = mj, vj
			h := max(vh[j], vj)
			vh[j] = h
			p[j] -= mj * alpha / (sqrt32(h) + eps)
		}
		return
	}
	vec.Adam(p, g, m, v, c1, c2, alpha, eps)
}

func (o *Adam) kinds() []string {
	if o.amsgrad {
		return []string{"momentum", "velocity", "velocity_hat"}
	}
	return []string{"momentum", "velocity"}
}

// State returns "iteration", "momentum/<i>"…, "velocity/<i>"… and, with
// amsgrad, "velocity_hat/<i>"….
func (o *Adam) State() []NamedTensor {
	s := append([]NamedTensor{o.iterationState()}, slotState("momentum", o.m)...)
	s = append(s, slotState("velocity", o.v)...)
	if o.amsgrad {
		s = append(s, slotState("velocity_hat", o.vhat)...)
	}
	return s
}

// SetState replaces the state; see State for the entries.
func (o *Adam) SetState(state []NamedTensor) error {
	slots, err := o.setState(state, o.kinds()...)
	if err != nil {
		return err
	}
	o.m, o.v = slots[0], slots[1]
	if o.amsgrad {
		o.vhat = slots[2]
	}
	return nil
}

// RMSprop is keras.optimizers.RMSprop. With learning rate η, decay ρ,
// momentum μ and gradient g:
//
//	v ← ρ·v + (1−ρ)·g²
//	a ← ρ·a + (1−ρ)·g;  d ← v − a² + ε    (centered)
//	d ← v + ε                              (not centered)
//	Δ ← η·g/√d
//	μ > 0:  m ← μ·m + Δ;  p ← p − m
//	μ = 0:  p ← p − Δ
//
// Decaying slots (v, a, m) that turn subnormal are set to zero, as for Adam.
//
// Defaults: learning_rate 0.001, rho 0.9, momentum 0, epsilon 1e-7,
// centered false, name "rm_sprop". State: "iteration", "velocity/<i>"…, then
// "momentum/<i>"… when μ > 0, then "average_gradient/<i>"… when centered.
type RMSprop struct {
	base
	rho, momentum, epsilon float32
	centered               bool
	v, m, a                [][]float32
}

func newRMSprop(p *argParser) *RMSprop {
	o := &RMSprop{base: base{opt: p.base("rm_sprop", 0.001, nil)}}
	o.rho = float32(p.float("rho", 0.9))
	o.momentum = float32(p.float("momentum", 0))
	o.epsilon = float32(p.float("epsilon", 1e-7))
	o.centered = p.bool("centered", false)
	return o
}

// Apply performs one RMSprop step; see Optimizer.
func (o *RMSprop) Apply(params, grads [][]float32) error {
	build, err := o.check(params, grads)
	if err != nil {
		return err
	}
	if build {
		o.setSizes(params)
		o.v = zeros(params, 0)
		if o.momentum > 0 {
			o.m = zeros(params, 0)
		}
		if o.centered {
			o.a = zeros(params, 0)
		}
	}
	o.params, o.grads = params, o.prepare(params, grads)
	o.update(o)
	o.iterations++
	return nil
}

// updateSpan applies the update rule to parameter i's elements [lo, hi).
func (o *RMSprop) updateSpan(i, lo, hi int) {
	lr, rho, mu, eps := o.opt.learningRate, o.rho, o.momentum, o.epsilon
	p := o.params[i][lo:hi]
	g, v := o.grads[i][lo:hi], o.v[i][lo:hi]
	g, v = g[:len(p)], v[:len(p)]
	var a, m []float32
	if o.centered {
		a = o.a[i][lo:hi]
		a = a[:len(p)]
	}
	if mu > 0 {
		m = o.m[i][lo:hi]
		m = m[:len(p)]
	}
	for j := range p {
		gj := g[j]
		vj := vec.FlushSubnormal(rho*v[j] + (1-rho)*(gj*gj))
		v[j] = vj
		var d float32
		if a != nil {
			aj := vec.FlushSubnormal(rho*a[j] + (1-rho)*gj)
			a[j] = aj
			d = vj - aj*aj + eps
		} else {
			d = vj + eps
		}
		inc := lr * gj / sqrt32(d)
		if m != nil {
			mj := vec.FlushSubnormal(mu*m[j] + inc)
			m[j] = mj
			p[j] -= mj
		} else {
			p[j] -= inc
		}
	}
}

func (o *RMSprop) kinds() []string {
	k := []string{"velocity"}
	if o.momentum > 0 {
		k = append(k, "momentum")
	}
	if o.centered {
		k = append(k, "average_gradient")
	}
	return k
}

// State returns "iteration", "velocity/<i>"…, then "momentum/<i>"… when
// momentum > 0, then "average_gradient/<i>"… when centered.
func (o *RMSprop) State() []NamedTensor {
	s := append([]NamedTensor{o.iterationState()}, slotState("velocity", o.v)...)
	if o.momentum > 0 {
		s = append(s, slotState("momentum", o.m)...)
	}
	if o.centered {
		s = append(s, slotState("average_gradient", o.a)...)
	}
	return s
}

// SetState replaces the state; see State for the entries.
func (o *RMSprop) SetState(state []NamedTensor) error {
	slots, err := o.setState(state, o.kinds()...)
	if err != nil {
		return err
	}
	o.v, slots = slots[0], slots[1:]
	if o.momentum > 0 {
		o.m, slots = slots[0], slots[1:]
	}
	if o.centered {
		o.a = slots[0]
	}
	return nil
}

// Adagrad is keras.optimizers.Adagrad. With learning rate η and gradient g:
//
//	a ← a + g²            (a starts at initial_accumulator_value)
//	p ← p − η·g/√(a + ε)
//
// Defaults: learning_rate 0.001, initial_accumulator_value 0.1, epsilon 1e-7,
// name "adagrad". State: "iteration", "accumulator/<i>"….
type Adagrad struct {
	base
	initial, epsilon float32
	acc              [][]float32
}

func newAdagrad(p *argParser) *Adagrad {
	o := &Adagrad{base: base{opt: p.base("adagrad", 0.001, nil)}}
	o.initial = float32(p.float("initial_accumulator_value", 0.1))
	o.epsilon = float32(p.float("epsilon", 1e-7))
	return o
}

// Apply performs one Adagrad step; see Optimizer.
func (o *Adagrad) Apply(params, grads [][]float32) error {
	build, err := o.check(params, grads)
	if err != nil {
		return err
	}
	if build {
		o.setSizes(params)
		o.acc = zeros(params, o.initial)
	}
	o.params, o.grads = params, o.prepare(params, grads)
	o.update(o)
	o.iterations++
	return nil
}

// updateSpan applies the update rule to parameter i's elements [lo, hi).
func (o *Adagrad) updateSpan(i, lo, hi int) {
	lr, eps := o.opt.learningRate, o.epsilon
	p := o.params[i][lo:hi]
	g, a := o.grads[i][lo:hi], o.acc[i][lo:hi]
	g, a = g[:len(p)], a[:len(p)]
	for j := range p {
		gj := g[j]
		aj := a[j] + gj*gj
		a[j] = aj
		p[j] -= lr * gj / sqrt32(aj+eps)
	}
}

// State returns "iteration", "accumulator/<i>"….
func (o *Adagrad) State() []NamedTensor {
	return append([]NamedTensor{o.iterationState()}, slotState("accumulator", o.acc)...)
}

// SetState replaces the state; see State for the entries.
func (o *Adagrad) SetState(state []NamedTensor) error {
	slots, err := o.setState(state, "accumulator")
	if err != nil {
		return err
	}
	o.acc = slots[0]
	return nil
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }
