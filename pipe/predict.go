package pipe

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"gorgonia.org/tensor"

	"github.com/gophas/gophas/arrowio"
	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/protocol"
)

// loadModel loads the header's model directory with the header's threads;
// with a driver in the header, the spec of the directory with the driver's
// current weights.
func loadModel(ctx context.Context, h *protocol.Header) (*gokernel.Model, error) {
	if h.Driver != "" {
		return driverModel(ctx, h)
	}
	m, err := gokernel.LoadModel(h.Model, gokernel.WithThreads(h.Threads))
	if err != nil {
		return nil, fmt.Errorf("loading model %q: %w", h.Model, err)
	}
	return m, nil
}

// checkWidth reports a features width that differs from the model's input
// width; a width still unknown (-1) passes.
func checkWidth(conv *arrowio.Converter, cols []string, m *gokernel.Model) error {
	w, in := conv.Width(), m.Spec().InputDim()
	if w < 0 || w == in {
		return nil
	}
	return widthError(cols, w, m.Spec())
}

// widthError says that the features have w values per row where the
// model's input shape takes another number; every row of a task has the
// same width (arrowio refuses a ragged column, naming the row).
func widthError(cols []string, w int, spec *gokernel.Spec) error {
	shape := spec.InputShape()
	text := fmt.Sprint(shape)
	if len(shape) == 1 {
		text = fmt.Sprintf("(%d,)", shape[0])
	} else {
		text = "(" + strings.Trim(strings.ReplaceAll(text, " ", ", "), "[]") + ")"
	}
	return fmt.Errorf("the features (%s) have %d values per row, the model takes %d: input shape %s", quoteCols(cols), w, spec.InputDim(), text)
}

func quoteCols(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = fmt.Sprintf("%q", c)
	}
	if len(q) == 1 {
		return "column " + q[0]
	}
	return "columns " + strings.Join(q, ", ")
}

// matrix is a reusable float32 buffer and the conversion of one stream's
// batches into it.
type matrix struct {
	conv *arrowio.Converter
	buf  []float32
}

// load converts rec into the buffer, reusing its capacity, and returns a
// rows×width tensor over it (nil for a record of no rows).
func (x *matrix) load(rec arrow.RecordBatch) (*tensor.Dense, error) {
	var err error
	if x.buf, err = x.conv.Append(x.buf[:0], rec); err != nil {
		return nil, err
	}
	n := int(rec.NumRows())
	if n == 0 {
		return nil, nil
	}
	return tensor.New(tensor.WithShape(n, x.conv.Width()), tensor.WithBacking(x.buf)), nil
}

// runPredict appends the model's prediction to every input batch.
func runPredict(t *Task) (err error) {
	h := &t.Header
	in := t.Input.Schema()
	feat := h.Features()
	x := &matrix{conv: arrowio.NewConverter(feat)}
	if err := x.conv.Check(in); err != nil {
		return err
	}
	if len(in.FieldIndices(h.PredictionCol)) > 0 {
		return fmt.Errorf("the input already has a column %q (set predictionCol)", h.PredictionCol)
	}
	m, err := loadModel(t.Ctx, h)
	if err != nil {
		return err
	}
	if err := checkWidth(x.conv, feat, m); err != nil {
		return err
	}
	if err := exactIDs(m.Spec()); err != nil {
		return err
	}
	outDim := m.Spec().OutputDim()
	predType := arrow.DataType(arrow.PrimitiveTypes.Float64)
	if outDim > 1 {
		predType = arrow.ListOf(arrow.PrimitiveTypes.Float64)
	}
	fields := append(in.Fields(), arrow.Field{Name: h.PredictionCol, Type: predType})
	md := in.Metadata()
	schema := arrow.NewSchema(fields, &md)

	w := t.NewWriter(schema)
	defer t.Close(w, &err)
	cols := make([]arrow.Array, len(fields))
	predict := func(rec arrow.RecordBatch) error {
		xt, err := x.load(rec)
		if err != nil || xt == nil {
			return err
		}
		if err := checkWidth(x.conv, feat, m); err != nil {
			return err
		}
		yt, err := m.Predict(xt)
		if err != nil {
			return err
		}
		pred, err := predictionColumn(t, yt.Data().([]float32), outDim)
		if err != nil {
			return err
		}
		defer pred.Release()
		copy(cols, rec.Columns())
		cols[len(cols)-1] = pred
		out := array.NewRecordBatch(schema, cols, rec.NumRows())
		defer out.Release()
		clear(cols)
		if err := w.Write(out); err != nil {
			return fmt.Errorf("writing the output stream: %w", err)
		}
		return nil
	}
	limit := int64(h.BatchRows)
	for t.Input.Next() {
		rec := t.Input.RecordBatch()
		for off, n := int64(0), rec.NumRows(); off < n; off += limit {
			s := rec
			if n > limit {
				s = rec.NewSlice(off, min(off+limit, n))
			}
			err := predict(s)
			if s != rec {
				s.Release()
			}
			if err != nil {
				return err
			}
		}
		if err := t.Flush(); err != nil {
			return fmt.Errorf("writing the output stream: %w", err)
		}
		if err := t.Ctx.Err(); err != nil {
			return fmt.Errorf("cancelled: %w", err)
		}
	}
	if err := t.Input.Err(); err != nil {
		return fmt.Errorf("reading the input stream: %w", err)
	}
	return nil
}

// predictionColumn turns rows×outDim predictions into the output column:
// float64 for one output, list<float64> (an ML vector) for several.
func predictionColumn(t *Task, y []float32, outDim int) (arrow.Array, error) {
	if outDim > 1 {
		return arrowio.FromMatrix(t.Mem, y, outDim)
	}
	b := array.NewFloat64Builder(t.Mem)
	defer b.Release()
	b.Reserve(len(y))
	for _, v := range y {
		b.UnsafeAppend(float64(v))
	}
	return b.NewArray(), nil
}
