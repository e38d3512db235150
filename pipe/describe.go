package pipe

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/gophas/gophas/arrowio"
	"github.com/gophas/gophas/protocol"
)

// summary accumulates the column statistics of one dense matrix.
type summary struct {
	conv          *arrowio.Converter
	names         []string
	count         int64
	sum, min, max []float64
	buf           []float32
}

func newSummary(cols []string, schema *arrow.Schema) (*summary, error) {
	s := &summary{conv: arrowio.NewConverter(cols), names: cols}
	if err := s.conv.Check(schema); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *summary) add(rec arrow.RecordBatch) error {
	var err error
	if s.buf, err = s.conv.Append(s.buf[:0], rec); err != nil {
		return err
	}
	n, w := int(rec.NumRows()), s.conv.Width()
	if n == 0 {
		return nil
	}
	if s.sum == nil {
		s.sum, s.min, s.max = make([]float64, w), make([]float64, w), make([]float64, w)
		for j := range w {
			s.min[j], s.max[j] = math.Inf(1), math.Inf(-1)
		}
	}
	for r := range n {
		row := s.buf[r*w : (r+1)*w]
		for j, v := range row {
			f := float64(v)
			s.sum[j] += f
			s.min[j] = math.Min(s.min[j], f)
			s.max[j] = math.Max(s.max[j], f)
		}
	}
	s.count += int64(n)
	return nil
}

// appendRows appends one output row per matrix column whose width is known.
func (s *summary) appendRows(b *array.RecordBuilder) {
	off := 0
	nan := math.NaN()
	for i, w := range s.conv.Widths() {
		for k := 0; k < w; k++ {
			b.Field(0).(*array.StringBuilder).Append(s.names[i])
			b.Field(1).(*array.Int32Builder).Append(int32(k))
			b.Field(2).(*array.Int64Builder).Append(s.count)
			if s.count == 0 {
				b.Field(3).(*array.Float64Builder).Append(0)
				b.Field(4).(*array.Float64Builder).Append(nan)
				b.Field(5).(*array.Float64Builder).Append(nan)
				b.Field(6).(*array.Float64Builder).Append(nan)
				continue
			}
			j := off + k
			b.Field(3).(*array.Float64Builder).Append(s.sum[j])
			b.Field(4).(*array.Float64Builder).Append(s.min[j])
			b.Field(5).(*array.Float64Builder).Append(s.max[j])
			b.Field(6).(*array.Float64Builder).Append(s.sum[j] / float64(s.count))
		}
		off += max(w, 0)
	}
}

// runDescribe summarizes the features (and each label column the input
// has) as one batch of DescribeSchema.
func runDescribe(t *Task) (err error) {
	schema := t.Input.Schema()
	feat, err := newSummary(t.Header.Features(), schema)
	if err != nil {
		return err
	}
	var labels []*summary
	for _, c := range t.Header.Labels() {
		if c == "" || len(schema.FieldIndices(c)) == 0 {
			continue
		}
		label, err := newSummary([]string{c}, schema)
		if err != nil {
			return err
		}
		labels = append(labels, label)
	}
	for t.Input.Next() {
		rec := t.Input.RecordBatch()
		if err := feat.add(rec); err != nil {
			return err
		}
		for _, label := range labels {
			if err := label.add(rec); err != nil {
				return err
			}
		}
		if err := t.Ctx.Err(); err != nil {
			return fmt.Errorf("cancelled: %w", err)
		}
	}
	if err := t.Input.Err(); err != nil {
		return fmt.Errorf("reading the input stream: %w", err)
	}

	b := array.NewRecordBuilder(t.Mem, protocol.DescribeSchema)
	defer b.Release()
	feat.appendRows(b)
	for _, label := range labels {
		label.appendRows(b)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	w := t.NewWriter(protocol.DescribeSchema)
	defer t.Close(w, &err)
	if err := w.Write(rec); err != nil {
		return fmt.Errorf("writing the output stream: %w", err)
	}
	return nil
}
