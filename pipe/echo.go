package pipe

import "fmt"

// runEcho writes the input batches back unchanged, splitting any batch longer
// than BatchRows into zero-copy slices.
func runEcho(t *Task) (err error) {
	w := t.NewWriter(t.Input.Schema())
	defer t.Close(w, &err)
	limit := int64(t.Header.BatchRows)
	for t.Input.Next() {
		rec := t.Input.RecordBatch()
		n := rec.NumRows()
		if n <= limit {
			if err := w.Write(rec); err != nil {
				return fmt.Errorf("writing the output stream: %w", err)
			}
		} else {
			for off := int64(0); off < n; off += limit {
				s := rec.NewSlice(off, min(off+limit, n))
				err := w.Write(s)
				s.Release()
				if err != nil {
					return fmt.Errorf("writing the output stream: %w", err)
				}
			}
		}
		if err := t.Flush(); err != nil {
			return fmt.Errorf("writing the output stream: %w", err)
		}
	}
	if err := t.Input.Err(); err != nil {
		return fmt.Errorf("reading the input stream: %w", err)
	}
	return nil
}
