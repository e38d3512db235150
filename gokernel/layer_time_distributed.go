package gokernel

import "fmt"

// timeDistributed is Keras' TimeDistributed: its layer applied to every
// step of a sequence on its own, with one set of weights:
//
//	y[:, t] = layer(x[:, t])   for t = 1…T
//
// The rows × T steps of the batch go through the layer as one batch of
// rows·T samples (row-major, they are the same memory), so the layer must
// treat its samples independently (Dense, a convolution, Dropout, ...;
// not BatchNormalization, which TimeDistributed refuses). The output
// carries the input's mask, as in Keras; the layer inside gets none (Keras
// would hand it the mask of one step, which none of the layers that read
// masks takes).
type timeDistributed struct {
	inner Layer
	name  string
	cls   string
}

func init() { layerKinds["TimeDistributed"] = parseTimeDistributed }

func parseTimeDistributed(c *obj) (Layer, error) {
	inner, name, cls, err := parseInner(c, "layer")
	if err != nil {
		return nil, err
	}
	if cls == "BatchNormalization" {
		return nil, c.errf("BatchNormalization inside TimeDistributed is not supported (its batch statistics would mix the steps)")
	}
	if _, ok := inner.(multiOutput); ok {
		return nil, c.errf("%s inside TimeDistributed is not supported", cls)
	}
	if _, ok := inner.(idTaker); ok {
		return nil, c.errf("%s inside TimeDistributed is not supported", cls)
	}
	return &timeDistributed{inner: inner, name: name, cls: cls}, nil
}

func (l *timeDistributed) seed() (int64, bool) {
	if s, ok := l.inner.(seeded); ok {
		return s.seed()
	}
	return 0, false
}

func (l *timeDistributed) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if len(s) < 2 {
		return nil, fmt.Errorf("TimeDistributed needs an input of shape (batch, steps, ...)")
	}
	out, err := l.inner.outputShapes([][]int{s[1:]})
	if err != nil {
		return nil, fmt.Errorf("its %s: %v", l.cls, err)
	}
	return [][]int{append([]int{s[0]}, out[0]...)}, nil
}

func (l *timeDistributed) weights(in [][]int) []weightSpec {
	ws := l.inner.weights([][]int{in[0][1:]})
	for i := range ws {
		ws[i].name = l.name + "/" + ws[i].name
	}
	return ws
}

// outputMasks: the output carries the input's mask.
func (l *timeDistributed) outputMasks([]bool) []int { return passMask(1) }

// sub returns the inner layer's call for this batch.
func (l *timeDistributed) sub(c *call) *call {
	p, _ := c.state.(*call)
	s := subCall(&p, c, 1, 1)
	c.state = s
	T := c.in[0][0]
	s.rows = c.rows * T
	if s.in == nil {
		s.in, s.out = [][]int{c.in[0][1:]}, [][]int{c.out[0][1:]}
	}
	s.w, s.dw = c.w, c.dw
	s.x[0], s.y[0] = c.x[0], c.y[0]
	return s
}

func (l *timeDistributed) forward(c *call) {
	s := l.sub(c)
	l.inner.forward(s)
	c.y[0] = s.y[0]
}

func (l *timeDistributed) backward(c *call) {
	s, _ := c.state.(*call)
	s.dx[0], s.dy[0] = c.dx[0], c.dy[0]
	s.y[0] = c.y[0]
	l.inner.backward(s)
}
