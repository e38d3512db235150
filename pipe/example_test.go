package pipe_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/pipe"
	"github.com/gophas/gophas/protocol"
)

// Example plays the shim: it frames a describe task, runs the worker on it
// and reads the answer.
func Example() {
	mem := memory.NewGoAllocator()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "features", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
		{Name: "label", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	rec, _, _ := array.RecordFromJSON(mem, schema, strings.NewReader(
		`[{"features":[1,10],"label":0},{"features":[3,30],"label":1}]`))
	defer rec.Release()

	task, _ := protocol.AppendHeader(nil, protocol.Header{Mode: protocol.ModeDescribe, Partition: 4})
	in := bytes.NewBuffer(task)
	w := ipc.NewWriter(in, ipc.WithSchema(schema))
	w.Write(rec)
	w.Close()

	var out bytes.Buffer
	if err := pipe.Work(context.Background(), in, &out, io.Discard); err != nil {
		fmt.Println(err)
		return
	}
	rd, _ := ipc.NewReader(&out)
	defer rd.Release()
	for rd.Next() {
		r := rd.RecordBatch()
		for i := 0; i < int(r.NumRows()); i++ {
			fmt.Println(r.Column(0).ValueStr(i), r.Column(1).ValueStr(i), r.Column(2).ValueStr(i),
				r.Column(4).ValueStr(i), r.Column(5).ValueStr(i), r.Column(6).ValueStr(i))
		}
	}

	// Output:
	// features 0 2 1 3 2
	// features 1 2 10 30 20
	// label 0 2 0 1 0.5
}
