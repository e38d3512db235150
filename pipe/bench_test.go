package pipe

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/protocol"
)

// BenchmarkEcho measures the worker's echo throughput through OS pipes, as
// the shim drives it: a writer feeding stdin, a reader draining stdout.
// MB/s counts the task bytes (header and input stream).
func BenchmarkEcho(b *testing.B) {
	for _, shape := range []struct{ rows, batches int }{{1000, 10}, {10000, 4}} {
		b.Run(fmt.Sprintf("rows=%d,width=784", shape.rows), func(b *testing.B) {
			mem := memory.NewGoAllocator()
			rec := vectorRecord(mem, shape.rows, 784, 1)
			defer rec.Release()
			recs := make([]arrow.RecordBatch, shape.batches)
			for i := range recs {
				recs[i] = rec
			}
			task := taskBytes(b, protocol.Header{Mode: protocol.ModeEcho}, vectorSchema, recs...)
			b.SetBytes(int64(len(task)))
			for b.Loop() {
				inR, inW, _ := os.Pipe()
				outR, outW, _ := os.Pipe()
				go func() { io.Copy(inW, bytes.NewReader(task)); inW.Close() }()
				done := make(chan int64)
				go func() { n, _ := io.Copy(io.Discard, outR); done <- n }()
				if err := Work(context.Background(), inR, outW, io.Discard); err != nil {
					b.Fatal(err)
				}
				outW.Close()
				if n := <-done; n < int64(len(task))*9/10 {
					b.Fatalf("echoed %d bytes of %d", n, len(task))
				}
				inR.Close()
				outR.Close()
			}
		})
	}
}

// BenchmarkDescribe measures describe on in-memory pipes.
func BenchmarkDescribe(b *testing.B) {
	mem := memory.NewGoAllocator()
	rec := vectorRecord(mem, 10000, 784, 1)
	defer rec.Release()
	task := taskBytes(b, protocol.Header{Mode: protocol.ModeDescribe}, vectorSchema, rec)
	b.Run("rows=10000,width=784", func(b *testing.B) {
		b.SetBytes(int64(len(task)))
		for b.Loop() {
			if err := Work(context.Background(), bytes.NewReader(task), io.Discard, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}
