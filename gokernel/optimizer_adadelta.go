package gokernel

// Adadelta is keras.optimizers.Adadelta (Zeiler, 2012). With learning rate
// η, decay ρ and gradient g:
//
//	a ← ρ·a + (1−ρ)·g²
//	Δ = −√(d + ε)·g/√(a + ε)
//	d ← ρ·d + (1−ρ)·Δ²
//	p ← p + η·Δ
//
// Defaults: learning_rate 0.001, rho 0.95, epsilon 1e-7, name "adadelta".
// State: "iteration", "accumulated_grad/<i>"…, "accumulated_delta_var/<i>"….
type Adadelta struct {
	base
	rho, epsilon float32
	a, d         [][]float32
}

func newAdadelta(p *argParser) *Adadelta {
	o := &Adadelta{base: base{opt: p.base("adadelta", 0.001, nil)}}
	o.rho = float32(p.float("rho", 0.95))
	o.epsilon = float32(p.float("epsilon", 1e-7))
	return o
}

// Apply performs one Adadelta step; see Optimizer.
func (o *Adadelta) Apply(params, grads [][]float32) error {
	build, err := o.check(params, grads)
	if err != nil {
		return err
	}
	if build {
		o.setSizes(params)
		o.a, o.d = zeros(params, 0), zeros(params, 0)
	}
	o.params, o.grads = params, o.prepare(params, grads)
	o.update(o)
	o.iterations++
	return nil
}

// updateSpan applies the update rule to parameter i's elements [lo, hi).
func (o *Adadelta) updateSpan(i, lo, hi int) {
	lr, rho, eps := o.opt.learningRate, o.rho, o.epsilon
	p := o.params[i][lo:hi]
	g, a, d := o.grads[i][lo:hi], o.a[i][lo:hi], o.d[i][lo:hi]
	g, a, d = g[:len(p)], a[:len(p)], d[:len(p)]
	for j := range p {
		gj := g[j]
		aj := rho*a[j] + (1-rho)*(gj*gj)
		a[j] = aj
		delta := -(sqrt32(d[j]+eps) * gj / sqrt32(aj+eps))
		d[j] = rho*d[j] + (1-rho)*(delta*delta)
		p[j] += lr * delta
	}
}

// State returns "iteration", "accumulated_grad/<i>"…, "accumulated_delta_var/<i>"….
func (o *Adadelta) State() []NamedTensor {
	return append(append([]NamedTensor{o.iterationState()}, slotState("accumulated_grad", o.a)...),
		slotState("accumulated_delta_var", o.d)...)
}

// SetState replaces the state; see State for the entries.
func (o *Adadelta) SetState(state []NamedTensor) error {
	slots, err := o.setState(state, "accumulated_grad", "accumulated_delta_var")
	if err != nil {
		return err
	}
	o.a, o.d = slots[0], slots[1]
	return nil
}
