package pipe

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/arrowio"
	"github.com/gophas/gophas/protocol"
)

// sameVectorRecords reports whether two records of vectorSchema hold the
// same rows, bit for bit.
func sameVectorRecords(t *testing.T, got, want arrow.RecordBatch) {
	t.Helper()
	if !got.Schema().Equal(want.Schema()) {
		t.Fatalf("schema: got %v; want %v", got.Schema(), want.Schema())
	}
	if got.NumRows() != want.NumRows() {
		t.Fatalf("rows: got %d; want %d", got.NumRows(), want.NumRows())
	}
	gl, wl := got.Column(0).(*array.List), want.Column(0).(*array.List)
	gv := gl.ListValues().(*array.Float64).Float64Values()
	wv := wl.ListValues().(*array.Float64).Float64Values()
	for r := 0; r < gl.Len(); r++ {
		gs, ge := gl.ValueOffsets(r)
		ws, we := wl.ValueOffsets(r)
		if ge-gs != we-ws {
			t.Fatalf("row %d width: got %d; want %d", r, ge-gs, we-ws)
		}
		for j := range ge - gs {
			if g, w := math.Float64bits(gv[gs+j]), math.Float64bits(wv[ws+j]); g != w {
				t.Fatalf("row %d element %d: got %x; want %x", r, j, g, w)
			}
		}
	}
	gy, wy := got.Column(1).(*array.Float64).Float64Values(), want.Column(1).(*array.Float64).Float64Values()
	for r := range gy {
		if math.Float64bits(gy[r]) != math.Float64bits(wy[r]) {
			t.Fatalf("label row %d: got %v; want %v", r, gy[r], wy[r])
		}
	}
}

func TestEcho(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := []arrow.RecordBatch{
		vectorRecord(mem, 50, 784, 1),
		vectorRecord(mem, 0, 784, 2),
		vectorRecord(mem, 7, 784, 3),
		vectorRecord(mem, 120, 784, 4),
	}
	defer release(in)
	// A NaN payload and a negative zero must come back bit for bit.
	vals := in[2].Column(0).(*array.List).ListValues().(*array.Float64).Float64Values()
	vals[3], vals[4] = math.Float64frombits(0x7ff8_dead_beef_0001), math.Copysign(0, -1)

	tests := []struct {
		name      string
		batchRows int
		sizes     []int64
	}{
		{"batches kept", 0, []int64{50, 0, 7, 120}},
		{"batches split", 30, []int64{30, 20, 0, 7, 30, 30, 30, 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := taskBytes(t, map[string]any{"mode": "echo", "batchRows": tt.batchRows, "partition": 3}, vectorSchema, in...)
			stdout, stderr, err := work(t, task)
			if err != nil {
				t.Fatalf("Work: %v (stderr %s)", err, stderr)
			}
			schema, out := readStream(t, mem, stdout)
			defer release(out)
			if !schema.Equal(vectorSchema) {
				t.Fatalf("schema: got %v; want %v", schema, vectorSchema)
			}
			var sizes []int64
			for _, r := range out {
				sizes = append(sizes, r.NumRows())
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tt.sizes) {
				t.Fatalf("batch sizes: got %v; want %v", sizes, tt.sizes)
			}
			// Concatenate both sides' rows in order and compare.
			got := concat(t, mem, out)
			defer got.Release()
			want := concat(t, mem, in)
			defer want.Release()
			sameVectorRecords(t, got, want)
			if !strings.Contains(stderr.String(), "partition 3, echo: done") {
				t.Errorf("stderr: got %q; want a done line for partition 3", stderr)
			}
		})
	}
}

func concat(t *testing.T, mem memory.Allocator, recs []arrow.RecordBatch) arrow.RecordBatch {
	t.Helper()
	cols := make([]arrow.Array, len(vectorSchema.Fields()))
	var n int64
	for i := range cols {
		parts := make([]arrow.Array, len(recs))
		for j, r := range recs {
			parts[j] = r.Column(i)
		}
		c, err := array.Concatenate(parts, mem)
		if err != nil {
			t.Fatal(err)
		}
		cols[i], n = c, int64(c.Len())
	}
	rec := array.NewRecordBatch(vectorSchema, cols, n)
	for _, c := range cols {
		c.Release()
	}
	return rec
}

