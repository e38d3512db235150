package gokernel

// simpleRNNCell is the step of Keras' SimpleRNN (see rnn for the
// sequence), with φ the activation (tanh):
//
//	h = φ(x·W + h'·U + b)
//
// and backward, from dh: da = φ'·dh, dh' = da·Uᵀ, dU += h'ᵀ·da (with
// recurrent_dropout h' is h'⊙m).
type simpleRNNCell struct{}

func parseSimpleRNN(c *obj) (Layer, error) {
	return parseRNN(c, "SimpleRNN", simpleRNNCell{}, false)
}

func (simpleRNNCell) name() string                    { return "simple_rnn_cell" }
func (simpleRNNCell) gates() int                      { return 1 }
func (simpleRNNCell) carry() bool                     { return false }
func (simpleRNNCell) saves() int                      { return 0 }
func (simpleRNNCell) biasShape(u int) []int           { return []int{u} }
func (simpleRNNCell) inputBias(b []float32) []float32 { return b }

func (simpleRNNCell) step(l *rnn, s *rnnStep) {
	s.recProduct(l, s.z, s.u, 0, 1, s.hp, 1)
	s.each(l, 0)
}

func (simpleRNNCell) back(l *rnn, s *rnnStep) {
	s.each(l, 1)
	clear(s.dhp)
	s.recBack(l, s.dz, s.u, 0, 1, s.hp, s.dhp)
}

// rows: phase 0 is the activation, phase 1 its derivative.
func (simpleRNNCell) rows(l *rnn, s *rnnStep, phase, lo, hi int) {
	a, b := lo*s.u, hi*s.u
	if phase == 0 {
		l.act.forward(s.z[a:b], s.h[a:b], s.u)
		return
	}
	l.act.backward(s.z[a:b], s.h[a:b], s.dh[a:b], s.dz[a:b], s.u)
}
