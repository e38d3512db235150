package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// job is one call shared by the goroutines working on it: the caller and
// the helpers it hired. Everyone runs work, which claims the tasks of the
// current phase from a counter until none is left; the one that finishes a
// phase's last task opens the next. A goroutine with nothing left to claim
// waits for the next phase, spinning briefly and then parking, so a helper
// the OS keeps off the CPU costs the others at most the task it holds.
type job struct {
	call
	pa, pb  []float32 // the packed A group and B panel of the current step
	nphases int

	state    atomic.Uint64 // phase<<32 | next task to claim
	done     atomic.Int32  // tasks of the current phase finished
	sleepers atomic.Int32  // goroutines parked in waitPast
	mu       sync.Mutex
	cond     sync.Cond
	refs     atomic.Int32 // goroutines holding the job; the last pools it
}

var jobPool = sync.Pool{New: func() any {
	j := new(job)
	j.cond.L = &j.mu
	return j
}}

// runCall computes c on the calling goroutine with up to threads-1 helpers.
func runCall(c *call, threads int) {
	j := jobPool.Get().(*job)
	j.call = *c
	j.nphases = c.phases()
	if !c.private {
		j.pa = grow(j.pa, c.kcs*roundUp(c.mgs, c.im.mr))
		j.pb = grow(j.pb, c.kcs*roundUp(c.ncs, c.im.nr))
	}
	j.state.Store(0)
	j.done.Store(0)
	j.refs.Store(1)
	if threads > 1 {
		hire(j, threads-1)
	}
	j.work()
	j.release()
}

// work claims and runs tasks until the last phase is over.
func (j *job) work() {
	buf := bufPool.Get().(*buffers)
	defer bufPool.Put(buf)
	for {
		w := j.state.Load()
		ph, t := int(w>>32), int(uint32(w))
		if ph >= j.nphases {
			return
		}
		n := j.tasks(ph)
		if n == 0 { // nothing to pack: open the next phase
			j.state.CompareAndSwap(w, uint64(ph+1)<<32)
			continue
		}
		if t >= n {
			j.waitPast(ph)
			continue
		}
		if !j.state.CompareAndSwap(w, w+1) {
			continue
		}
		j.run(ph, t, j.pa, j.pb, buf)
		if int(j.done.Add(1)) == n {
			j.done.Store(0)
			j.state.Store(uint64(ph+1) << 32)
			if j.sleepers.Load() > 0 {
				j.mu.Lock()
				j.cond.Broadcast()
				j.mu.Unlock()
			}
		}
	}
}

// waitPast returns once phase ph is over: it spins for up to spinFor (the
// goroutines finishing the phase are running, so this is short), then
// parks until the phase's last task wakes it.
func (j *job) waitPast(ph int) {
	over := func() bool { return int(j.state.Load()>>32) != ph }
	if spin(time.Duration(spinFor.Load()), over) {
		return
	}
	j.sleepers.Add(1)
	j.mu.Lock()
	for !over() {
		j.cond.Wait()
	}
	j.mu.Unlock()
	j.sleepers.Add(-1)
}

// release drops one reference; the last one clears the call (it holds the
// caller's slices) and pools the job.
func (j *job) release() {
	if j.refs.Add(-1) == 0 {
		j.call = call{}
		jobPool.Put(j)
	}
}

// spinFor is how long, in nanoseconds, a goroutine spins before parking: a
// helper waiting for its next call, or anyone waiting for the end of a
// phase. Waking a parked goroutine took 75–110 µs on the 2-vCPU machine
// this was tuned on, longer than a whole MLP-sized call, so a helper that
// parked between the calls of a training step would never help; spinning
// longer would take CPU from other processes when the calls stop. Tests
// set it to 0 to exercise parking.
var spinFor atomic.Int64

func init() { spinFor.Store(int64(100 * time.Microsecond)) }

// spin polls done with PAUSE between polls, yielding to other goroutines
// now and then, for at most d; it reports whether done returned true.
func spin(d time.Duration, done func() bool) bool {
	var start time.Time
	for i := 1; ; i++ {
		if done() {
			return true
		}
		pause()
		if i%128 == 0 {
			if start.IsZero() {
				start = time.Now()
			} else if time.Since(start) > d {
				return false
			}
			runtime.Gosched()
		}
	}
}

// Worker states.
const (
	workerParked = iota // blocked on wake
	workerIdle          // spinning, watching for a job
	workerBusy          // hired: a job is in its mailbox or being worked
)

// worker is a helper goroutine. A hirer moves it from parked or idle to
// busy with a CAS, then puts the job in its mailbox (and, if it was parked,
// sends on wake).
type worker struct {
	state atomic.Int32
	mail  atomic.Pointer[job]
	wake  chan struct{}
}

var (
	workersMu sync.Mutex
	workers   atomic.Pointer[[]*worker]
)

// hire hands j to up to n helpers that are idle or parked, never more than
// GOMAXPROCS-1 (more could not run beside the caller). Busy helpers are
// skipped: the caller does whatever nobody claims.
func hire(j *job, n int) {
	n = min(n, runtime.GOMAXPROCS(0)-1)
	if n <= 0 {
		return
	}
	ws := workers.Load()
	if ws == nil || len(*ws) < n {
		ws = addWorkers(n)
	}
	for _, w := range *ws {
		if n == 0 {
			return
		}
		switch {
		case w.state.CompareAndSwap(workerIdle, workerBusy):
			j.refs.Add(1)
			w.mail.Store(j)
			n--
		case w.state.CompareAndSwap(workerParked, workerBusy):
			j.refs.Add(1)
			w.mail.Store(j)
			w.wake <- struct{}{}
			n--
		}
	}
}

// addWorkers starts helpers until there are at least n and returns them.
func addWorkers(n int) *[]*worker {
	workersMu.Lock()
	defer workersMu.Unlock()
	var ws []*worker
	if p := workers.Load(); p != nil {
		ws = *p
	}
	for len(ws) < n {
		w := &worker{wake: make(chan struct{}, 1)}
		go w.loop()
		ws = append(ws, w)
	}
	workers.Store(&ws)
	return &ws
}

// loop runs the jobs the worker is hired for; between jobs it spins for
// spinFor, then parks. It starts parked.
func (w *worker) loop() {
	<-w.wake
	for {
		j := w.mail.Swap(nil)
		for j == nil { // hired: the job is on its way
			pause()
			j = w.mail.Swap(nil)
		}
		j.work()
		j.release()
		w.state.Store(workerIdle)
		hired := func() bool { return w.state.Load() == workerBusy }
		if !spin(time.Duration(spinFor.Load()), hired) && w.state.CompareAndSwap(workerIdle, workerParked) {
			<-w.wake // a hirer moves it from parked to busy, then sends
		}
	}
}
