package pipe

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/gophas/gophas/arrowio"
	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/protocol"
)

// rows converts a stream's feature and label columns into the rows the
// training loop and evaluation take: features as they are, labels shaped
// for the loss by the kernel's one label rule (Spec.Labels).
type rows struct {
	featCols []string
	label    string
	x, y     *arrowio.Converter
	spec     *gokernel.Spec
	shape    *gokernel.Labels // once the label width is known
	input    gokernel.IO      // the model's input (its IDLimit)
	xbuf     []float32
	raw      []float32
	ybuf     []float32
}

func newRows(h *protocol.Header, in *arrow.Schema) (*rows, error) {
	r := &rows{featCols: h.Features(), label: h.LabelCol, x: arrowio.NewConverter(h.Features()), y: arrowio.NewConverter([]string{h.LabelCol})}
	if err := r.x.Check(in); err != nil {
		return nil, err
	}
	if err := r.y.Check(in); err != nil {
		return nil, err
	}
	return r, nil
}

// check checks the widths known from the schema against the spec of the
// model at path.
func (r *rows) check(spec *gokernel.Spec, path string) error {
	r.spec = spec
	r.input = spec.Inputs()[0]
	if spec.Loss() == "" {
		return fmt.Errorf("model %q has no compile config with a loss", path)
	}
	if err := exactIDs(spec); err != nil {
		return err
	}
	return r.widths()
}

func (r *rows) widths() error {
	if w, in := r.x.Width(), r.spec.InputDim(); w >= 0 && w != in {
		return widthError(r.featCols, w, r.spec)
	}
	if w := r.y.Width(); w >= 0 && r.shape == nil {
		l, err := r.spec.Labels(w)
		if err != nil {
			return fmt.Errorf("label column %q: %w", r.label, unprefixed(err))
		}
		r.shape = l
	}
	return nil
}

func (r *rows) xWidth() int { return r.spec.InputDim() }

func (r *rows) yWidth() int {
	if r.spec.LabelKind() == gokernel.ClassIndex {
		return 1
	}
	return r.spec.OutputDim()
}

// load converts rec into a batch of rows over reused buffers (nil for a
// record of no rows).
func (r *rows) load(rec arrow.RecordBatch) (*gokernel.Batch, error) {
	first := r.y.Rows()
	var err error
	if r.xbuf, err = r.x.Append(r.xbuf[:0], rec); err != nil {
		return nil, err
	}
	if err := r.checkIDs(r.xbuf, first); err != nil {
		return nil, err
	}
	if r.raw, err = r.y.Append(r.raw[:0], rec); err != nil {
		return nil, err
	}
	n := int(rec.NumRows())
	if n == 0 {
		return nil, nil
	}
	if err := r.widths(); err != nil {
		return nil, err
	}
	if r.ybuf, err = r.shape.Shape(r.ybuf[:0], r.raw, n, first); err != nil {
		return nil, fmt.Errorf("label column %q %w", r.label, unprefixed(err))
	}
	return gokernel.NewBatch(n, r.xbuf, r.x.Width(), r.ybuf, r.shape.Width()), nil
}

// maxExactID is the largest id a float32 holds exactly (2^24): the rows
// reach the training loop as float32 (arrowio), integer columns included,
// so a vocabulary larger than this is refused rather than rounded.
const maxExactID = 1 << 24

// exactIDs refuses a model whose input takes more ids than float32 holds
// exactly.
func exactIDs(spec *gokernel.Spec) error {
	if in := spec.Inputs()[0]; in.IDLimit > maxExactID {
		return fmt.Errorf("input %q takes ids up to %d (an Embedding's input_dim); the features travel as float32, "+
			"which holds ids exactly only up to %d", in.Name, in.IDLimit-1, maxExactID)
	}
	return nil
}

// checkIDs refuses, for an input that Embeddings read, an id outside
// [0, IDLimit) (the value truncated toward zero, as Keras casts it to an
// id), naming the row of the partition (first is the rows before x), the
// position and the value.
func (r *rows) checkIDs(x []float32, first int64) error {
	limit, w := r.input.IDLimit, r.spec.InputDim()
	if limit <= 0 || w == 0 {
		return nil
	}
	for k, v := range x {
		if !(v > -1 && float64(v) < float64(limit)) {
			return fmt.Errorf("features %s row %d position %d: id %v is outside [0, %d), the input_dim of the Embedding that reads input %q",
				quoteCols(r.featCols), first+int64(k/w), k%w, v, limit, r.input.Name)
		}
	}
	return nil
}

// unprefixed drops the package prefix of a kernel error wrapped into a
// message that names the column.
func unprefixed(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "gokernel: "))
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
	r, err := newRows(h, in)
	if err != nil {
		return err
	}
	m, err := loadModel(t.Ctx, h)
	if err != nil {
		return err
	}
	spec := m.Spec()
	if err := r.check(spec, h.Model); err != nil {
		return err
	}

	var sums gokernel.Sums
	for t.Input.Next() {
		b, err := r.load(t.Input.RecordBatch())
		if err != nil {
			return err
		}
		if b == nil {
			continue
		}
		if err := m.EvaluateBatch(b, &sums); err != nil {
			return err
		}
		if err := t.Ctx.Err(); err != nil {
			return fmt.Errorf("cancelled: %w", err)
		}
	}
	if err := t.Input.Err(); err != nil {
		return fmt.Errorf("reading the input stream: %w", err)
	}

	b := array.NewRecordBuilder(t.Mem, protocol.EvaluateSchema)
	defer b.Release()
	if sums.Count > 0 {
		for _, k := range sumKeys(sums, m) {
			b.Field(0).(*array.StringBuilder).Append(k)
			b.Field(1).(*array.Float64Builder).Append(sums.Sums[k])
			b.Field(2).(*array.Int64Builder).Append(int64(sums.Count))
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	w := t.NewWriter(protocol.EvaluateSchema)
	defer t.Close(w, &err)
	if err := w.Write(rec); err != nil {
		return fmt.Errorf("writing the output stream: %w", err)
	}
	return nil
}

// sumKeys orders the keys of s: Model.SumKeys (Spec.EvaluateKeys, a
// stateful metric as its state's keys), then any other key sorted.
func sumKeys(s gokernel.Sums, m *gokernel.Model) []string {
	keys := slices.DeleteFunc(m.SumKeys(), func(k string) bool { _, ok := s.Sums[k]; return !ok })
	var rest []string
	for k := range s.Sums {
		if !slices.Contains(keys, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}
