package gokernel

import "fmt"

// zeroPadding is Keras' ZeroPadding1D/2D/3D: zeros are added before and
// after each spatial axis of a sample (channels last, or first with
// data_format channels_first); the input sits inside the output at offset
// (before_1, ..., before_k):
//
//	y[i + before] = x[i], y = 0 elsewhere;  dx[i] = dy[i + before]
type zeroPadding struct {
	rank          int
	channelsFirst bool
	pad           [][2]int // per spatial axis: before, after
}

func zeroPaddingParser(rank int) layerParser {
	return func(c *obj) (Layer, error) {
		l := &zeroPadding{rank: rank}
		var err error
		def := make([][2]int, rank)
		for i := range def {
			def[i] = [2]int{1, 1}
		}
		if rank == 1 {
			// ZeroPadding1D takes an int or one (before, after) pair.
			var p []int
			if p, err = intTuple(c, "padding", 2, []int{1, 1}, 0); err != nil {
				return nil, err
			}
			l.pad = [][2]int{{p[0], p[1]}}
		} else if l.pad, err = pairs(c, "padding", rank, def); err != nil {
			return nil, err
		}
		if l.channelsFirst, err = dataFormat(c); err != nil {
			return nil, err
		}
		return l, nil
	}
}

// spatialAxis returns the sample axis of spatial axis i.
func spatialAxis(channelsFirst bool, i int) int {
	if channelsFirst {
		return i + 1
	}
	return i
}

// checkRank checks that a sample has k spatial axes and a channel axis.
func checkRank(s []int, k int) error {
	if len(s) != k+1 {
		return fmt.Errorf("want samples of rank %d (%d spatial axes and the channels), got %s", k+1, k, shapeStr(s))
	}
	return nil
}

func (l *zeroPadding) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if err := checkRank(s, l.rank); err != nil {
		return nil, err
	}
	out := append([]int(nil), s...)
	for i, p := range l.pad {
		out[spatialAxis(l.channelsFirst, i)] += p[0] + p[1]
	}
	return [][]int{out}, nil
}

func (l *zeroPadding) weights([][]int) []weightSpec { return nil }

func (l *zeroPadding) box(c *call) *boxMap {
	if b, ok := c.state.(*boxMap); ok {
		return b
	}
	off := make([]int, len(c.in[0]))
	for i, p := range l.pad {
		off[spatialAxis(l.channelsFirst, i)] = p[0]
	}
	b := newBoxMap(c.out[0], c.in[0], off)
	c.state = b
	return b
}

func (l *zeroPadding) forward(c *call) {
	b := l.box(c)
	y := c.y[0]
	clear(y)
	b.toBig(y, c.x[0], c.rows)
}

func (l *zeroPadding) backward(c *call) {
	if c.dx[0] != nil {
		l.box(c).toSmall(c.dx[0], c.dy[0], c.rows)
	}
}

// boxMap says where a sample of shape small sits inside one of shape big
// (same rank) at offset off: as runs of contiguous values in both, run
// values each, starting at big[i] and small[i] within their samples.
type boxMap struct {
	run          int
	big, small   []int32
	bigN, smallN int
}

func newBoxMap(big, small, off []int) *boxMap {
	r := len(big)
	// The run covers the trailing axes where the two agree, and the last
	// axis where they differ.
	k := r - 1
	for k > 0 && big[k] == small[k] {
		k--
	}
	b := &boxMap{run: prod(small[k:]), bigN: prod(big), smallN: prod(small)}
	bstride := make([]int, r)
	st := 1
	for d := r - 1; d >= 0; d-- {
		bstride[d] = st
		st *= big[d]
	}
	base := 0
	for d := range off {
		base += off[d] * bstride[d]
	}
	// Enumerate the index tuples of small[:k].
	pos := make([]int, k)
	n := prod(small[:k])
	for i := 0; i < n; i++ {
		o := base
		for d, p := range pos {
			o += p * bstride[d]
		}
		b.big = append(b.big, int32(o))
		b.small = append(b.small, int32(i*b.run))
		for d := k - 1; d >= 0; d-- {
			pos[d]++
			if pos[d] < small[d] {
				break
			}
			pos[d] = 0
		}
	}
	return b
}

// toBig copies each of rows small samples in src into its place in the
// big samples in dst (the rest of dst left as it is).
func (b *boxMap) toBig(dst, src []float32, rows int) {
	for r := 0; r < rows; r++ {
		d, s := dst[r*b.bigN:(r+1)*b.bigN], src[r*b.smallN:(r+1)*b.smallN]
		for i, o := range b.big {
			copy(d[o:int(o)+b.run], s[b.small[i]:int(b.small[i])+b.run])
		}
	}
}

// toSmall copies the box of each of rows big samples in src into the
// small samples in dst.
func (b *boxMap) toSmall(dst, src []float32, rows int) {
	for r := 0; r < rows; r++ {
		d, s := dst[r*b.smallN:(r+1)*b.smallN], src[r*b.bigN:(r+1)*b.bigN]
		for i, o := range b.big {
			copy(d[b.small[i]:int(b.small[i])+b.run], s[o:int(o)+b.run])
		}
	}
}
