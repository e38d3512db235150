package pipe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// ErrStalled is wrapped by the error of a read or write on the pipe that
// waited longer than the I/O timeout.
var ErrStalled = errors.New("stalled")

// readDeadliner and writeDeadliner are what *os.File and net.Conn offer.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

type writeDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// timedIO bounds every wait of one side of the pipe. When the underlying
// reader or writer supports deadlines (pipes and sockets as *os.File do) each
// call sets one; otherwise a pump goroutine does the I/O and the caller
// waits on it with a timer. The pump goroutine of a reader that never returns
// outlives the task; the worker process exits right after.
type timedIO struct {
	ctx     context.Context
	side    string // "stdin" or "stdout"
	timeout atomic.Int64
	stop    func() bool // stops the context watch

	r  io.Reader
	w  io.Writer
	rd readDeadliner
	wd writeDeadliner

	pumpReq  chan []byte
	pumpResp chan ioResult
	timer    *time.Timer

	buf   []byte // the pump's buffer; never touched again after a stall
	err   error  // sticky: the stall or cancellation that ended this side
	bytes int64
}

type ioResult struct {
	n   int
	err error
}

func (t *timedIO) setTimeout(d time.Duration) { t.timeout.Store(int64(d)) }

func newTimedReader(ctx context.Context, r io.Reader, timeout time.Duration) *timedIO {
	t := &timedIO{ctx: ctx, side: "stdin", r: r}
	t.setTimeout(timeout)
	if d, ok := r.(readDeadliner); ok && d.SetReadDeadline(time.Time{}) == nil {
		t.rd = d
		t.stop = context.AfterFunc(ctx, func() { d.SetReadDeadline(time.Unix(1, 0)) })
		return t
	}
	t.startPump(func(p []byte) (int, error) { return r.Read(p) })
	return t
}

func newTimedWriter(ctx context.Context, w io.Writer, timeout time.Duration) *timedIO {
	t := &timedIO{ctx: ctx, side: "stdout", w: w}
	t.setTimeout(timeout)
	if d, ok := w.(writeDeadliner); ok && d.SetWriteDeadline(time.Time{}) == nil {
		t.wd = d
		t.stop = context.AfterFunc(ctx, func() { d.SetWriteDeadline(time.Unix(1, 0)) })
		return t
	}
	t.startPump(func(p []byte) (int, error) { return w.Write(p) })
	return t
}

func (t *timedIO) startPump(do func([]byte) (int, error)) {
	t.pumpReq = make(chan []byte)
	t.pumpResp = make(chan ioResult, 1)
	t.timer = time.NewTimer(time.Hour)
	t.timer.Stop()
	t.stop = func() bool { return true }
	go func(req <-chan []byte, resp chan<- ioResult) {
		for p := range req {
			n, err := do(p)
			resp <- ioResult{n, err}
		}
	}(t.pumpReq, t.pumpResp)
}

// Close stops the context watch and the pump; it does not close the
// underlying reader or writer.
func (t *timedIO) Close() {
	t.stop()
	if t.pumpReq != nil && t.err == nil {
		close(t.pumpReq)
		t.pumpReq = nil
	}
	if t.rd != nil {
		t.rd.SetReadDeadline(time.Time{})
	}
	if t.wd != nil {
		t.wd.SetWriteDeadline(time.Time{})
	}
}

// Err returns the stall or cancellation that ended this side, or nil.
func (t *timedIO) Err() error { return t.err }

func (t *timedIO) stalled() error {
	d := time.Duration(t.timeout.Load())
	if t.side == "stdin" {
		t.err = fmt.Errorf("pipe: stdin %w: nothing arrived for %v (ioTimeoutMs %d)", ErrStalled, d, d.Milliseconds())
	} else {
		t.err = fmt.Errorf("pipe: stdout %w: the reader took nothing for %v (ioTimeoutMs %d)", ErrStalled, d, d.Milliseconds())
	}
	return t.err
}

func (t *timedIO) cancelled() error {
	t.err = fmt.Errorf("pipe: %s: %w", t.side, context.Cause(t.ctx))
	return t.err
}

func (t *timedIO) Read(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	if t.rd == nil {
		// A pump copy, so that a stalled read never writes into p later.
		buf := t.grow(min(len(p), 1<<20))
		n, err := t.pumped(buf)
		copy(p, buf[:n])
		return n, err
	}
	if t.ctx.Err() != nil {
		return 0, t.cancelled()
	}
	t.rd.SetReadDeadline(time.Now().Add(time.Duration(t.timeout.Load())))
	if t.ctx.Err() != nil { // cancelled between the check and the deadline
		return 0, t.cancelled()
	}
	n, err := t.r.Read(p)
	t.bytes += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if t.ctx.Err() != nil {
			return n, t.cancelled()
		}
		return n, t.stalled()
	}
	return n, err
}

func (t *timedIO) Write(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	if t.wd == nil {
		// A pump copy, so that a stalled write never reads p later.
		written := 0
		for written < len(p) {
			chunk := t.grow(min(len(p)-written, 1<<20))
			copy(chunk, p[written:])
			n, err := t.pumped(chunk)
			written += n
			if err != nil {
				return written, err
			}
			if n < len(chunk) {
				return written, io.ErrShortWrite
			}
		}
		return written, nil
	}
	if t.ctx.Err() != nil {
		return 0, t.cancelled()
	}
	t.wd.SetWriteDeadline(time.Now().Add(time.Duration(t.timeout.Load())))
	if t.ctx.Err() != nil {
		return 0, t.cancelled()
	}
	n, err := t.w.Write(p)
	t.bytes += int64(n)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if t.ctx.Err() != nil {
			return n, t.cancelled()
		}
		return n, t.stalled()
	}
	return n, err
}

// pumped hands buf to the pump goroutine and waits for it, the timeout and
// the context.
func (t *timedIO) pumped(buf []byte) (int, error) {
	if t.ctx.Err() != nil {
		return 0, t.cancelled()
	}
	t.pumpReq <- buf
	t.timer.Reset(time.Duration(t.timeout.Load()))
	defer t.timer.Stop()
	select {
	case res := <-t.pumpResp:
		t.bytes += int64(res.n)
		return res.n, res.err
	case <-t.timer.C:
		return 0, t.stalled()
	case <-t.ctx.Done():
		return 0, t.cancelled()
	}
}

func (t *timedIO) grow(n int) []byte {
	if cap(t.buf) < n {
		t.buf = make([]byte, n)
	}
	return t.buf[:n]
}
