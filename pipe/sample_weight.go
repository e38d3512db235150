package pipe

import (
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/gophas/gophas/arrowio"
)

// sampleWeights reads the header's sample weight column: one number per
// row, finite and not negative (Keras' sample_weight).
type sampleWeights struct {
	col  string
	conv *arrowio.Converter
	buf  []float32
}

func newSampleWeights(col string, in *arrow.Schema) (*sampleWeights, error) {
	w := &sampleWeights{col: col, conv: arrowio.NewConverter([]string{col})}
	if err := w.conv.Check(in); err != nil {
		return nil, fmt.Errorf("sample weight column: %w", err)
	}
	if n := w.conv.Width(); n > 1 {
		return nil, fmt.Errorf("sample weight column %q holds %d values per row; want one number", col, n)
	}
	return w, nil
}

// load returns the weights of rec's rows, the first of which is row first
// of the stream.
func (w *sampleWeights) load(rec arrow.RecordBatch, first int64) ([]float32, error) {
	var err error
	if w.buf, err = w.conv.Append(w.buf[:0], rec); err != nil {
		return nil, fmt.Errorf("sample weight column: %w", err)
	}
	if n := w.conv.Width(); n != 1 {
		return nil, fmt.Errorf("sample weight column %q holds %d values per row; want one number", w.col, n)
	}
	for i, v := range w.buf {
		if !(v >= 0) || math.IsInf(float64(v), 1) {
			return nil, fmt.Errorf("sample weight column %q: row %d holds %v; sample weights must be finite numbers >= 0", w.col, first+int64(i), v)
		}
	}
	return w.buf, nil
}
