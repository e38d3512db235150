package pipe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/arrowio"
	"github.com/gophas/gophas/protocol"
)

// Option configures Work.
type Option func(*workConfig)

type workConfig struct {
	mem        memory.Allocator
	maxMessage int64
	memLimit   int64
	bufSize    int
}

// DefaultMemoryLimit bounds the Arrow memory a task holds at once.
const DefaultMemoryLimit = 4 << 30

// maxMetadataBytes bounds the flatbuffer metadata of one input IPC message.
const maxMetadataBytes = 16 << 20

// WithMemoryLimit bounds the Arrow memory (input batches, decompression,
// output) the task holds at once; the default is DefaultMemoryLimit. An
// allocation past it ends the task with an error.
func WithMemoryLimit(n int64) Option {
	return func(c *workConfig) { c.memLimit = n }
}

// DefaultMaxMessageBytes bounds the body of one IPC message of the input
// stream (one record batch), so a corrupt stream cannot make the worker
// allocate without bound.
const DefaultMaxMessageBytes = 256 << 20

// WithAllocator sets the allocator of the Arrow data read and written. The
// default is memory.DefaultAllocator.
func WithAllocator(mem memory.Allocator) Option {
	return func(c *workConfig) { c.mem = mem }
}

// WithMaxMessageBytes bounds the body of one input IPC message; the default
// is DefaultMaxMessageBytes. A larger message is an error.
func WithMaxMessageBytes(n int64) Option {
	return func(c *workConfig) { c.maxMessage = n }
}

// Task is one worker task as a mode's function sees it.
type Task struct {
	Header protocol.Header
	Ctx    context.Context
	// Input yields the batches of the input stream. A mode reads it to the
	// end (or fails); Work checks Input.Err afterwards.
	Input *ipc.Reader
	// Log is stderr.
	Log io.Writer
	// Mem allocates the Arrow data of the task.
	Mem memory.Allocator
	// MemLimit is the task's memory limit (WithMemoryLimit): the bytes Mem
	// holds at most, and the bound of the buffers a header's numbers size.
	MemLimit int64

	out *bufio.Writer
}

// NewWriter returns the IPC writer of the task's one output stream, with the
// given schema, uncompressed. The mode ends it with Close.
func (t *Task) NewWriter(schema *arrow.Schema) *ipc.Writer {
	return ipc.NewWriter(t.out, ipc.WithSchema(schema), ipc.WithAllocator(t.Mem))
}

// Close ends the output stream written by w: with end-of-stream when *err is
// nil, and with nothing more (the buffered rest dropped) when the task
// failed, so that a failed task never looks like a complete stream. Modes
// defer it right after NewWriter.
func (t *Task) Close(w *ipc.Writer, err *error) {
	if *err != nil {
		t.out.Reset(io.Discard)
	}
	if cerr := w.Close(); cerr != nil && *err == nil {
		*err = fmt.Errorf("writing the output stream: %w", cerr)
	}
}

// Flush sends what the output writer has buffered; modes call it after each
// batch so the shim receives results as they are made.
func (t *Task) Flush() error { return t.out.Flush() }

// modes is the table of worker modes: the function that runs each mode
// the protocol names (protocol.Modes).
var modes = map[string]func(*Task) error{
	protocol.ModeEcho:     runEcho,
	protocol.ModeDescribe: runDescribe,
	protocol.ModePredict:  runPredict,
	protocol.ModeEvaluate: runEvaluate,
	protocol.ModeTrain:    runTrain,
}

// Work runs one task of the executor pipe: it reads the header and the Arrow
// input stream from stdin, runs the header's mode and writes one Arrow IPC
// stream to stdout. It returns an error naming the cause; a panic in the task
// becomes an error too. Work does not close stdin or stdout.
func Work(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, opts ...Option) (err error) {
	cfg := workConfig{mem: memory.DefaultAllocator, maxMessage: DefaultMaxMessageBytes,
		memLimit: DefaultMemoryLimit, bufSize: 1 << 20}
	for _, o := range opts {
		o(&cfg)
	}
	mem := &limitedAllocator{mem: cfg.mem, limit: cfg.memLimit}
	start := time.Now()
	h := protocol.Header{Partition: protocol.DefaultPartition}
	in := newTimedReader(ctx, stdin, protocol.DefaultIOTimeout)
	defer in.Close()
	var out *timedIO
	defer func() {
		if out != nil {
			out.Close()
		}
		if r := recover(); r != nil {
			if e, ok := r.(errMemoryLimit); ok {
				err = fmt.Errorf("pipe: partition %d, %s: %w", h.Partition, h.Mode, e)
				return
			}
			fmt.Fprintf(stderr, "gophas worker: panic: %v\n%s", r, debug.Stack())
			err = fmt.Errorf("pipe: partition %d, %s: panic: %v", h.Partition, h.Mode, r)
		}
	}()

	br := bufio.NewReaderSize(in, cfg.bufSize)
	if h, err = protocol.ReadHeader(br); err != nil {
		return preferStall(err, in, nil)
	}
	in.setTimeout(h.IOTimeout())
	if h.Threads > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(h.Threads))
	}
	wrap := func(err error) error {
		err = preferStall(err, in, out)
		return fmt.Errorf("pipe: partition %d, %s: %w", h.Partition, h.Mode, err)
	}

	stream := arrowio.CheckedStream(br, maxMetadataBytes, cfg.maxMessage, arrowio.WithEndMarker())
	rd, err := ipc.NewReader(stream, ipc.WithAllocator(mem), ipc.WithBodySizeLimit(cfg.maxMessage),
		ipc.WithMetadataSizeLimit(maxMetadataBytes))
	if err != nil {
		return wrap(fmt.Errorf("reading the input stream: %w", err))
	}
	defer rd.Release()

	out = newTimedWriter(ctx, stdout, h.IOTimeout())
	t := &Task{Header: h, Ctx: ctx, Input: rd, Log: stderr, Mem: mem, MemLimit: cfg.memLimit,
		out: bufio.NewWriterSize(out, cfg.bufSize)}
	if err := modes[h.Mode](t); err != nil {
		return wrap(err)
	}
	if err := rd.Err(); err != nil {
		return wrap(fmt.Errorf("reading the input stream: %w", err))
	}
	if err := t.Flush(); err != nil {
		return wrap(fmt.Errorf("writing the output stream: %w", err))
	}
	fmt.Fprintf(stderr, "gophas worker: partition %d, %s: done in %v (%d bytes in, %d out)\n",
		h.Partition, h.Mode, time.Since(start).Round(time.Millisecond), in.bytes, out.bytes)
	return nil
}

// preferStall returns the stall or cancellation of either side of the pipe
// when there was one: the error it caused upstream (a truncated message,
// a short write) is only its symptom.
func preferStall(err error, in, out *timedIO) error {
	for _, side := range []*timedIO{in, out} {
		if side != nil && side.Err() != nil && !errors.Is(err, side.Err()) {
			return fmt.Errorf("%w (%v)", side.Err(), err)
		}
	}
	return err
}
