package pipe

import (
	"errors"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/gophas/gophas/arrowio"
	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/protocol"
)

// features converts a stream's feature columns into the inputs of a
// batch: one column per model input (column i feeds input i), each row's
// values flat, as the model's input takes them (arrowio; integer token
// columns arrive as float32, exact below maxExactID).
type features struct {
	cols  []string
	convs []*arrowio.Converter
	bufs  [][]float32
	ios   []gokernel.IO // the model's inputs, once checked
	dims  []int
	spec  *gokernel.Spec
}

// newFeatures checks that the columns exist in the schema with types
// arrowio converts.
func newFeatures(cols []string, in *arrow.Schema) (*features, error) {
	f := &features{cols: cols, convs: make([]*arrowio.Converter, len(cols)), bufs: make([][]float32, len(cols))}
	for i, c := range cols {
		f.convs[i] = arrowio.NewConverter([]string{c})
		if err := f.convs[i].Check(in); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// check checks the columns against the inputs of spec (the model at
// path): one column per input, widths known from the schema, and ids an
// Embedding reads exact as float32.
func (f *features) check(spec *gokernel.Spec, path string) error {
	f.spec, f.ios = spec, spec.Inputs()
	if len(f.cols) != len(f.ios) {
		return fmt.Errorf("model %q has %d inputs (%s); the task names %d feature columns (%s): give one per input, in the model's order",
			path, len(f.ios), ioList(f.ios), len(f.cols), quoteList(f.cols))
	}
	f.dims = make([]int, len(f.ios))
	for i, io := range f.ios {
		f.dims[i] = prodInts(io.Shape)
	}
	if err := exactIDs(spec); err != nil {
		return err
	}
	return f.widths()
}

// widths reports a column whose known width differs from its input's.
func (f *features) widths() error {
	for i, c := range f.convs {
		if w := c.Width(); w >= 0 && w != f.dims[i] {
			return f.widthError(i, w)
		}
	}
	return nil
}

// width is the values of a row of every input together.
func (f *features) width() int {
	n := 0
	for _, d := range f.dims {
		n += d
	}
	return n
}

// widthError says that column i has w values per row where its input's
// shape takes another number; every row of a task has the same width
// (arrowio refuses a ragged column, naming the row).
func (f *features) widthError(i, w int) error {
	shape := f.ios[i].Shape
	text := fmt.Sprint(shape)
	if len(shape) == 1 {
		text = fmt.Sprintf("(%d,)", shape[0])
	} else {
		text = "(" + strings.Trim(strings.ReplaceAll(text, " ", ", "), "[]") + ")"
	}
	who := "the model"
	if len(f.ios) > 1 {
		who = fmt.Sprintf("input %q of the model", f.ios[i].Name)
	}
	return fmt.Errorf("the features (column %q) have %d values per row, %s takes %d: input shape %s", f.cols[i], w, who, f.dims[i], text)
}

// load converts rec's feature columns into b's inputs over reused
// buffers, checking widths and ids; rec must have rows.
func (f *features) load(rec arrow.RecordBatch, b *gokernel.Batch) error {
	if b.X == nil {
		b.X, b.XWidths = make([][]float32, len(f.cols)), append([]int(nil), f.dims...)
	}
	for i, c := range f.convs {
		first := c.Rows()
		var err error
		if f.bufs[i], err = c.Append(f.bufs[i][:0], rec); err != nil {
			return err
		}
		if w := c.Width(); w != f.dims[i] {
			return f.widthError(i, w)
		}
		if err := f.checkIDs(i, f.bufs[i], first); err != nil {
			return err
		}
		b.X[i] = f.bufs[i]
	}
	return nil
}

// checkIDs refuses, for an input that Embeddings read, an id outside
// [0, IDLimit) (the value truncated toward zero, as Keras casts it to an
// id), naming the column, the row of the partition (first is the rows
// before x), the position and the value.
func (f *features) checkIDs(i int, x []float32, first int64) error {
	limit, w := f.ios[i].IDLimit, f.dims[i]
	if limit <= 0 || w == 0 {
		return nil
	}
	for k, v := range x {
		if !(v > -1 && float64(v) < float64(limit)) {
			return fmt.Errorf("features column %q row %d position %d: id %v is outside [0, %d), the input_dim of the Embedding that reads input %q",
				f.cols[i], first+int64(k/w), k%w, v, limit, f.ios[i].Name)
		}
	}
	return nil
}

// targets converts a stream's label columns into the targets of a batch:
// one column per model output, shaped for that output's loss by the
// kernel's one label rule (Spec.OutputLabels); an output without a loss
// has no column ("") and no targets.
type targets struct {
	cols   []string
	convs  []*arrowio.Converter // nil for an output without a column
	shapes []*gokernel.Labels   // once the column's width is known
	raw    [][]float32
	bufs   [][]float32
	spec   *gokernel.Spec
}

func newTargets(cols []string, in *arrow.Schema) (*targets, error) {
	n := len(cols)
	t := &targets{cols: cols, convs: make([]*arrowio.Converter, n), shapes: make([]*gokernel.Labels, n),
		raw: make([][]float32, n), bufs: make([][]float32, n)}
	for j, c := range cols {
		if c == "" {
			continue
		}
		t.convs[j] = arrowio.NewConverter([]string{c})
		if err := t.convs[j].Check(in); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// check checks the columns against the outputs of spec (the model at
// path): one per output, a column exactly for each output with a loss.
func (t *targets) check(spec *gokernel.Spec, path string) error {
	t.spec = spec
	if spec.Loss() == "" && len(spec.Outputs()) == 1 {
		return fmt.Errorf("model %q has no compile config with a loss", path)
	}
	outs := spec.Outputs()
	if len(t.cols) != len(outs) {
		return fmt.Errorf("model %q has %d outputs (%s); the task names %d label columns (%s): give one per output, in the model's order",
			path, len(outs), ioList(outs), len(t.cols), quoteList(t.cols))
	}
	for j, o := range outs {
		switch hasLoss := spec.OutputLabelKind(j) != ""; {
		case hasLoss && t.cols[j] == "":
			return fmt.Errorf("model %q: output %q has a loss but no label column", path, o.Name)
		case !hasLoss && t.cols[j] != "":
			return fmt.Errorf("model %q: output %q has no loss, so it takes no label column (got %q)", path, o.Name, t.cols[j])
		}
	}
	return t.widths()
}

// widths learns each label column's shaping once its width is known.
func (t *targets) widths() error {
	for j, c := range t.convs {
		if c == nil || t.shapes[j] != nil {
			continue
		}
		if w := c.Width(); w >= 0 {
			l, err := t.spec.OutputLabels(j, w)
			if err != nil {
				return fmt.Errorf("label column %q: %w", t.cols[j], unprefixed(err))
			}
			t.shapes[j] = l
		}
	}
	return nil
}

// width is the targets of a row of every output together.
func (t *targets) width() int {
	n := 0
	for j := range t.cols {
		n += t.targetWidth(j)
	}
	return n
}

// targetWidth is the targets per row of output j after shaping: one
// class index per position for ClassIndex, else the output's values; 0
// without a loss.
func (t *targets) targetWidth(j int) int {
	switch t.spec.OutputLabelKind(j) {
	case "":
		return 0
	case gokernel.ClassIndex:
		return t.spec.OutputLabelWidths(j)[0]
	}
	return prodInts(t.spec.Outputs()[j].Shape)
}

// load converts rec's label columns into b's targets over reused buffers;
// rec must have rows.
func (t *targets) load(rec arrow.RecordBatch, b *gokernel.Batch) error {
	if b.Y == nil {
		b.Y, b.YWidths = make([][]float32, len(t.cols)), make([]int, len(t.cols))
	}
	n := int(rec.NumRows())
	for j, c := range t.convs {
		if c == nil {
			b.Y[j] = nil
			continue
		}
		first := c.Rows()
		var err error
		if t.raw[j], err = c.Append(t.raw[j][:0], rec); err != nil {
			return err
		}
		if err := t.widths(); err != nil {
			return err
		}
		if t.bufs[j], err = t.shapes[j].Shape(t.bufs[j][:0], t.raw[j], n, first); err != nil {
			return fmt.Errorf("label column %q %w", t.cols[j], unprefixed(err))
		}
		b.Y[j], b.YWidths[j] = t.bufs[j], t.shapes[j].Width()
	}
	return nil
}

// rows converts a stream's feature and label columns into the rows the
// training loop and evaluation take (features and targets).
type rows struct {
	x       *features
	y       *targets
	weights *sampleWeights // nil without a sample weight column
	batch   gokernel.Batch
}

// newRows checks the header's feature and label columns against the
// input schema: present, of accepted types, none both a feature and a
// label.
func newRows(h *protocol.Header, in *arrow.Schema) (*rows, error) {
	feat, labels := h.Features(), h.Labels()
	for _, l := range labels {
		for _, c := range feat {
			if l != "" && l == c {
				return nil, fmt.Errorf("column %q is both a feature and the label", l)
			}
		}
	}
	x, err := newFeatures(feat, in)
	if err != nil {
		return nil, err
	}
	y, err := newTargets(labels, in)
	if err != nil {
		return nil, err
	}
	r := &rows{x: x, y: y}
	if h.SampleWeightCol != "" {
		if r.weights, err = newSampleWeights(h.SampleWeightCol, in); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// check checks the columns against the spec of the model at path.
func (r *rows) check(spec *gokernel.Spec, path string) error {
	if err := r.y.check(spec, path); err != nil {
		return err
	}
	return r.x.check(spec, path)
}

func (r *rows) xWidth() int { return r.x.width() }

func (r *rows) yWidth() int { return r.y.width() }

// load converts rec into a batch of rows over reused buffers (nil for a
// record of no rows). The batch is valid until the next load.
func (r *rows) load(rec arrow.RecordBatch) (*gokernel.Batch, error) {
	if rec.NumRows() == 0 {
		// The converters still learn the schema (and list widths stay
		// unknown): nothing to convert.
		convs := append(r.x.convs, r.y.convs...)
		if r.weights != nil {
			convs = append(convs, r.weights.conv)
		}
		for _, c := range convs {
			if c == nil {
				continue
			}
			if _, err := c.Append(nil, rec); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	if err := r.x.load(rec, &r.batch); err != nil {
		return nil, err
	}
	if err := r.y.load(rec, &r.batch); err != nil {
		return nil, err
	}
	if r.weights != nil {
		var err error
		if r.batch.W, err = r.weights.load(rec, r.weights.conv.Rows()); err != nil {
			return nil, err
		}
	}
	r.batch.Rows = int(rec.NumRows())
	return &r.batch, nil
}

// maxExactID is the largest id a float32 holds exactly (2^24): the rows
// reach the training loop as float32 (arrowio), integer columns included,
// so a vocabulary larger than this is refused rather than rounded.
const maxExactID = 1 << 24

// exactIDs refuses a model with an input that takes more ids than float32
// holds exactly.
func exactIDs(spec *gokernel.Spec) error {
	for _, in := range spec.Inputs() {
		if in.IDLimit > maxExactID {
			return fmt.Errorf("input %q takes ids up to %d (an Embedding's input_dim); the features travel as float32, "+
				"which holds ids exactly only up to %d", in.Name, in.IDLimit-1, maxExactID)
		}
	}
	return nil
}

// ioList names inputs or outputs with their shapes: `user (1,), item (1,)`.
func ioList(ios []gokernel.IO) string {
	s := make([]string, len(ios))
	for i, io := range ios {
		text := fmt.Sprint(io.Shape)
		if len(io.Shape) == 1 {
			text = fmt.Sprintf("(%d,)", io.Shape[0])
		} else {
			text = "(" + strings.Trim(strings.ReplaceAll(text, " ", ", "), "[]") + ")"
		}
		s[i] = io.Name + " " + text
	}
	return strings.Join(s, ", ")
}

// quoteList quotes column names: `"a", "b"`.
func quoteList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = fmt.Sprintf("%q", c)
	}
	return strings.Join(q, ", ")
}

func prodInts(shape []int) int {
	p := 1
	for _, d := range shape {
		p *= d
	}
	return p
}

// unprefixed drops the package prefix of a kernel error wrapped into a
// message that names the column.
func unprefixed(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "gokernel: "))
}
