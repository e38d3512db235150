package gokernel

import (
	"fmt"
	"math"
)

// Batch is a set of rows as the training loop sees them: for each model
// input a row-major array of Rows×XWidths[i] values, and for each model
// output a row-major array of Rows×YWidths[j] targets (a sparse loss's
// targets are class indexes, width 1). A model has one input and one output
// today; the loop and the gather are written for several.
//
// The same type holds a table in memory (the rows of Model.Fit and `gophas
// train`, the Spark worker's shuffle block) and the batches gathered from it.
// A Batch's arrays may be views of the caller's memory; the loop never
// writes into a Batch it was given.
//
// W, when not nil, holds one sample weight per row (Keras' sample_weight):
// the row's loss and weighted metrics count W[r] times (see
// Model.TrainStep); nil weighs every row 1.
type Batch struct {
	Rows             int
	X, Y             [][]float32
	XWidths, YWidths []int
	W                []float32
}

// NewBatch returns a batch of rows rows over x (rows×xWidth, row-major) and
// y (rows×yWidth): one input and one output, as today's models have. x and y
// are used, not copied.
func NewBatch(rows int, x []float32, xWidth int, y []float32, yWidth int) *Batch {
	return &Batch{Rows: rows, X: [][]float32{x}, Y: [][]float32{y}, XWidths: []int{xWidth}, YWidths: []int{yWidth}}
}

// check reports arrays that do not hold Rows rows of their width.
func (b *Batch) check() error {
	if b.Rows < 0 || len(b.X) != len(b.XWidths) || len(b.Y) != len(b.YWidths) {
		return fmt.Errorf("gokernel: batch of %d rows with %d inputs of widths %v and %d outputs of widths %v", b.Rows, len(b.X), b.XWidths, len(b.Y), b.YWidths)
	}
	for i, x := range b.X {
		if len(x) < b.Rows*b.XWidths[i] {
			return fmt.Errorf("gokernel: batch input %d holds %d values, want %d rows of %d", i, len(x), b.Rows, b.XWidths[i])
		}
	}
	for j, y := range b.Y {
		if len(y) < b.Rows*b.YWidths[j] {
			return fmt.Errorf("gokernel: batch output %d holds %d targets, want %d rows of %d", j, len(y), b.Rows, b.YWidths[j])
		}
	}
	return b.checkWeights()
}

// Slice returns rows [from, to) of b as views of its arrays.
func (b *Batch) Slice(from, to int) *Batch {
	s := &Batch{Rows: to - from, X: make([][]float32, len(b.X)), Y: make([][]float32, len(b.Y)), XWidths: b.XWidths, YWidths: b.YWidths}
	for i, x := range b.X {
		w := b.XWidths[i]
		s.X[i] = x[from*w : to*w]
	}
	for j, y := range b.Y {
		w := b.YWidths[j]
		s.Y[j] = y[from*w : to*w]
	}
	if b.W != nil {
		s.W = b.W[from:to]
	}
	return s
}

// shape makes b an empty batch with src's widths, keeping b's memory.
func (b *Batch) shape(src *Batch) {
	b.Rows = 0
	b.XWidths, b.YWidths = src.XWidths, src.YWidths
	b.X = resize(b.X, len(src.X))
	b.Y = resize(b.Y, len(src.Y))
}

func resize(a [][]float32, n int) [][]float32 {
	if cap(a) < n {
		a = append(a[:cap(a)], make([][]float32, n-cap(a))...)
	}
	return a[:n]
}

// grow returns a with length n, reusing its memory when it is large enough.
func grow(a []float32, n int) []float32 {
	if cap(a) < n {
		return make([]float32, n, max(n, 2*cap(a)))
	}
	return a[:n]
}

// Gather sets b to rows idx of src, in that order: the one gather every
// training path uses. It reuses b's memory; b must not share memory with src.
func (b *Batch) Gather(src *Batch, idx []int) {
	b.shape(src)
	n := len(idx)
	gather := func(dst, from []float32, w int) []float32 {
		dst = grow(dst, n*w)
		for i, r := range idx {
			copy(dst[i*w:(i+1)*w], from[r*w:(r+1)*w])
		}
		return dst
	}
	for i, x := range src.X {
		b.X[i] = gather(b.X[i], x, src.XWidths[i])
	}
	for j, y := range src.Y {
		b.Y[j] = gather(b.Y[j], y, src.YWidths[j])
	}
	b.W = gatherWeights(b.W, src.W, idx)
	b.Rows = n
}

// appendRows appends rows [from, to) of src to b, which must have src's
// widths (or be empty), growing b's arrays to at most limit rows at once.
func (b *Batch) appendRows(src *Batch, from, to, limit int) {
	if b.X == nil {
		b.shape(src)
	}
	add := func(dst, from_ []float32, w int) []float32 {
		need := (b.Rows + to - from) * w
		if need > cap(dst) {
			c := max(need, 2*cap(dst))
			if w > 0 && limit <= math.MaxInt/w {
				c = max(need, min(c, limit*w))
			}
			grown := make([]float32, len(dst), c)
			copy(grown, dst)
			dst = grown
		}
		return append(dst[:b.Rows*w], from_[from*w:to*w]...)
	}
	for i, x := range src.X {
		b.X[i] = add(b.X[i], x, src.XWidths[i])
	}
	for j, y := range src.Y {
		b.Y[j] = add(b.Y[j], y, src.YWidths[j])
	}
	if src.W != nil {
		b.W = add(b.W, src.W, 1)
	} else if b.Rows == 0 {
		b.W = nil
	}
	b.Rows += to - from
}

// sameWidths reports whether a and b have the same inputs and outputs,
// and both or neither have sample weights.
func sameWidths(a, b *Batch) bool {
	if len(a.XWidths) != len(b.XWidths) || len(a.YWidths) != len(b.YWidths) || (a.W == nil) != (b.W == nil) {
		return false
	}
	for i, w := range a.XWidths {
		if b.XWidths[i] != w {
			return false
		}
	}
	for j, w := range a.YWidths {
		if b.YWidths[j] != w {
			return false
		}
	}
	return true
}

// The random streams of an epoch. Epoch e of worker w of a fit seeded s
// draws its shuffle from PCG(s, shuffleStream ^ e<<32 ^ w) and its Dropout
// masks from the same seeds mixed with the layer (see Model.reseed): the
// order and the masks of an epoch depend on nothing but (s, e, w), so a
// retried Spark task repeats its first attempt and Model.Fit, `gophas
// train` and a one-worker Spark fit (worker 0) draw the same numbers.
const (
	shuffleStream = 0x5f1e_0000_0000_0000
	dropoutStream = 0xd50f_0000_0000_0000
)

func epochStream(epoch, worker int) uint64 {
	return uint64(uint32(epoch))<<32 ^ uint64(uint32(worker))
}
