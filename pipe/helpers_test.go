package pipe

import (
	"bytes"
	"context"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/protocol"
)

// vectorSchema is what the shim sends for a DataFrame of an ML vector column
// and a double label.
var vectorSchema = arrow.NewSchema([]arrow.Field{
	{Name: "features", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
	{Name: "label", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// vectorRecord makes rows rows of width random features and a label,
// reproducible from seed.
func vectorRecord(mem memory.Allocator, rows, width int, seed uint64) arrow.RecordBatch {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := array.NewRecordBuilder(mem, vectorSchema)
	defer b.Release()
	lb := b.Field(0).(*array.ListBuilder)
	vb := lb.ValueBuilder().(*array.Float64Builder)
	vb.Reserve(rows * width)
	for r := 0; r < rows; r++ {
		lb.Append(true)
		for j := 0; j < width; j++ {
			vb.UnsafeAppend(math.Round(rng.Float64()*2550) / 10)
		}
		b.Field(1).(*array.Float64Builder).Append(float64(rng.IntN(10)))
	}
	return b.NewRecordBatch()
}

// jsonRecord builds a record from JSON rows.
func jsonRecord(t testing.TB, mem memory.Allocator, schema *arrow.Schema, rows string) arrow.RecordBatch {
	t.Helper()
	rec, _, err := array.RecordFromJSON(mem, schema, strings.NewReader(rows))
	if err != nil {
		t.Fatalf("RecordFromJSON: %v", err)
	}
	return rec
}

// taskBytes is what the shim writes: the framed header, then an Arrow IPC
// stream of schema and recs.
func taskBytes(t testing.TB, header any, schema *arrow.Schema, recs ...arrow.RecordBatch) []byte {
	t.Helper()
	b, err := protocol.AppendHeader(nil, header)
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.NewBuffer(b)
	w := ipc.NewWriter(buf, ipc.WithSchema(schema))
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// work runs Work on input with a checked allocator and returns stdout,
// stderr and the error; it fails the test if memory leaks.
func work(t testing.TB, input []byte) (stdout, stderr *bytes.Buffer, err error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	err = Work(context.Background(), bytes.NewReader(input), stdout, stderr, WithAllocator(mem))
	return stdout, stderr, err
}

// readStream decodes an output stream into its schema and records, which
// the caller releases.
func readStream(t testing.TB, mem memory.Allocator, r io.Reader) (*arrow.Schema, []arrow.RecordBatch) {
	t.Helper()
	rd, err := ipc.NewReader(r, ipc.WithAllocator(mem))
	if err != nil {
		t.Fatalf("reading the output stream: %v", err)
	}
	defer rd.Release()
	var recs []arrow.RecordBatch
	for rd.Next() {
		rec := rd.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	if err := rd.Err(); err != nil {
		t.Fatalf("reading the output stream: %v", err)
	}
	return rd.Schema(), recs
}

func release(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}
