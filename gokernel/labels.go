package gokernel

import (
	"fmt"
	"math"
	"slices"
)

// LabelKind is what a row's label must be for a spec's loss. It is the one
// rule of every entry (`gophas train`, the Spark workers, the Scala shim's
// data check and the Python package, which read it from `gophas inspect`).
type LabelKind string

const (
	// ClassIndex is one integer class index in [0, OutputDim) per row
	// (sparse_categorical_crossentropy).
	ClassIndex LabelKind = "class_index"
	// Categorical is OutputDim values per row (a one-hot or probability
	// vector), or one class index per row, which is one-hot encoded
	// (categorical_crossentropy, categorical_focal_crossentropy,
	// categorical_hinge).
	Categorical LabelKind = "categorical"
	// Binary is OutputDim values in [0, 1] per row (binary_crossentropy,
	// binary_focal_crossentropy).
	Binary LabelKind = "binary"
	// Value is OutputDim values per row (the regression losses).
	Value LabelKind = "value"
)

// LabelKind returns what the spec's loss wants of a label; "" without a
// loss.
func (s *Spec) LabelKind() LabelKind {
	if s.loss == nil {
		return ""
	}
	switch s.loss.kind {
	case lossSparseCCE:
		return ClassIndex
	case lossCCE:
		return Categorical
	case lossBCE:
		return Binary
	}
	if i := int(s.loss.kind) - len(lossNames); i >= 0 && lossTable[i].labels != "" {
		return lossTable[i].labels
	}
	return Value
}

// LabelWidths are the label widths (values per row) the spec's loss
// accepts, the first one preferred: [1] for ClassIndex, [OutputDim, 1] for
// Categorical with several outputs, [OutputDim] otherwise; none without a
// loss.
func (s *Spec) LabelWidths() []int {
	out := s.OutputDim()
	switch s.LabelKind() {
	case "":
		return []int{}
	case ClassIndex:
		return []int{1}
	case Categorical:
		if out > 1 {
			return []int{out, 1}
		}
	}
	return []int{out}
}

// Labels turns label rows of one width into the targets a loss wants; see
// Spec.Labels.
type Labels struct {
	kind   LabelKind
	loss   string
	outDim int
	width  int  // of the labels given
	oneHot bool // class indexes one-hot encoded to outDim
}

// Labels returns the shaping of labels of width values per row for the
// spec's loss: class indexes stay as they are for ClassIndex and are
// one-hot encoded for Categorical, vectors of OutputDim values stay as they
// are. A width the loss does not take is an error saying what it wants.
func (s *Spec) Labels(width int) (*Labels, error) {
	kind, out := s.LabelKind(), s.OutputDim()
	l := &Labels{kind: kind, loss: s.Loss(), outDim: out, width: width}
	switch {
	case kind == "":
		return nil, fmt.Errorf("gokernel: the model has no loss (its spec has no compile config with a loss)")
	case kind == ClassIndex && width != 1:
		return nil, fmt.Errorf("gokernel: the label has %d values per row but %s wants one class index", width, l.loss)
	case kind == ClassIndex, width == out:
		return l, nil
	case kind == Categorical && width == 1:
		l.oneHot = true
		return l, nil
	case kind == Categorical:
		return nil, fmt.Errorf("gokernel: the label has %d values per row but %s on %d outputs wants %d values or one class index", width, l.loss, out, out)
	default:
		return nil, fmt.Errorf("gokernel: the label has %d values per row but %s on %d outputs wants %d", width, l.loss, out, out)
	}
}

// Width is the number of targets per row that Shape writes.
func (l *Labels) Width() int {
	if l.kind == ClassIndex {
		return 1
	}
	return l.outDim
}

// Shape appends to dst the targets of rows rows of labels (rows×width, as
// given to Spec.Labels) and returns it. first is the index of the first row
// in its data, for messages: a class index that is not an integer in
// [0, OutputDim), or a binary label outside [0, 1], is an error naming its
// row and value.
func (l *Labels) Shape(dst, labels []float32, rows int, first int64) ([]float32, error) {
	labels = labels[:rows*l.width]
	switch {
	case l.kind == ClassIndex || l.oneHot:
		for i, v := range labels {
			if v != float32(math.Trunc(float64(v))) || v < 0 || v >= float32(l.outDim) {
				return dst, fmt.Errorf("gokernel: row %d: value %v is not a class index in [0, %d) for %s with %d outputs",
					first+int64(i), v, l.outDim, l.loss, l.outDim)
			}
		}
		if !l.oneHot {
			return append(dst, labels...), nil
		}
		n := len(dst)
		dst = slices.Grow(dst, rows*l.outDim)[:n+rows*l.outDim]
		clear(dst[n:])
		for i, v := range labels {
			dst[n+i*l.outDim+int(v)] = 1
		}
		return dst, nil
	case l.kind == Binary:
		for i, v := range labels {
			if !(v >= 0 && v <= 1) {
				return dst, fmt.Errorf("gokernel: row %d: value %v is outside [0, 1], which %s wants", first+int64(i)/int64(l.width), v, l.loss)
			}
		}
	}
	return append(dst, labels...), nil
}
