package gokernel

// cropping is Keras' Cropping1D/2D/3D: values are cut from before and
// after each spatial axis of a sample (channels last, or first with
// data_format channels_first; Cropping1D has no data_format):
//
//	y[i] = x[i + before],  dx[i + before] = dy[i], dx = 0 elsewhere
type cropping struct {
	rank          int
	channelsFirst bool
	crop          [][2]int // per spatial axis: before, after
}

func croppingParser(rank int) layerParser {
	return func(c *obj) (Layer, error) {
		l := &cropping{rank: rank}
		var err error
		if rank == 1 {
			var p []int
			if p, err = intTuple(c, "cropping", 2, []int{1, 1}, 0); err != nil {
				return nil, err
			}
			l.crop = [][2]int{{p[0], p[1]}}
			return l, nil
		}
		// Keras' defaults: none for Cropping2D, one on each side for 3D.
		def := make([][2]int, rank)
		if rank == 3 {
			def = [][2]int{{1, 1}, {1, 1}, {1, 1}}
		}
		if l.crop, err = pairs(c, "cropping", rank, def); err != nil {
			return nil, err
		}
		if l.channelsFirst, err = dataFormat(c); err != nil {
			return nil, err
		}
		return l, nil
	}
}

func (l *cropping) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if err := checkRank(s, l.rank); err != nil {
		return nil, err
	}
	out := append([]int(nil), s...)
	for i, p := range l.crop {
		a := spatialAxis(l.channelsFirst, i)
		if out[a] -= p[0] + p[1]; out[a] < 1 {
			return nil, errorf("cropping %v from axis %d of size %d leaves nothing", p, a+1, s[a])
		}
	}
	return [][]int{out}, nil
}

func (l *cropping) weights([][]int) []weightSpec { return nil }

func (l *cropping) box(c *call) *boxMap {
	if b, ok := c.state.(*boxMap); ok {
		return b
	}
	off := make([]int, len(c.in[0]))
	for i, p := range l.crop {
		off[spatialAxis(l.channelsFirst, i)] = p[0]
	}
	b := newBoxMap(c.in[0], c.out[0], off)
	c.state = b
	return b
}

func (l *cropping) forward(c *call) { l.box(c).toSmall(c.y[0], c.x[0], c.rows) }

func (l *cropping) backward(c *call) {
	dx := c.dx[0]
	if dx == nil {
		return
	}
	clear(dx)
	l.box(c).toBig(dx, c.dy[0], c.rows)
}
