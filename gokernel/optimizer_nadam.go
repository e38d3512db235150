package gokernel

import (
	"fmt"
	"math"
)

// Nadam is keras.optimizers.Nadam: Adam with Nesterov momentum (Dozat,
// 2016). At step t = iterations+1, with learning rate η, gradient g and
// μ_t = β₁(1 − ½·0.96ᵗ):
//
//	Π ← Π·μ_t                                (the product of the μ's so far)
//	m ← m + (g − m)(1−β₁)
//	v ← v + (g² − v)(1−β₂)
//	m̂ = μ_{t+1}·m/(1 − Π·μ_{t+1}) + (1−μ_t)·g/(1 − Π)
//	v̂ = v/(1 − β₂ᵗ)
//	p ← p − η·m̂/(√v̂ + ε)
//
// Defaults: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7,
// name "nadam". State: "iteration", "momentum/<i>"…, "velocity/<i>"…, then
// "u_product" (Π, one value).
type Nadam struct {
	base
	beta1, beta2, epsilon float32
	m, v                  [][]float32
	uProduct              float32
	// this step's scalars
	mt, mt1, cm, cg, cv float32
}

func newNadam(p *argParser) *Nadam {
	o := &Nadam{base: base{opt: p.base("nadam", 0.001, nil)}, uProduct: 1}
	o.beta1 = float32(p.float("beta_1", 0.9))
	o.beta2 = float32(p.float("beta_2", 0.999))
	o.epsilon = float32(p.float("epsilon", 1e-7))
	return o
}

// Apply performs one Nadam step; see Optimizer.
func (o *Nadam) Apply(params, grads [][]float32) error {
	build, err := o.check(params, grads)
	if err != nil {
		return err
	}
	if build {
		o.setSizes(params)
		o.m, o.v = zeros(params, 0), zeros(params, 0)
	}
	o.params, o.grads = params, o.prepare(params, grads)
	t := float64(o.iterations + 1)
	b1 := float64(o.beta1)
	mut := float32(b1 * (1 - 0.5*math.Pow(0.96, t)))
	mut1 := float32(b1 * (1 - 0.5*math.Pow(0.96, t+1)))
	o.uProduct *= mut
	o.mt, o.mt1 = mut, mut1
	o.cm = mut1 / (1 - o.uProduct*mut1)
	o.cg = (1 - mut) / (1 - o.uProduct)
	o.cv = 1 - float32(math.Pow(float64(o.beta2), t))
	o.update(o)
	o.iterations++
	return nil
}

// updateSpan applies the update rule to parameter i's elements [lo, hi).
func (o *Nadam) updateSpan(i, lo, hi int) {
	lr, eps := o.opt.learningRate, o.epsilon
	c1, c2 := 1-o.beta1, 1-o.beta2
	p := o.params[i][lo:hi]
	g, m, v := o.grads[i][lo:hi], o.m[i][lo:hi], o.v[i][lo:hi]
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	for j := range p {
		gj := g[j]
		mj := m[j] + (gj-m[j])*c1
		vj := v[j] + (gj*gj-v[j])*c2
		m[j], v[j] = mj, vj
		mhat := o.cm*mj + o.cg*gj
		p[j] -= mhat * lr / (sqrt32(vj/o.cv) + eps)
	}
}

// State returns "iteration", "momentum/<i>"…, "velocity/<i>"… and "u_product".
func (o *Nadam) State() []NamedTensor {
	s := append([]NamedTensor{o.iterationState()}, slotState("momentum", o.m)...)
	s = append(s, slotState("velocity", o.v)...)
	return append(s, NamedTensor{Name: "u_product", Shape: []int{}, Data: []float32{o.uProduct}})
}

// SetState replaces the state; see State for the entries.
func (o *Nadam) SetState(state []NamedTensor) error {
	n := len(state)
	if n == 0 || state[n-1].Name != "u_product" || len(state[n-1].Data) != 1 {
		return fmt.Errorf("%s %s: state must end with a one-value \"u_product\" entry", optPrefix, o.opt.name)
	}
	slots, err := o.setState(state[:n-1], "momentum", "velocity")
	if err != nil {
		return err
	}
	o.m, o.v, o.uProduct = slots[0], slots[1], state[n-1].Data[0]
	return nil
}