func TestEchoEmptyStream(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	stdout, _, err := work(t, taskBytes(t, protocol.Header{Mode: protocol.ModeEcho}, vectorSchema))
	if err != nil {
		t.Fatal(err)
	}
	schema, out := readStream(t, mem, stdout)
	defer release(out)
	if !schema.Equal(vectorSchema) || len(out) != 0 {
		t.Errorf("got schema %v and %d batches; want %v and 0", schema, len(out), vectorSchema)
	}
}

func TestDescribe(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	in := []arrow.RecordBatch{vectorRecord(mem, 13, 6, 7), vectorRecord(mem, 0, 6, 8), vectorRecord(mem, 29, 6, 9)}
	defer release(in)

	stdout, stderr, err := work(t, taskBytes(t, protocol.Header{Mode: protocol.ModeDescribe}, vectorSchema, in...))
	if err != nil {
		t.Fatalf("Work: %v (stderr %s)", err, stderr)
	}
	schema, out := readStream(t, mem, stdout)
	defer release(out)
	if !schema.Equal(protocol.DescribeSchema) || len(out) != 1 {
		t.Fatalf("got schema %v, %d batches; want %v, 1", schema, len(out), protocol.DescribeSchema)
	}

	// The direct computation: every value through float32, summed in float64.
	type stat struct{ sum, min, max float64 }
	want := make([]stat, 7) // 6 features, 1 label
	for i := range want {
		want[i] = stat{0, math.Inf(1), math.Inf(-1)}
	}
	for _, rec := range in {
		l := rec.Column(0).(*array.List)
		v := l.ListValues().(*array.Float64)
		y := rec.Column(1).(*array.Float64)
		for r := 0; r < int(rec.NumRows()); r++ {
			s, _ := l.ValueOffsets(r)
			for j := 0; j < 7; j++ {
				x := y.Value(r)
				if j < 6 {
					x = v.Value(int(s) + j)
				}
				x = float64(float32(x))
				want[j].sum += x
				want[j].min, want[j].max = math.Min(want[j].min, x), math.Max(want[j].max, x)
			}
		}
	}
	rec := out[0]
	if rec.NumRows() != 7 {
		t.Fatalf("rows: got %d; want 7", rec.NumRows())
	}
	name := rec.Column(0).(*array.String)
	index := rec.Column(1).(*array.Int32)
	count := rec.Column(2).(*array.Int64)
	sum, mn, mx, mean := rec.Column(3).(*array.Float64), rec.Column(4).(*array.Float64), rec.Column(5).(*array.Float64), rec.Column(6).(*array.Float64)
	for i, w := range want {
		wantName, wantIndex := "features", int32(i)
		if i == 6 {
			wantName, wantIndex = "label", 0
		}
		if name.Value(i) != wantName || index.Value(i) != wantIndex || count.Value(i) != 42 {
			t.Errorf("row %d: got %s[%d] count %d; want %s[%d] count 42", i, name.Value(i), index.Value(i), count.Value(i), wantName, wantIndex)
		}
		if sum.Value(i) != w.sum || mn.Value(i) != w.min || mx.Value(i) != w.max || mean.Value(i) != w.sum/42 {
			t.Errorf("row %d: got sum %v min %v max %v mean %v; want %v %v %v %v", i,
				sum.Value(i), mn.Value(i), mx.Value(i), mean.Value(i), w.sum, w.min, w.max, w.sum/42)
		}
	}
}

