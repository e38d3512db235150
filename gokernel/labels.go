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
// loss. It is OutputLabelKind(0).
func (s *Spec) LabelKind() LabelKind { return s.OutputLabelKind(0) }

// OutputLabelKind returns what the loss of output j wants of a label; ""
// for an output without a loss (it takes no label) or a spec without a
// compile config.
func (s *Spec) OutputLabelKind(j int) LabelKind {
	if j < 0 || j >= len(s.heads) || s.heads[j].loss == nil {
		return ""
	}
	l := s.heads[j].loss
	switch l.kind {
	case lossSparseCCE:
		return ClassIndex
	case lossCCE:
		return Categorical
	case lossBCE:
		return Binary
	}
	if i := int(l.kind) - len(lossNames); i >= 0 && lossTable[i].labels != "" {
		return lossTable[i].labels
	}
	return Value
}

// outputGeometry returns, for output j, its width (values per row), its
// positions (the product of every axis but the last: 1 for a vector
// output, T for a sequence of T steps) and its classes (the last axis).
func (s *Spec) outputGeometry(j int) (dim, positions, classes int) {
	shape := s.graph.tensors[s.graph.outputs[j]].shape
	dim, positions, classes = prod(shape), 1, 1
	if len(shape) > 0 {
		classes = shape[len(shape)-1]
		positions = prod(shape[:len(shape)-1])
	}
	return dim, positions, classes
}

// LabelWidths are the label widths (values per row) the spec's loss
// accepts, the first one preferred; OutputLabelWidths(0).
func (s *Spec) LabelWidths() []int { return s.OutputLabelWidths(0) }

// OutputLabelWidths are the label widths (values per row) the loss of
// output j accepts, the first one preferred: one class index per position
// for ClassIndex ([1] for a vector output, [T] for T steps); for
// Categorical the output's width, or one class index per position, which
// is one-hot encoded; the output's width otherwise; none for an output
// without a loss.
func (s *Spec) OutputLabelWidths(j int) []int {
	if j < 0 || j >= len(s.graph.outputs) {
		return []int{}
	}
	dim, positions, classes := s.outputGeometry(j)
	switch s.OutputLabelKind(j) {
	case "":
		return []int{}
	case ClassIndex:
		return []int{positions}
	case Categorical:
		if classes > 1 {
			return []int{dim, positions}
		}
	}
	return []int{dim}
}

// Labels turns label rows of one width into the targets a loss wants; see
// Spec.OutputLabels.
type Labels struct {
	kind      LabelKind
	loss      string
	outDim    int
	classes   int  // the output's last axis: the class count of class indexes
	positions int  // class indexes per row
	width     int  // of the labels given
	oneHot    bool // class indexes one-hot encoded to classes
}

// Labels returns the shaping of labels of width values per row for the
// spec's loss: OutputLabels(0, width).
func (s *Spec) Labels(width int) (*Labels, error) { return s.OutputLabels(0, width) }

// OutputLabels returns the shaping of labels of width values per row for
// the loss of output j: class indexes stay as they are for ClassIndex and
// are one-hot encoded for Categorical, vectors of the output's width stay
// as they are. A width the loss does not take is an error saying what it
// wants.
func (s *Spec) OutputLabels(j, width int) (*Labels, error) {
	if j < 0 || j >= len(s.graph.outputs) {
		return nil, fmt.Errorf("gokernel: output %d: the model has %d outputs", j, len(s.graph.outputs))
	}
	kind := s.OutputLabelKind(j)
	out, positions, classes := s.outputGeometry(j)
	l := &Labels{kind: kind, outDim: out, classes: classes, positions: positions, width: width}
	if kind != "" {
		l.loss = s.heads[j].loss.kind.String()
	}
	one := "one class index"
	if positions > 1 {
		one = fmt.Sprintf("%d class indexes (one per position)", positions)
	}
	switch {
	case kind == "" && len(s.heads) > 1:
		return nil, fmt.Errorf("gokernel: output %q has no loss, so it takes no label", s.heads[j].name)
	case kind == "":
		return nil, fmt.Errorf("gokernel: the model has no loss (its spec has no compile config with a loss)")
	case kind == ClassIndex && width != positions:
		return nil, fmt.Errorf("gokernel: the label has %d values per row but %s wants %s", width, l.loss, one)
	case kind == ClassIndex, width == out:
		return l, nil
	case kind == Categorical && width == positions && classes > 1:
		l.oneHot = true
		return l, nil
	case kind == Categorical && classes > 1:
		return nil, fmt.Errorf("gokernel: the label has %d values per row but %s on %d outputs wants %d values or %s", width, l.loss, out, out, one)
	default:
		return nil, fmt.Errorf("gokernel: the label has %d values per row but %s on %d outputs wants %d", width, l.loss, out, out)
	}
}

// Width is the number of targets per row that Shape writes.
func (l *Labels) Width() int {
	if l.kind == ClassIndex {
		return l.positions
	}
	return l.outDim
}

// Shape appends to dst the targets of rows rows of labels (rows×width, as
// given to Spec.Labels) and returns it. first is the index of the first row
// in its data, for messages: a class index that is not an integer in
// [0, classes), or a binary label outside [0, 1], is an error naming its
// row and value.
func (l *Labels) Shape(dst, labels []float32, rows int, first int64) ([]float32, error) {
	labels = labels[:rows*l.width]
	row := func(i int) int64 { return first + int64(i/max(l.width, 1)) }
	switch {
	case l.kind == ClassIndex || l.oneHot:
		for i, v := range labels {
			if v != float32(math.Trunc(float64(v))) || v < 0 || v >= float32(l.classes) {
				return dst, fmt.Errorf("gokernel: row %d: value %v is not a class index in [0, %d) for %s with %d outputs",
					row(i), v, l.classes, l.loss, l.classes)
			}
		}
		if !l.oneHot {
			return append(dst, labels...), nil
		}
		n := len(dst)
		dst = slices.Grow(dst, rows*l.outDim)[:n+rows*l.outDim]
		clear(dst[n:])
		for i, v := range labels {
			dst[n+i*l.classes+int(v)] = 1
		}
		return dst, nil
	case l.kind == Binary:
		for i, v := range labels {
			if !(v >= 0 && v <= 1) {
				return dst, fmt.Errorf("gokernel: row %d: value %v is outside [0, 1], which %s wants", row(i), v, l.loss)
			}
		}
	}
	return append(dst, labels...), nil
}
