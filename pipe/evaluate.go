package pipe

import (
	"fmt"
	"slices"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/protocol"
)

// runEvaluate sums the model's loss and metrics over the partition's rows
// and writes them as one batch of EvaluateSchema.
func runEvaluate(t *Task) (err error) {
	h := &t.Header
	in := t.Input.Schema()
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
// stateful metric as its state's keys), then any other key (WeightKey)
// sorted.
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
