package bridge

import (
	"fmt"
	"math"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"gorgonia.org/tensor"

	"github.com/gophas/gophas/arrowio"
	"github.com/gophas/gophas/gokernel"
)

func init() { registerMode(ModeEvaluate, runEvaluate) }

// EvaluateSchema is the schema of the evaluate output; see the protocol
// comment in protocol.go.
var EvaluateSchema = arrow.NewSchema([]arrow.Field{
	{Name: "key", Type: arrow.BinaryTypes.String},
	{Name: "sum", Type: arrow.PrimitiveTypes.Float64},
	{Name: "count", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// labels converts a stream's label column into the targets the model's
// loss wants, into a reused buffer.
type labels struct {
	conv   *arrowio.Converter
	name   string
	spec   *gokernel.Spec
	sparse bool // class indexes for sparse_categorical_crossentropy
	oneHot int  // > 0: one class index per row, one-hot encoded to this width
	raw    []float32
	buf    []float32
}

func newLabels(name string, spec *gokernel.Spec) *labels {
	return &labels{conv: arrowio.NewConverter([]string{name}), name: name, spec: spec,
		sparse: spec.Loss() == "sparse_categorical_crossentropy"}
}

// shape decides, once the label width w is known, how labels become
// targets, the way `gophas train` does (fitLabels).
func (l *labels) shape(w int) error {
	d := &dataset{yWidth: w}
	if err := fitLabels(d, l.spec); err != nil {
		return fmt.Errorf("label column %q: %w", l.name, err)
	}
	if d.yWidth != w {
		l.oneHot = d.yWidth
	}
	return nil
}

// load converts the labels of rec and returns a tensor of the targets: rows
// class indexes (sparse) or rows×OutputDim values.
func (l *labels) load(rec arrow.RecordBatch) (*tensor.Dense, error) {
	first := l.conv.Width() < 0
	row := l.conv.Rows()
	var err error
	if l.raw, err = l.conv.Append(l.raw[:0], rec); err != nil {
		return nil, err
	}
	n := int(rec.NumRows())
	if n == 0 {
		return nil, nil
	}
	if first { // the width became known with this batch
		if err := l.shape(l.conv.Width()); err != nil {
			return nil, err
		}
	}
	out := l.spec.OutputDim()
	if !l.sparse && l.oneHot == 0 {
		return tensor.New(tensor.WithShape(n, out), tensor.WithBacking(l.raw)), nil
	}
	for i, v := range l.raw {
		if v != float32(math.Trunc(float64(v))) || v < 0 || v >= float32(out) {
			return nil, fmt.Errorf("label column %q row %d: value %v is not a class index in [0, %d) for %s with %d outputs",
				l.name, row+int64(i), v, out, l.spec.Loss(), out)
		}
	}
	if l.sparse {
		return tensor.New(tensor.WithShape(n, 1), tensor.WithBacking(l.raw)), nil
	}
	need := n * l.oneHot
	if cap(l.buf) < need {
		l.buf = make([]float32, need)
	}
	l.buf = l.buf[:need]
	clear(l.buf)
	for i, v := range l.raw {
		l.buf[i*l.oneHot+int(v)] = 1
	}
	return tensor.New(tensor.WithShape(n, l.oneHot), tensor.WithBacking(l.buf)), nil
}

// runEvaluate sums the model's loss and metrics over the partition's rows
// and writes them as one batch of EvaluateSchema.
func runEvaluate(t *Task) (err error) {
	h := &t.Header
	in := t.Input.Schema()
	feat := h.Features()
	if slices.Contains(feat, h.LabelCol) {
		return fmt.Errorf("column %q is both a feature and the label", h.LabelCol)
	}
	x := &matrix{conv: arrowio.NewConverter(feat)}
	if err := x.conv.Check(in); err != nil {
		return err
	}
	m, err := loadModel(t.Ctx, h)
	if err != nil {
		return err
	}
	spec := m.Spec()
	if spec.Loss() == "" {
		return fmt.Errorf("model %q has no compile config with a loss", h.Model)
	}
	if err := checkWidth(x.conv, feat, m); err != nil {
		return err
	}
	y := newLabels(h.LabelCol, spec)
	if err := y.conv.Check(in); err != nil {
		return err
	}
	if w := y.conv.Width(); w >= 0 {
		if err := y.shape(w); err != nil {
			return err
		}
	}

	var sums gokernel.Sums
	for t.Input.Next() {
		rec := t.Input.RecordBatch()
		xt, err := x.load(rec)
		if err != nil {
			return err
		}
		if xt == nil {
			continue
		}
		if err := checkWidth(x.conv, feat, m); err != nil {
			return err
		}
		yt, err := y.load(rec)
		if err != nil {
			return err
		}
		s, err := m.EvaluateSums(xt, yt)
		if err != nil {
			return err
		}
		sums = sums.Add(s)
		if err := t.Ctx.Err(); err != nil {
			return fmt.Errorf("cancelled: %w", err)
		}
	}
	if err := t.Input.Err(); err != nil {
		return fmt.Errorf("reading the input stream: %w", err)
	}

	b := array.NewRecordBuilder(t.Mem, EvaluateSchema)
	defer b.Release()
	if sums.Count > 0 {
		for _, k := range sumKeys(sums, spec) {
			b.Field(0).(*array.StringBuilder).Append(k)
			b.Field(1).(*array.Float64Builder).Append(sums.Sums[k])
			b.Field(2).(*array.Int64Builder).Append(int64(sums.Count))
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	w := t.NewWriter(EvaluateSchema)
	defer t.Close(w, &err)
	if err := w.Write(rec); err != nil {
		return fmt.Errorf("writing the output stream: %w", err)
	}
	return nil
}

// sumKeys orders the keys of s: "loss", the compiled metrics, then any
// other key sorted.
func sumKeys(s gokernel.Sums, spec *gokernel.Spec) []string {
	keys := []string{"loss"}
	for _, k := range spec.Metrics() {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	keys = slices.DeleteFunc(keys, func(k string) bool { _, ok := s.Sums[k]; return !ok })
	var rest []string
	for k := range s.Sums {
		if !slices.Contains(keys, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}