func TestDescribeColumnsAndEmpty(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int32},
		{Name: "v", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float32)},
		{Name: "w", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
		{Name: "y", Type: arrow.PrimitiveTypes.Float32},
	}, nil)
	rows := `[{"a":1,"v":[0.5,2],"w":[1],"y":1},{"a":3,"v":[1.5,-2],"w":[2],"y":0}]`
	nan := math.NaN()
	tests := []struct {
		name   string
		header protocol.Header
		rows   string
		want   string // name index count sum min max mean per row
	}{
		{"featuresCols", protocol.Header{Mode: protocol.ModeDescribe, FeaturesCols: []string{"v", "a"}, LabelCol: "y"}, rows,
			"v 0 2 2 0.5 1.5 1|v 1 2 0 -2 2 0|a 0 2 4 1 3 2|y 0 2 1 0 1 0.5|"},
		{"no label column", protocol.Header{Mode: protocol.ModeDescribe, FeaturesCol: "w"}, rows,
			"w 0 2 3 1 2 1.5|"},
		{"empty input, known widths", protocol.Header{Mode: protocol.ModeDescribe, FeaturesCols: []string{"a", "v", "w"}, LabelCol: "y"}, `[]`,
			fmt.Sprintf("a 0 0 0 %v %v %v|v 0 0 0 %v %v %v|v 1 0 0 %v %v %v|y 0 0 0 %v %v %v|", nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
			defer mem.AssertSize(t, 0)
			rec := jsonRecord(t, mem, schema, tt.rows)
			defer rec.Release()
			stdout, stderr, err := work(t, taskBytes(t, tt.header, schema, rec))
			if err != nil {
				t.Fatalf("Work: %v (stderr %s)", err, stderr)
			}
			_, out := readStream(t, mem, stdout)
			defer release(out)
			var got strings.Builder
			r := out[0]
			for i := 0; i < int(r.NumRows()); i++ {
				if r.Column(4).IsNull(i) {
					t.Errorf("row %d: min is null; want NaN", i)
				}
				fmt.Fprintf(&got, "%s %d %d %v %v %v %v|", r.Column(0).(*array.String).Value(i), r.Column(1).(*array.Int32).Value(i),
					r.Column(2).(*array.Int64).Value(i), r.Column(3).(*array.Float64).Value(i), r.Column(4).(*array.Float64).Value(i),
					r.Column(5).(*array.Float64).Value(i), r.Column(6).(*array.Float64).Value(i))
			}
			if got.String() != tt.want {
				t.Errorf("got  %s\nwant %s", got.String(), tt.want)
			}
		})
	}
}

