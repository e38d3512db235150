package gokernel

import (
	"bytes"
	"fmt"
	"strings"
)

// The learning rate of every optimizer, and the step that drives a
// schedule.
//
// Keras calls an optimizer's schedule with its iterations, the number of
// steps it has applied, before each step: rate = schedule(iterations), the
// same rate for the weight decay and the update. Every optimizer here does
// the same in base.prepare, which each Apply calls first; so any optimizer
// built on base takes a schedule.
//
// In one process the schedule's step is the optimizer's "iteration" (its
// State's first entry), and a restored state continues the schedule where
// it was. In a distributed fit several workers step at once, each with its
// own optimizer, and the step that means what it means in one process is
// the global one: the number of batches trained by all workers together,
// which the parameter server counts. A worker that knows the global step G
// at the start of its epoch, and is worker p of N whose batches interleave
// with the others', calls SetStep(G+p, N): its k-th batch then takes step
// G + p + k·N, the step that batch would have in one process taking the
// workers' batches in turn. Its own iterations still count its own steps,
// for the rules that correct for how many steps the optimizer has seen
// (Adam's bias correction), as they would in Keras.

// stepClock is the schedule's step when SetStep drives it.
type stepClock struct {
	set          bool
	next, stride int64
}

// Step returns the schedule step of the next Apply: the optimizer's
// iterations, or the step SetStep set advanced by its stride per Apply
// since.
func (b *base) Step() int64 {
	if b.clock.set {
		return b.clock.next
	}
	return b.iterations
}

// SetStep makes the next Apply take schedule step step, and every Apply
// after it stride steps more (stride ≥ 1; less is taken as 1). The
// optimizer's iterations are not changed.
func (b *base) SetStep(step, stride int64) {
	b.clock = stepClock{set: true, next: step, stride: max(stride, 1)}
}

// tick is called at the start of every Apply (by prepare): it sets this
// step's learning rate from the schedule and advances a set clock.
func (b *base) tick() {
	if b.opt.schedule != nil {
		b.opt.learningRate = b.opt.schedule.Rate(b.Step())
	}
	if b.clock.set {
		b.clock.next += b.clock.stride
	}
}

// LearningRate returns the rate the next Apply uses: the schedule's rate
// at the next step, or the constant rate.
func (b *base) LearningRate() float32 {
	if b.opt.schedule != nil {
		return b.opt.schedule.Rate(b.Step())
	}
	return b.opt.learningRate
}

// SetLearningRate replaces a constant learning rate, as Keras' assignment
// to optimizer.learning_rate does (ReduceLROnPlateau,
// LearningRateScheduler). An optimizer whose rate is a schedule refuses,
// as Keras does. The rate must be finite and not negative.
func (b *base) SetLearningRate(rate float32) error {
	if b.opt.schedule != nil {
		return fmt.Errorf("%s %s: the learning rate is a %s schedule, so it cannot be set", optPrefix, b.opt.name, b.opt.schedule.ClassName())
	}
	if !(rate >= 0) || rate > 3.4e38 {
		return fmt.Errorf("%s %s: learning rate %v must be a finite number >= 0", optPrefix, b.opt.name, rate)
	}
	b.opt.learningRate = rate
	return nil
}

// Schedule returns the optimizer's learning-rate schedule, or nil for a
// constant rate.
func (b *base) Schedule() Schedule { return b.opt.schedule }

// learningRate reads the learning_rate argument: a number (def when
// absent) or a schedule's serialization.
func (p *argParser) learningRate(def float64) (float32, Schedule) {
	v, ok := p.raw("learning_rate")
	if !ok || bytes.TrimSpace(v)[0] != '{' {
		return float32(p.float("learning_rate", def)), nil
	}
	s, err := NewSchedule(v)
	if err != nil {
		p.fail("argument learning_rate: %s", strings.TrimPrefix(err.Error(), "gokernel: "))
		return float32(def), nil
	}
	return s.Rate(0), s
}
