package rules

import (
	"errors"
	"fmt"
)

// Config is what a worker knows when its task starts: its task (epoch,
// round) and what the parameter server said at registration.
type Config struct {
	// Synchronous: the server averages each round's pushes (else it applies
	// pushes one at a time, asynchronous or hogwild alike).
	Synchronous bool
	// PerBatch: push every batch (else once, at the end of the epoch).
	PerBatch bool
	// Epoch is the task's epoch, from 1.
	Epoch int
	// Round is, synchronous, the round of the epoch's first batch: the
	// version at which the driver opened the epoch.
	Round uint64
	// Version is the server's weights version at registration, the version
	// of the weights the worker pulls first.
	Version uint64
	// Rejoin: the worker registered for this epoch before (a retried task).
	Rejoin bool
	// LastStep is the worker's last push step the server applied,
	// meaningful when HasPushed.
	LastStep  uint64
	HasPushed bool
}

// Kind is what the worker does next.
type Kind int

const (
	// Train the batch. With Reset, start from the weights last pulled.
	Train Kind = iota
	// Skip the batch: the server has its update already (a retried task).
	Skip
	// Pull weights newer than those held, then report Pulled.
	Pull
	// Push the update (the weights minus the weights pulled) as Step, then
	// report Pushed.
	Push
	// Wait for synchronous round Step to close, then go on.
	Wait
	// Done: nothing more for this batch (or epoch).
	Done
	// Fail the task with Err.
	Fail
)

var kindNames = [...]string{"train", "skip", "pull", "push", "wait", "done", "fail"}

func (k Kind) String() string { return kindNames[k] }

// Action is one decision of the rules.
type Action struct {
	Kind  Kind
	Step  uint64 // Push: the push's step; Wait: the round
	Reset bool   // Train: set the weights pulled before training
	Err   error  // Fail
}

func (a Action) String() string {
	switch a.Kind {
	case Push, Wait:
		return fmt.Sprintf("%s:%d", a.Kind, a.Step)
	case Train:
		if a.Reset {
			return "train:reset"
		}
	case Fail:
		return "fail: " + a.Err.Error()
	}
	return a.Kind.String()
}

// ErrCannotJoin is wrapped by the Fail of a worker that cannot join its
// synchronous round: a round closed without a worker that is not a retry.
var ErrCannotJoin = errors.New("cannot join the round")

// Worker is the state of one worker's epoch task. Its methods are the
// events of the task, in order: per batch Begin, then Pulled after each
// Pull, Trained after Train, Pushed after Push; after the last batch End,
// and Pushed again after its Push. Each returns what to do next.
type Worker struct {
	c       Config
	skipAll bool   // epoch frequency: the server applied this epoch's push already
	held    uint64 // the version of the weights held
	batch   int    // the batch in progress
	step    uint64 // its push step
	trained bool   // a batch was trained in this task
	skips   int    // batches skipped one by one
}

// New returns the rules of one task. The worker holds the weights of
// c.Version (its first pull).
func New(c Config) *Worker {
	w := &Worker{c: c, held: c.Version}
	if !c.PerBatch {
		if c.Synchronous {
			w.skipAll = c.Version > c.Round
		} else {
			w.skipAll = c.HasPushed && w.epochStep() <= c.LastStep
		}
	}
	return w
}

// epochStep is the step of an asynchronous epoch push: the epoch in the high
// 32 bits; batch b of the epoch pushes epochStep | b+1.
func (w *Worker) epochStep() uint64 { return uint64(w.c.Epoch) << 32 }

// Begin starts batch i (from 0, in order).
func (w *Worker) Begin(i int) Action {
	w.batch = i
	switch {
	case !w.c.PerBatch:
		if w.skipAll {
			if w.c.Synchronous && !w.c.Rejoin {
				return w.cannotJoin(w.c.Round)
			}
			return Action{Kind: Skip}
		}
		return Action{Kind: Train}
	case w.c.Synchronous:
		w.step = w.c.Round + uint64(i)
		if w.held < w.step {
			return Action{Kind: Pull}
		}
		return w.syncBatch()
	default:
		w.step = w.epochStep() | uint64(i+1)
		if w.c.HasPushed && w.step <= w.c.LastStep {
			w.skips++
			return Action{Kind: Skip}
		}
		return Action{Kind: Pull}
	}
}

// Pulled reports that the worker now holds the weights of version v.
func (w *Worker) Pulled(v uint64) Action {
	w.held = v
	if w.c.Synchronous {
		return w.syncBatch()
	}
	return Action{Kind: Train, Reset: true}
}

// syncBatch decides a synchronous batch from the version held: its round is
// open (train from those weights), closed (a retried task skips it; a
// first attempt cannot join), or not open yet (the driver is behind).
func (w *Worker) syncBatch() Action {
	switch {
	case w.held > w.step && w.c.Rejoin:
		w.skips++
		return Action{Kind: Skip}
	case w.held > w.step:
		return w.cannotJoin(w.step)
	case w.held < w.step:
		return Action{Kind: Fail, Err: fmt.Errorf("batch %d: round %d is not open: the driver is at version %d", w.batch+1, w.step, w.held)}
	}
	return Action{Kind: Train, Reset: true}
}

func (w *Worker) cannotJoin(round uint64) Action {
	return Action{Kind: Fail, Err: fmt.Errorf("epoch %d, batch %d: %w %d: it closed without this worker (the driver is at version %d) and this is not a retried task",
		w.c.Epoch, w.batch+1, ErrCannotJoin, round, w.held)}
}

// Trained reports that the batch was trained.
func (w *Worker) Trained() Action {
	w.trained = true
	if w.c.PerBatch {
		return Action{Kind: Push, Step: w.step}
	}
	return Action{Kind: Done}
}

// Pushed reports that a push went out.
func (w *Worker) Pushed() Action {
	if w.c.PerBatch && w.c.Synchronous {
		return Action{Kind: Wait, Step: w.step}
	}
	return Action{Kind: Done}
}

// End reports the end of the task's rows: an epoch-frequency worker that
// trained pushes its epoch (synchronous: to the epoch's round).
func (w *Worker) End() Action {
	if w.c.PerBatch || w.skipAll || !w.trained {
		return Action{Kind: Done}
	}
	w.step = w.epochStep()
	if w.c.Synchronous {
		w.step = w.c.Round
	}
	return Action{Kind: Push, Step: w.step}
}

// Skipped says why batches were skipped, for the task's log line: "" when
// none was.
func (w *Worker) Skipped() string {
	switch {
	case w.skipAll:
		return "the epoch was applied by an earlier attempt"
	case w.skips == 0:
		return ""
	case w.c.Synchronous:
		return fmt.Sprintf("%d rounds closed without this attempt", w.skips)
	default:
		return fmt.Sprintf("%d batches applied by an earlier attempt", w.skips)
	}
}