func TestWorkErrors(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	good := vectorRecord(mem, 4, 3, 1)
	defer good.Release()
	nullRow := jsonRecord(t, mem, vectorSchema, `[{"features":[1,2,3],"label":1},{"features":null,"label":0}]`)
	defer nullRow.Release()
	ragged := jsonRecord(t, mem, vectorSchema, `[{"features":[1,2,3],"label":1},{"features":[1,2],"label":0}]`)
	defer ragged.Release()
	strSchema := arrow.NewSchema([]arrow.Field{{Name: "features", Type: arrow.BinaryTypes.String}}, nil)
	strRec := jsonRecord(t, mem, strSchema, `[{"features":"1,2"}]`)
	defer strRec.Release()
	nanRec := vectorRecord(mem, 3, 3, 2)
	defer nanRec.Release()
	nanRec.Column(0).(*array.List).ListValues().(*array.Float64).Float64Values()[7] = math.NaN()

	describe := map[string]any{"mode": "describe", "partition": 7}
	full := taskBytes(t, protocol.Header{Mode: protocol.ModeEcho}, vectorSchema, good, good)
	frame := func(js string) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(js))), js...)
	}
	modesList := strings.Join(protocol.Modes, ", ")
	tests := []struct {
		name  string
		input []byte
		want  string
	}{
		{"null features row", taskBytes(t, describe, vectorSchema, good, nullRow),
			`pipe: partition 7, describe: arrowio: column "features" row 5: null`},
		{"ragged row", taskBytes(t, describe, vectorSchema, ragged),
			`pipe: partition 7, describe: arrowio: column "features" row 1: width 2, want 3 (the first row's)`},
		{"wrong type", taskBytes(t, describe, strSchema, strRec),
			`pipe: partition 7, describe: arrowio: column "features": type utf8 is not supported (want a number or a list of numbers)`},
		{"NaN", taskBytes(t, describe, vectorSchema, nanRec),
			`pipe: partition 7, describe: arrowio: column "features" row 2 element 1: value NaN not allowed (WithAllowNaN is false)`},
		{"missing column", taskBytes(t, map[string]any{"mode": "describe", "featuresCol": "pixels"}, vectorSchema, good),
			`pipe: partition -1, describe: arrowio: no column "pixels" in the schema (columns: "features", "label")`},
		{"empty stdin", nil, `protocol: no task on stdin: end of input before the header`},
		{"short length", []byte{0, 0}, `protocol: reading the header length (2 of 4 bytes): unexpected EOF`},
		{"zero header length", []byte{0, 0, 0, 0, '{'}, `protocol: header length 0 (bytes 00000000) out of range 1..1048576`},
		{"huge header length", []byte{0x7f, 0xff, 0xff, 0xff, '{'}, `protocol: header length 2147483647 (bytes 7fffffff) out of range 1..1048576`},
		{"short header", []byte{0, 0, 0, 9, '{', '}'}, `protocol: reading the header (2 of 9 bytes): unexpected EOF`},
		{"not JSON", frame(`mode=echo`), `protocol: header: want a JSON object: invalid character 'm' looking for beginning of value`},
		{"not UTF-8", frame("{\"mode\":\"e\xffcho\"}"), `protocol: header: invalid UTF-8 at byte 10`},
		{"no mode", frame(`{"partition":1}`), `protocol: header: field "mode" is required (modes: ` + modesList + `)`},
		{"unknown mode", frame(`{"mode":"fit"}`), `protocol: header: unknown mode "fit" (modes: ` + modesList + `)`},
		{"unknown field", frame(`{"mode":"echo","featurescol":"x"}`),
			`protocol: header: unknown field "featurescol" (fields: mode, protocol, featuresCol, featuresCols, labelCol, labelCols, model, predictionCol, predictionCols, batchRows, ioTimeoutMs, threads, partition, driver, token, tlsFingerprint, worker, epoch, epochs, batchSize, round, optimizerState, seed, shuffleBufferBytes, noShuffle, sampleWeightCol, classWeight, learningRate)`},
		{"protocol mismatch", frame(`{"mode":"echo","protocol":1}`), `protocol: header: protocol 1, this worker speaks protocol 2`},
		{"wrong field type", frame(`{"mode":"echo","batchRows":"10"}`),
			`protocol: header: json: cannot unmarshal string into Go struct field Header.batchRows of type int`},
		{"negative batchRows", frame(`{"mode":"echo","batchRows":-1}`), `protocol: header: batchRows -1, want 0..16777216`},
		{"duplicate mode", frame(`{"mode":"predict","partition":2,"mode":"echo"}`), `protocol: header: field "mode" appears twice`},
		{"threads past the bound", frame(`{"mode":"echo","threads":100000}`), `protocol: header: threads 100000, want 0..1024`},
		{"batchSize past the bound", frame(`{"mode":"echo","batchSize":100000000}`), `protocol: header: batchSize 100000000, want 0..16777216`},
		{"epochs past the bound", frame(`{"mode":"echo","epochs":2000000000}`), `protocol: header: epoch 0 of 2000000000, want 0..1073741824`},
		{"no stream", frame(`{"mode":"echo"}`),
			`pipe: partition -1, echo: reading the input stream: arrow/ipc: could not read message schema: arrow/ipc: could not read continuation indicator: arrowio: the input stream ended after 0 message(s) without its end-of-stream marker: unexpected EOF`},
		{"stream cut between two messages", full[:len(full)-8],
			`pipe: partition 0, echo: reading the input stream: arrow/ipc: could not read continuation indicator: arrowio: the input stream ended after 3 message(s) without its end-of-stream marker: unexpected EOF`},
		{"truncated stream", full[:len(full)-100],
			`pipe: partition 0, echo: reading the input stream: arrow/ipc: could not read message body: unexpected EOF`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := work(t, tt.input)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestModes: the table of worker modes runs exactly the modes the protocol
// names.
func TestModes(t *testing.T) {
	for _, m := range protocol.Modes {
		if modes[m] == nil {
			t.Errorf("mode %s has no function in the table", m)
		}
	}
	if len(modes) != len(protocol.Modes) {
		t.Errorf("the table has %d modes; the protocol names %d (%v)", len(modes), len(protocol.Modes), protocol.Modes)
	}
}

func TestWorkPanic(t *testing.T) {
	echo := modes[protocol.ModeEcho]
	modes[protocol.ModeEcho] = func(*Task) error { panic("boom") }
	defer func() { modes[protocol.ModeEcho] = echo }()
	stdout, stderr, err := work(t, taskBytes(t, map[string]any{"mode": "echo", "partition": 2}, vectorSchema))
	want := "pipe: partition 2, echo: panic: boom"
	if err == nil || err.Error() != want {
		t.Errorf("got %v; want %s", err, want)
	}
	if stdout.Len() != 0 || !strings.Contains(stderr.String(), "goroutine") {
		t.Errorf("got stdout %d bytes, stderr %q; want no stdout and a stack on stderr", stdout.Len(), stderr)
	}
}

// TestStalled feeds a header and a schema, then nothing: the read must end
// at the header's deadline, through os.Pipe (deadlines) and io.Pipe (the
// watchdog).
func TestStalled(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := vectorRecord(mem, 4000, 784, 1) // 25 MB: more than any pipe buffer
	defer rec.Release()
	task := taskBytes(t, map[string]any{"mode": "echo", "ioTimeoutMs": 150}, vectorSchema, rec)
	schemaEnd := 200 // the header and the schema message fit in 200 bytes

	pipes := map[string]func() (io.ReadCloser, io.WriteCloser){
		"os.Pipe": func() (io.ReadCloser, io.WriteCloser) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			return r, w
		},
		"io.Pipe": func() (io.ReadCloser, io.WriteCloser) { return io.Pipe() },
	}
	for name, pipe := range pipes {
		t.Run("stdin/"+name, func(t *testing.T) {
			inR, inW := pipe()
			defer inR.Close()
			go func() { inW.Write(task[:schemaEnd]) }() // and never more
			defer inW.Close()
			start := time.Now()
			err := Work(context.Background(), inR, io.Discard, io.Discard, WithAllocator(mem))
			took := time.Since(start)
			if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "pipe: stdin stalled: nothing arrived for 150ms (ioTimeoutMs 150)") {
				t.Errorf("got %v; want a stdin stall of 150ms", err)
			}
			if took < 150*time.Millisecond || took > 5*time.Second {
				t.Errorf("took %v; want about 150ms", took)
			}
		})
		t.Run("stdout/"+name, func(t *testing.T) {
			outR, outW := pipe()
			defer outR.Close()
			defer outW.Close()
			err := Work(context.Background(), bytes.NewReader(task), outW, io.Discard, WithAllocator(mem))
			if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), "pipe: stdout stalled: the reader took nothing for 150ms (ioTimeoutMs 150)") {
				t.Errorf("got %v; want a stdout stall of 150ms", err)
			}
		})
	}
}

