package gokernel

// lstmCell is the step of Keras' LSTM (see rnn for the sequence). With
// the kernel W, recurrent kernel U and bias b cut into the gates i, f, c,
// o (units columns each, in that order), σ the recurrent_activation
// (sigmoid) and φ the activation (tanh):
//
//	z = x·W + h'·U + b
//	i = σ(z_i),  f = σ(z_f),  g = φ(z_c),  o = σ(z_o)
//	c = f⊙c' + i⊙g,  h = o⊙φ(c)
//
// and backward, from dh and dc (the gradient reaching c from later
// steps):
//
//	dc += dh⊙o⊙φ'(c),  dc' = dc⊙f
//	dz_i = σ'·dc⊙g,  dz_f = σ'·dc⊙c',  dz_c = φ'·dc⊙i,  dz_o = σ'·dh⊙φ(c)
//	dh' = dz·Uᵀ,  dU += h'ᵀ·dz
//
// (with recurrent_dropout each gate reads h'⊙m_gate instead of h').
// unit_forget_bias starts b_f at ones.
type lstmCell struct{}

func parseLSTM(c *obj) (Layer, error) {
	l, err := parseRNN(c, "LSTM", lstmCell{}, true)
	if err != nil {
		return nil, err
	}
	if l.unitForgetBias, err = c.boolean("unit_forget_bias", true); err != nil {
		return nil, err
	}
	return l, nil
}

func (lstmCell) name() string                    { return "lstm_cell" }
func (lstmCell) gates() int                      { return 4 }
func (lstmCell) carry() bool                     { return true }
func (lstmCell) saves() int                      { return 5 } // i, f, g, o, φ(c)
func (lstmCell) biasShape(u int) []int           { return []int{4 * u} }
func (lstmCell) inputBias(b []float32) []float32 { return b }

func (lstmCell) step(l *rnn, s *rnnStep) {
	s.recProduct(l, s.z, 4*s.u, 0, 4, s.hp, 1)
	s.each(l, 0)
}

func (lstmCell) back(l *rnn, s *rnnStep) {
	s.each(l, 1)
	clear(s.dhp)
	s.recBack(l, s.dz, 4*s.u, 0, 4, s.hp, s.dhp)
}

// rows: phase 0 is step's gates and states, phase 1 back's gradients of
// the pre-activations and of c'.
func (lstmCell) rows(l *rnn, s *rnnStep, phase, lo, hi int) {
	u, G := s.u, 4
	for r := lo; r < hi; r++ {
		z := s.z[r*G*u : (r+1)*G*u]
		a := s.save[r*5*u : (r+1)*5*u]
		i, f, g, o, pc := a[:u], a[u:2*u], a[2*u:3*u], a[3*u:4*u], a[4*u:]
		cp, c := s.cp[r*u:(r+1)*u], s.c[r*u:(r+1)*u]
		if phase == 0 {
			l.recAct.forward(z[:2*u], a[:2*u], u)
			l.act.forward(z[2*u:3*u], g, u)
			l.recAct.forward(z[3*u:], o, u)
			h := s.h[r*u : (r+1)*u]
			for j := range c {
				c[j] = f[j]*cp[j] + i[j]*g[j]
			}
			l.act.forward(c, pc, u)
			for j := range h {
				h[j] = o[j] * pc[j]
			}
			continue
		}
		dh, dc := s.dh[r*u:(r+1)*u], s.dc[r*u:(r+1)*u]
		dz := s.dz[r*G*u : (r+1)*G*u]
		dcp := s.dcp[r*u : (r+1)*u]
		// dφ(c) = dh⊙o, then through φ into dc (dz_o's slot as scratch).
		tmp := dz[3*u:]
		for j := range tmp {
			tmp[j] = dh[j] * o[j]
		}
		l.act.backward(c, pc, tmp, tmp, u)
		for j := range dc {
			dc[j] += tmp[j]
		}
		for j := 0; j < u; j++ {
			dz[j] = dc[j] * g[j]      // ∂L/∂i
			dz[u+j] = dc[j] * cp[j]   // ∂L/∂f
			dz[2*u+j] = dc[j] * i[j]  // ∂L/∂g
			dz[3*u+j] = dh[j] * pc[j] // ∂L/∂o
			dcp[j] = dc[j] * f[j]
		}
		l.recAct.backward(z[:2*u], a[:2*u], dz[:2*u], dz[:2*u], u)
		l.act.backward(z[2*u:3*u], g, dz[2*u:3*u], dz[2*u:3*u], u)
		l.recAct.backward(z[3*u:], o, dz[3*u:], dz[3*u:], u)
	}
}
