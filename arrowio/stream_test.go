package arrowio

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// streamOf writes an IPC stream of one batch per rows argument.
func streamOf(t *testing.T, rows ...string) []byte {
	t.Helper()
	fields := []arrow.Field{{Name: "features", Type: f64List}}
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(arrow.NewSchema(fields, nil)))
	for _, r := range rows {
		rec := record(t, memory.NewGoAllocator(), fields, r)
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		rec.Release()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestEndMarker: a stream cut exactly between two messages (no
// end-of-stream marker) reads as complete unless WithEndMarker is given;
// then it is an error naming the cut.
func TestEndMarker(t *testing.T) {
	one := streamOf(t, `[{"features":[1,2]},{"features":[3,4]}]`)
	two := streamOf(t, `[{"features":[1,2]},{"features":[3,4]}]`, `[{"features":[5,6]}]`)
	if !bytes.HasPrefix(two, one[:len(one)-8]) {
		t.Fatal("the two-batch stream does not begin with the one-batch stream")
	}
	tests := []struct {
		name     string
		data     []byte
		rows     int64 // read before the end or the error
		messages int   // in the error
	}{
		{"whole", two, 3, -1},
		{"cut before the end marker", two[:len(two)-8], 3, 3},
		{"cut after the first batch", one[:len(one)-8], 2, 2},
	}
	for _, tt := range tests {
		for _, strict := range []bool{false, true} {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			var opts []StreamOption
			if strict {
				opts = append(opts, WithEndMarker())
			}
			rd, err := ipc.NewReader(CheckedStream(bytes.NewReader(tt.data), 1<<20, 1<<20, opts...), ipc.WithAllocator(mem))
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			var rows int64
			for rd.Next() {
				rows += rd.RecordBatch().NumRows()
			}
			err = rd.Err()
			rd.Release()
			mem.AssertSize(t, 0)
			if rows != tt.rows {
				t.Errorf("%s (end marker required: %v): %d rows; want %d", tt.name, strict, rows, tt.rows)
			}
			wantErr := strict && tt.messages >= 0
			switch {
			case !wantErr && err != nil:
				t.Errorf("%s (end marker required: %v): %v; want no error", tt.name, strict, err)
			case wantErr && (!errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "without its end-of-stream marker")):
				t.Errorf("%s (end marker required): %v; want an error saying the marker is missing", tt.name, err)
			case wantErr && !strings.Contains(err.Error(), "after "+string(rune('0'+tt.messages))+" message(s)"):
				t.Errorf("%s (end marker required): %v; want it to say after %d message(s)", tt.name, err, tt.messages)
			}
		}
	}
}