func TestCancelled(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err = Work(ctx, r, io.Discard, io.Discard)
	if !errors.Is(err, context.Canceled) || err.Error() != "protocol: reading the header length (0 of 4 bytes): pipe: stdin: context canceled" {
		t.Errorf("got %v; want a cancelled read of stdin", err)
	}
}

// TestMatrixAgreesWithDescribe checks that describe sees what arrowio gives
// training: the same float32 values.
func TestMatrixAgreesWithDescribe(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	rec := vectorRecord(mem, 5, 4, 11)
	defer rec.Release()
	m, err := arrowio.Matrix(rec, []string{"features"})
	if err != nil {
		t.Fatal(err)
	}
	var sum0 float64
	for r := 0; r < 5; r++ {
		sum0 += float64(m.Data().([]float32)[r*4])
	}
	stdout, _, err := work(t, taskBytes(t, protocol.Header{Mode: protocol.ModeDescribe}, vectorSchema, rec))
	if err != nil {
		t.Fatal(err)
	}
	_, out := readStream(t, mem, stdout)
	defer release(out)
	if got := out[0].Column(3).(*array.Float64).Value(0); got != sum0 {
		t.Errorf("sum of column 0: got %v; want %v", got, sum0)
	}
}

func TestMemoryLimit(t *testing.T) {
	mem := memory.NewGoAllocator()
	rec := vectorRecord(mem, 100, 784, 1) // 627 KB of values
	defer rec.Release()
	task := taskBytes(t, protocol.Header{Mode: protocol.ModeEcho, Partition: 1}, vectorSchema, rec)
	err := Work(context.Background(), bytes.NewReader(task), io.Discard, io.Discard, WithMemoryLimit(100<<10))
	// arrow-go recovers the allocator's panic itself and wraps it.
	want := "memory limit: allocating 628416 bytes with 0 in use exceeds 102400"
	if err == nil || !strings.HasPrefix(err.Error(), "pipe: partition 1, echo: ") || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v; want an error of partition 1 saying %s", err, want)
	}
}
