package gokernel

// Lion is keras.optimizers.Lion (Chen et al., 2023). With learning rate η
// and gradient g:
//
//	p ← p − η·sign(β₁·m + (1−β₁)·g)
//	m ← β₂·m + (1−β₂)·g
//
// Defaults: learning_rate 0.001, beta_1 0.9 (in (0, 1]), beta_2 0.99, name
// "lion". State: "iteration", "momentum/<i>"….
type Lion struct {
	base
	beta1, beta2 float32
	m            [][]float32
}

func newLion(p *argParser) *Lion {
	o := &Lion{base: base{opt: p.base("lion", 0.001, nil)}}
	o.beta1 = float32(p.float("beta_1", 0.9))
	o.beta2 = float32(p.float("beta_2", 0.99))
	if o.beta1 <= 0 || o.beta1 > 1 {
		p.fail("argument beta_1: must be in (0, 1], got %g", o.beta1)
	}
	return o
}

// Apply performs one Lion step; see Optimizer.
func (o *Lion) Apply(params, grads [][]float32) error {
	build, err := o.check(params, grads)
	if err != nil {
		return err
	}
	if build {
		o.setSizes(params)
		o.m = zeros(params, 0)
	}
	o.params, o.grads = params, o.prepare(params, grads)
	o.update(o)
	o.iterations++
	return nil
}

// updateSpan applies the update rule to parameter i's elements [lo, hi).
func (o *Lion) updateSpan(i, lo, hi int) {
	lr, b1, b2 := o.opt.learningRate, o.beta1, o.beta2
	p := o.params[i][lo:hi]
	g, m := o.grads[i][lo:hi], o.m[i][lo:hi]
	g, m = g[:len(p)], m[:len(p)]
	for j := range p {
		gj := g[j]
		c := m[j]*b1 + gj*(1-b1)
		switch {
		case c > 0:
			p[j] -= lr
		case c < 0:
			p[j] += lr
		}
		m[j] = m[j]*b2 + gj*(1-b2)
	}
}

// State returns "iteration", "momentum/<i>"….
func (o *Lion) State() []NamedTensor {
	return append([]NamedTensor{o.iterationState()}, slotState("momentum", o.m)...)
}

// SetState replaces the state; see State for the entries.
func (o *Lion) SetState(state []NamedTensor) error {
	slots, err := o.setState(state, "momentum")
	if err != nil {
		return err
	}
	o.m = slots[0]
	return nil
}
