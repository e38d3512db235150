package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/protocol"
)

// TestWorker runs `gophas worker` through run with in-memory pipes: an echo
// comes back intact, and a failing describe exits 1 with the cause as the
// last stderr line.
func TestWorker(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "features", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
		{Name: "label", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	good, _, err := array.RecordFromJSON(mem, schema, strings.NewReader(`[{"features":[1,2],"label":1},{"features":[3,4],"label":0}]`))
	if err != nil {
		t.Fatal(err)
	}
	defer good.Release()
	bad, _, err := array.RecordFromJSON(mem, schema, strings.NewReader(`[{"features":[1,2],"label":1},{"features":null,"label":0}]`))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Release()
	task := func(mode string, recs ...arrow.RecordBatch) []byte {
		b, err := protocol.AppendHeader(nil, map[string]any{"mode": mode, "partition": 9})
		if err != nil {
			t.Fatal(err)
		}
		buf := bytes.NewBuffer(b)
		w := ipc.NewWriter(buf, ipc.WithSchema(schema))
		for _, r := range recs {
			w.Write(r)
		}
		w.Close()
		return buf.Bytes()
	}

	tests := []struct {
		name     string
		stdin    []byte
		code     int
		lastLine string // last stderr line, or "" to skip
		rows     int64  // rows on stdout when code is 0
	}{
		{"echo", task("echo", good, good), protocol.ExitOK, "", 4},
		{"describe null row", task("describe", good, bad), protocol.ExitError,
			`gophas: pipe: partition 9, describe: arrowio: column "features" row 3: null`, 0},
		{"bad header length", []byte{0, 0, 0, 0}, protocol.ExitError,
			`gophas: protocol: header length 0 (bytes 00000000) out of range 1..1048576`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"worker"}, bytes.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit code: got %d; want %d (stderr %s)", code, tt.code, stderr.String())
			}
			lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
			if tt.lastLine != "" && lines[len(lines)-1] != tt.lastLine {
				t.Errorf("last stderr line: got %q; want %q", lines[len(lines)-1], tt.lastLine)
			}
			if code != protocol.ExitOK {
				return
			}
			rd, err := ipc.NewReader(&stdout, ipc.WithAllocator(mem))
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Release()
			var rows int64
			for rd.Next() {
				rows += rd.RecordBatch().NumRows()
			}
			if rd.Err() != nil || rows != tt.rows {
				t.Errorf("stdout: got %d rows (err %v); want %d", rows, rd.Err(), tt.rows)
			}
		})
	}
}
