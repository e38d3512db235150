package gokernel

// rescaling is Keras' Rescaling: y = x·scale + offset, with scale and
// offset numbers or arrays broadcast onto each sample as numpy broadcasts
// them (aligned with its last axes: a per-channel scale on channels-last
// images), and dx = dy·scale. (Keras reshapes an array scale for
// channels_first when the global image data format is channels_first;
// Gophas follows the channels-last default.)
type rescaling struct {
	scale, offset           []float32
	scaleShape, offsetShape []int
}

func parseRescaling(c *obj) (Layer, error) {
	l := &rescaling{}
	var ok bool
	var err error
	if l.scale, l.scaleShape, ok, err = arrayArg(c, "scale"); err != nil {
		return nil, err
	} else if !ok {
		return nil, c.errf("scale is required")
	}
	if l.offset, l.offsetShape, ok, err = arrayArg(c, "offset"); err != nil {
		return nil, err
	} else if !ok {
		l.offset, l.offsetShape = []float32{0}, []int{}
	}
	return l, nil
}

func (l *rescaling) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if err := broadcastable(s, l.scaleShape); err != nil {
		return nil, errorf("scale: %v", err)
	}
	if err := broadcastable(s, l.offsetShape); err != nil {
		return nil, errorf("offset: %v", err)
	}
	return [][]int{s}, nil
}

func (l *rescaling) weights([][]int) []weightSpec { return nil }

// expanded returns scale and offset broadcast onto one sample (made at the
// call's first batch).
func (l *rescaling) expanded(c *call) (scale, offset []float32) {
	if e, ok := c.state.([2][]float32); ok {
		return e[0], e[1]
	}
	s := c.in[0]
	n := prod(s)
	idx := make([]int32, n)
	scale, offset = make([]float32, n), make([]float32, n)
	broadcastIndex(idx, s, trimBatch(l.scaleShape))
	for i, j := range idx {
		scale[i] = l.scale[j]
	}
	broadcastIndex(idx, s, trimBatch(l.offsetShape))
	for i, j := range idx {
		offset[i] = l.offset[j]
	}
	c.state = [2][]float32{scale, offset}
	return scale, offset
}

// trimBatch drops leading axes of size 1 (the batch axis of a broadcast
// array).
func trimBatch(p []int) []int {
	for len(p) > 0 && p[0] == 1 {
		p = p[1:]
	}
	return p
}

func (l *rescaling) forward(c *call) {
	scale, offset := l.expanded(c)
	n := len(scale)
	x, y := c.x[0], c.y[0]
	for r := 0; r < c.rows; r++ {
		xs, ys := x[r*n:(r+1)*n], y[r*n:(r+1)*n]
		for i, v := range xs {
			ys[i] = v*scale[i] + offset[i]
		}
	}
}

func (l *rescaling) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	scale, _ := l.expanded(c)
	n := len(scale)
	dy := c.dy[0]
	for r := 0; r < c.rows; r++ {
		ds, dxs := dy[r*n:(r+1)*n], dx[r*n:(r+1)*n]
		for i, v := range ds {
			dxs[i] = v * scale[i]
		}
	}
}

// outputMasks: Rescaling passes its input's mask on (Keras' supports_masking).
func (l *rescaling) outputMasks([]bool) []int { return passMask(1) }
