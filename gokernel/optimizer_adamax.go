package gokernel

import "math"

// Adamax is keras.optimizers.Adamax, Adam with the infinity norm. At step
// t = iterations+1, with learning rate η and gradient g:
//
//	m ← m + (g − m)(1−β₁)
//	u ← max(β₂·u, |g|)
//	p ← p − η·m/((1 − β₁ᵗ)(u + ε))
//
// Defaults: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7,
// name "adamax". State: "iteration", "momentum/<i>"…, "norm/<i>"….
type Adamax struct {
	base
	beta1, beta2, epsilon float32
	m, u                  [][]float32
	c1                    float32 // this step's 1 − β₁ᵗ
}

func newAdamax(p *argParser) *Adamax {
	o := &Adamax{base: base{opt: p.base("adamax", 0.001, nil)}}
	o.beta1 = float32(p.float("beta_1", 0.9))
	o.beta2 = float32(p.float("beta_2", 0.999))
	o.epsilon = float32(p.float("epsilon", 1e-7))
	return o
}

// Apply performs one Adamax step; see Optimizer.
func (o *Adamax) Apply(params, grads [][]float32) error {
	build, err := o.check(params, grads)
	if err != nil {
		return err
	}
	if build {
		o.setSizes(params)
		o.m, o.u = zeros(params, 0), zeros(params, 0)
	}
	o.params, o.grads = params, o.prepare(params, grads)
	o.c1 = 1 - float32(math.Pow(float64(o.beta1), float64(o.iterations+1)))
	o.update(o)
	o.iterations++
	return nil
}

// updateSpan applies the update rule to parameter i's elements [lo, hi).
func (o *Adamax) updateSpan(i, lo, hi int) {
	lr, eps, b2, c := o.opt.learningRate, o.epsilon, o.beta2, 1-o.beta1
	p := o.params[i][lo:hi]
	g, m, u := o.grads[i][lo:hi], o.m[i][lo:hi], o.u[i][lo:hi]
	g, m, u = g[:len(p)], m[:len(p)], u[:len(p)]
	for j := range p {
		gj := g[j]
		mj := m[j] + (gj-m[j])*c
		uj := max(b2*u[j], abs32(gj))
		m[j], u[j] = mj, uj
		p[j] -= lr * mj / (o.c1 * (uj + eps))
	}
}

// State returns "iteration", "momentum/<i>"…, "norm/<i>"….
func (o *Adamax) State() []NamedTensor {
	return append(append([]NamedTensor{o.iterationState()}, slotState("momentum", o.m)...), slotState("norm", o.u)...)
}

// SetState replaces the state; see State for the entries.
func (o *Adamax) SetState(state []NamedTensor) error {
	slots, err := o.setState(state, "momentum", "norm")
	if err != nil {
		return err
	}
	o.m, o.u = slots[0], slots[1]
	return nil
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }
