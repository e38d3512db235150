package pipe

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

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

// runPredict appends the model's outputs, one column each, to every input
// batch.
func runPredict(t *Task) (err error) {
	h := &t.Header
	in := t.Input.Schema()
	x, err := newFeatures(h.Features(), in)
	if err != nil {
		return err
	}
	preds := h.Predictions()
	for _, c := range preds {
		if len(in.FieldIndices(c)) > 0 {
			return fmt.Errorf("the input already has a column %q (set predictionCol, or predictionCols for a model of several outputs)", c)
		}
	}
	m, err := loadModel(t.Ctx, h)
	if err != nil {
		return err
	}
	if err := x.check(m.Spec(), h.Model); err != nil {
		return err
	}
	outs := m.Spec().Outputs()
	if len(preds) != len(outs) {
		return fmt.Errorf("model %q has %d outputs (%s); the task names %d prediction columns (%s): give one per output (predictionCols), in the model's order",
			h.Model, len(outs), ioList(outs), len(preds), quoteList(preds))
	}
	dims := make([]int, len(outs))
	fields := in.Fields()
	for j, o := range outs {
		dims[j] = prodInts(o.Shape)
		predType := arrow.DataType(arrow.PrimitiveTypes.Float64)
		if dims[j] > 1 {
			predType = arrow.ListOf(arrow.PrimitiveTypes.Float64)
		}
		fields = append(fields, arrow.Field{Name: preds[j], Type: predType})
	}
	md := in.Metadata()
	schema := arrow.NewSchema(fields, &md)

	w := t.NewWriter(schema)
	defer t.Close(w, &err)
	cols := make([]arrow.Array, len(fields))
	var b gokernel.Batch
	var ys [][]float32
	predict := func(rec arrow.RecordBatch) error {
		if rec.NumRows() == 0 {
			return nil
		}
		if err := x.load(rec, &b); err != nil {
			return err
		}
		b.Rows = int(rec.NumRows())
		if ys, err = m.PredictBatch(&b, ys); err != nil {
			return err
		}
		copy(cols, rec.Columns())
		defer func() {
			for _, c := range cols[len(in.Fields()):] {
				if c != nil {
					c.Release()
				}
			}
			clear(cols)
		}()
		for j := range outs {
			pred, err := predictionColumn(t, ys[j], dims[j])
			if err != nil {
				return err
			}
			cols[len(in.Fields())+j] = pred
		}
		out := array.NewRecordBatch(schema, cols, rec.NumRows())
		defer out.Release()
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

// predictionColumn turns rows×width predictions of one output into its
// column: float64 for one value per row, list<float64> (an ML vector) for
// several.
func predictionColumn(t *Task, y []float32, width int) (arrow.Array, error) {
	if width > 1 {
		return arrowio.FromMatrix(t.Mem, y, width)
	}
	b := array.NewFloat64Builder(t.Mem)
	defer b.Release()
	b.Reserve(len(y))
	for _, v := range y {
		b.UnsafeAppend(float64(v))
	}
	return b.NewArray(), nil
}
