package gokernel

// activationLayer is Keras' Activation: y = f(x) elementwise (softmax
// over the last axis), dx = f'(x)⊙dy (see activation).
type activationLayer struct {
	act activation
}

func parseActivationLayer(c *obj) (Layer, error) {
	a, err := layerActivation(c)
	return &activationLayer{act: a}, err
}

func (l *activationLayer) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	return [][]int{s}, err
}

func (l *activationLayer) weights([][]int) []weightSpec { return nil }

func (l *activationLayer) forward(c *call) {
	l.act.forward(c.x[0], c.y[0], lastDim(c.in[0]))
}

func (l *activationLayer) backward(c *call) {
	if c.dx[0] != nil {
		l.act.backward(c.x[0], c.y[0], c.dy[0], c.dx[0], lastDim(c.in[0]))
	}
}

// lastDim is the size of a shape's last axis (1 for a scalar sample).
func lastDim(s []int) int {
	if len(s) == 0 {
		return 1
	}
	return s[len(s)-1]
}

// layerActivation reads a layer's "activation" argument (default linear).
func layerActivation(c *obj) (activation, error) {
	a, err := c.str("activation", "linear")
	if err != nil {
		return 0, err
	}
	return parseActivation(c, a)
}

// outputMasks: Activation passes its input's mask on.
func (l *activationLayer) outputMasks([]bool) []int { return passMask(1) }
