package gokernel

import "math"

// Ftrl is keras.optimizers.Ftrl, follow-the-regularized-leader (McMahan et
// al., 2013). With learning rate η, power c = learning_rate_power, l1, l2,
// l2_shrinkage and β = beta, and gradient g, per element:
//
//	l2' = l2 + β/(2η)
//	g' = g + 2·l2_shrinkage·p
//	n' = n + g²
//	z ← z + g' − (n'^(−c) − n^(−c))/η · p
//	p ← (clip(z, −l1, l1) − z) / (n'^(−c)/η + 2·l2')
//	n ← n'
//
// Defaults: learning_rate 0.001, learning_rate_power −0.5,
// initial_accumulator_value 0.1 (n's start), l1, l2, l2_shrinkage and beta
// 0, name "ftrl". State: "iteration", "accumulator/<i>"…, "linear/<i>"….
type Ftrl struct {
	base
	power, initial, l1, l2, shrink, beta float64
	n, z                                 [][]float32
}

func newFtrl(p *argParser) *Ftrl {
	o := &Ftrl{base: base{opt: p.base("ftrl", 0.001, nil)}}
	o.power = p.float("learning_rate_power", -0.5)
	o.initial = p.float("initial_accumulator_value", 0.1)
	o.l1 = p.float("l1_regularization_strength", 0)
	o.l2 = p.float("l2_regularization_strength", 0)
	o.shrink = p.float("l2_shrinkage_regularization_strength", 0)
	o.beta = p.float("beta", 0)
	switch {
	case o.initial < 0:
		p.fail("argument initial_accumulator_value: must be >= 0, got %g", o.initial)
	case o.power > 0:
		p.fail("argument learning_rate_power: must be <= 0, got %g", o.power)
	case o.l1 < 0 || o.l2 < 0 || o.shrink < 0:
		p.fail("the regularization strengths must be >= 0, got l1 %g, l2 %g, l2 shrinkage %g", o.l1, o.l2, o.shrink)
	}
	return o
}

// Apply performs one Ftrl step; see Optimizer.
func (o *Ftrl) Apply(params, grads [][]float32) error {
	build, err := o.check(params, grads)
	if err != nil {
		return err
	}
	if build {
		o.setSizes(params)
		o.n, o.z = zeros(params, float32(o.initial)), zeros(params, 0)
	}
	o.params, o.grads = params, o.prepare(params, grads)
	o.update(o)
	o.iterations++
	return nil
}

// updateSpan applies the update rule to parameter i's elements [lo, hi).
func (o *Ftrl) updateSpan(i, lo, hi int) {
	lr := float64(o.opt.learningRate)
	l2 := o.l2 + o.beta/(2*lr)
	l1 := float32(o.l1)
	p := o.params[i][lo:hi]
	g, n, z := o.grads[i][lo:hi], o.n[i][lo:hi], o.z[i][lo:hi]
	g, n, z = g[:len(p)], n[:len(p)], z[:len(p)]
	for j := range p {
		w, gj := float64(p[j]), float64(g[j])
		g2 := gj + 2*o.shrink*w
		nn := float32(float64(n[j]) + gj*gj)
		pn := math.Pow(float64(nn), -o.power)
		zj := z[j] + float32(g2-(pn-math.Pow(float64(n[j]), -o.power))/lr*w)
		quad := pn/lr + 2*l2
		p[j] = float32(float64(min(max(zj, -l1), l1)-zj) / quad)
		n[j], z[j] = nn, zj
	}
}

// State returns "iteration", "accumulator/<i>"…, "linear/<i>"….
func (o *Ftrl) State() []NamedTensor {
	return append(append([]NamedTensor{o.iterationState()}, slotState("accumulator", o.n)...), slotState("linear", o.z)...)
}

// SetState replaces the state; see State for the entries.
func (o *Ftrl) SetState(state []NamedTensor) error {
	slots, err := o.setState(state, "accumulator", "linear")
	if err != nil {
		return err
	}
	o.n, o.z = slots[0], slots[1]
	return nil
}
