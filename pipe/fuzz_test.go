package pipe

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/protocol"
)

var updateTasks = flag.Bool("update-tasks", false, "rewrite the testdata task streams")

// seedTasks are the task streams committed in testdata/ as fuzz seeds.
func seedTasks(t testing.TB) map[string][]byte {
	mem := memory.NewGoAllocator()
	vec := vectorRecord(mem, 3, 4, 1)
	defer vec.Release()
	cols := arrow.NewSchema([]arrow.Field{
		{Name: "a", Type: arrow.PrimitiveTypes.Int32},
		{Name: "v", Type: arrow.FixedSizeListOf(2, arrow.PrimitiveTypes.Float32)},
		{Name: "y", Type: arrow.PrimitiveTypes.Float64},
	}, nil)
	colRec := jsonRecord(t, mem, cols, `[{"a":1,"v":[0.5,2],"y":1},{"a":null,"v":[1.5,-2],"y":0}]`)
	defer colRec.Release()
	null := jsonRecord(t, mem, vectorSchema, `[{"features":[1,2],"label":1},{"features":null,"label":0}]`)
	defer null.Release()
	return map[string][]byte{
		"echo.task":          taskBytes(t, map[string]any{"mode": "echo", "batchRows": 2}, vectorSchema, vec, vec),
		"echo_empty.task":    taskBytes(t, map[string]any{"mode": "echo"}, vectorSchema),
		"describe.task":      taskBytes(t, map[string]any{"mode": "describe", "protocol": protocol.ProtocolVersion, "partition": 2}, vectorSchema, vec),
		"describe_cols.task": taskBytes(t, map[string]any{"mode": "describe", "featuresCols": []string{"v", "a"}, "labelCol": "y"}, cols, colRec),
		"describe_null.task": taskBytes(t, map[string]any{"mode": "describe"}, vectorSchema, null),
	}
}

// TestTestdata checks that testdata/ holds the current seed tasks; run
// with -update-tasks to rewrite them.
func TestTestdata(t *testing.T) {
	for name, want := range seedTasks(t) {
		path := filepath.Join("testdata", name)
		if *updateTasks {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestTestdata -update-tasks)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got %d bytes; want %d: stale, run go test -run TestTestdata -update-tasks", path, len(got), len(want))
		}
	}
}

// FuzzWork feeds arbitrary bytes to a worker as its stdin. Nothing may
// panic (a recovered panic shows as an error mentioning it), leak Arrow
// memory or hang, and a successful task writes a readable stream.
func FuzzWork(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.task"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A hang shows as a crash, so the fuzzer keeps the input.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("Work hung on %q", data)) })
		defer watchdog.Stop()
		var stdout bytes.Buffer
		err := Work(ctx, bytes.NewReader(data), &stdout, io.Discard, WithAllocator(mem), WithMaxMessageBytes(1<<20))
		if err != nil && strings.Contains(err.Error(), "panic:") {
			t.Fatalf("Work panicked: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatalf("Work took more than 10s: %v", err)
		}
		if err == nil {
			rd, rerr := ipc.NewReader(&stdout, ipc.WithAllocator(mem))
			if rerr != nil {
				t.Fatalf("output stream: %v", rerr)
			}
			for rd.Next() {
			}
			if rd.Err() != nil {
				t.Fatalf("output stream: %v", rd.Err())
			}
			rd.Release()
		}
		// arrow-go recovers its own panics on some corrupt batches
		// ("unknown error while reading") and leaks the buffer it was
		// filling; that is arrow-go's, bounded, and the worker exits after.
		if err != nil && strings.Contains(err.Error(), "arrow/ipc: unknown error while reading") {
			return
		}
		if mem.CurrentAlloc() != 0 {
			t.Logf("Work: %v", err)
		}
		mem.AssertSize(t, 0)
	})
}
