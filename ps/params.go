package ps

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Mode is how pushes are applied to the weights.
type Mode string

const (
	// Synchronous closes round r when every registered worker has pushed for
	// r, averages the pushes, and publishes version r+1.
	Synchronous Mode = "synchronous"
	// Asynchronous applies each push alone under a lock; pulls see a
	// consistent version.
	Asynchronous Mode = "asynchronous"
	// Hogwild applies pushes without a lock (per-value atomic loads and
	// stores, so concurrent pushes may overwrite each other's values).
	Hogwild Mode = "hogwild"
)

// ParseMode returns the Mode named s.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Synchronous, Asynchronous, Hogwild:
		return m, nil
	}
	return "", fmt.Errorf("ps: unknown mode %q (want synchronous, asynchronous or hogwild)", s)
}

// Frequency is how often workers push: after every epoch or every batch. The
// server only reports it.
type Frequency string

const (
	Epoch Frequency = "epoch"
	Batch Frequency = "batch"
)

// ParseFrequency returns the Frequency named s.
func ParseFrequency(s string) (Frequency, error) {
	switch f := Frequency(s); f {
	case Epoch, Batch:
		return f, nil
	}
	return "", fmt.Errorf("ps: unknown frequency %q (want epoch or batch)", s)
}

// Kind is what a push holds.
type Kind int32

const (
	// Delta is new weights minus the pulled weights (the Elephas contract):
	// the server adds it.
	Delta Kind = 0
	// Gradient is a loss gradient: the server's Optimizer applies it.
	Gradient Kind = 1
)

// Optimizer applies gradients to parameters in place and exposes its state
// (moments, step counts) so it can be saved and restored.
// gokernel.NewOptimizer returns one.
type Optimizer interface {
	Apply(params, grads [][]float32) error
	State() []NamedTensor
	SetState(state []NamedTensor) error
}

// Errors that callers branch on.
var (
	// ErrNoWeights reports a call that needs weights before any were set.
	ErrNoWeights = errors.New("ps: no weights set yet")
	// ErrRoundTimeout reports a synchronous round that did not close in time.
	ErrRoundTimeout = errors.New("ps: synchronous round timed out")
	// ErrRoundNotOpen reports a synchronous push for a round after the
	// current one.
	ErrRoundNotOpen = errors.New("ps: round not open")
	// ErrNoOptimizer reports a gradient push, or a call for optimizer state,
	// to a server without an optimizer.
	ErrNoOptimizer = errors.New("ps: the server has no optimizer (gradient pushes need one: WithOptimizer)")
	// ErrUnknownWorker reports a push from a worker that never registered.
	ErrUnknownWorker = errors.New("ps: worker not registered")
)

type config struct {
	mode         Mode
	frequency    Frequency
	workers      int
	scale        bool
	roundTimeout time.Duration
	optimizer    Optimizer
}

// Option configures Params (and a Server, which passes them on).
type Option func(*config)

// WithMode sets how pushes are applied. Default Asynchronous.
func WithMode(m Mode) Option { return func(c *config) { c.mode = m } }

// WithFrequency records the workers' push cadence for Stats. Default Epoch.
func WithFrequency(f Frequency) Option { return func(c *config) { c.frequency = f } }

// WithWorkers sets how many workers the job expects. A synchronous round
// does not close before that many have registered, and WithScale divides by
// it. Default 0: whoever has registered.
func WithWorkers(n int) Option { return func(c *config) { c.workers = n } }

// WithScale makes asynchronous and hogwild pushes count 1/workers of their
// delta (workers from WithWorkers, else the registered count). Default off.
func WithScale(on bool) Option { return func(c *config) { c.scale = on } }

// WithRoundTimeout bounds how long a synchronous round may stay open after
// its first push before waiters fail with ErrRoundTimeout. Default 5 minutes.
func WithRoundTimeout(d time.Duration) Option { return func(c *config) { c.roundTimeout = d } }

// WithOptimizer keeps an optimizer on the server so that workers may push
// gradients. Default none: gradient pushes are refused.
func WithOptimizer(o Optimizer) Option { return func(c *config) { c.optimizer = o } }

// HasOptimizer reports whether gradient pushes are applied by an optimizer
// kept here (WithOptimizer).
func (p *Params) HasOptimizer() bool { return p.cfg.optimizer != nil }

// OptimizerState returns a copy of the state of the optimizer that applies
// gradient pushes, and the weights version it goes with. Without an
// optimizer it fails with ErrNoOptimizer.
func (p *Params) OptimizerState() ([]NamedTensor, uint64, error) {
	if p.cfg.optimizer == nil {
		return nil, 0, ErrNoOptimizer
	}
	p.mu.Lock() // lock order: mu, then optMu, as gradients are applied
	defer p.mu.Unlock()
	p.optMu.Lock()
	defer p.optMu.Unlock()
	return cloneTensors(p.cfg.optimizer.State()), p.version.Load(), nil
}

// SetOptimizerState replaces the optimizer's state (as OptimizerState
// returns it, perhaps from an earlier job) and returns the weights version
// in force. Without an optimizer it fails with ErrNoOptimizer; a state the
// optimizer refuses, or whose slot "<kind>/<i>" does not have the size of
// weight tensor i, fails with ErrShape and changes nothing.
func (p *Params) SetOptimizerState(state []NamedTensor) (uint64, error) {
	if p.cfg.optimizer == nil {
		return 0, ErrNoOptimizer
	}
	if err := checkTensors(state); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrShape, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.weights != nil {
		for _, t := range state {
			i := strings.LastIndexByte(t.Name, '/')
			if i < 0 {
				continue
			}
			k, err := strconv.Atoi(t.Name[i+1:])
			if err != nil || k < 0 {
				continue
			}
			if k >= len(p.weights) || len(t.Data) != len(p.weights[k].Data) {
				return 0, fmt.Errorf("%w: optimizer state %q has %d values, but the model has no weight tensor %d of that size", ErrShape, t.Name, len(t.Data), k)
			}
		}
	}
	p.optMu.Lock()
	defer p.optMu.Unlock()
	if err := p.cfg.optimizer.SetState(cloneTensors(state)); err != nil {
		return 0, fmt.Errorf("%w: optimizer state: %w", ErrShape, err)
	}
	return p.version.Load(), nil
}

// WorkerStats counts one worker's pushes.
type WorkerStats struct {
	Worker    string
	Applied   uint64 // pushes applied (or accepted into a synchronous round)
	Refused   uint64 // wrong shape, NaN or Inf, or otherwise invalid
	Duplicate uint64 // already applied, ignored
	NonFinite uint64 // the refused pushes that held NaN or Inf
	Registers uint64 // registrations, more than one when Spark retried a task
	Done      bool
}

// Stats describes the server.
type Stats struct {
	Mode      Mode
	Frequency Frequency
	Version   uint64
	Round     uint64 // the open synchronous round (equal to Version)
	Workers   []WorkerStats
}

type worker struct {
	stats    WorkerStats
	lastStep uint64
	pushed   bool // lastStep is meaningful
}

type round struct {
	number uint64
	sum    [][]float32
	kind   Kind
	pushed map[string]bool
	opened time.Time // first push
	closed chan struct{}
}

// Params holds a model's weights and applies pushes to them by the rules of
// its Mode. It is safe for concurrent use and knows nothing of the network.
type Params struct {
	cfg config

	mu      sync.RWMutex // weights: written under Lock; hogwild pushes hold RLock
	weights []NamedTensor
	views   [][]float32 // weights[i].Data
	version atomic.Uint64
	optMu   sync.Mutex // serialises the optimizer (hogwild gradients)

	meta    sync.Mutex // workers and round; taken before mu, never after
	workers map[string]*worker
	round   *round

	snapMu sync.Mutex // snaps; taken before mu
	snaps  map[snapKey]*Snapshot
}

// NewParams returns empty Params; SetWeights gives them weights.
func NewParams(opts ...Option) (*Params, error) {
	cfg := config{mode: Asynchronous, frequency: Epoch, roundTimeout: 5 * time.Minute}
	for _, o := range opts {
		o(&cfg)
	}
	if _, err := ParseMode(string(cfg.mode)); err != nil {
		return nil, err
	}
	if _, err := ParseFrequency(string(cfg.frequency)); err != nil {
		return nil, err
	}
	if cfg.workers < 0 || cfg.roundTimeout <= 0 {
		return nil, fmt.Errorf("ps: bad options: workers %d, round timeout %v", cfg.workers, cfg.roundTimeout)
	}
	return &Params{cfg: cfg, workers: map[string]*worker{}, snaps: map[snapKey]*Snapshot{}}, nil
}

// Mode returns the update rule in force.
func (p *Params) Mode() Mode { return p.cfg.mode }

// Version returns the current weights version: 0 before SetWeights, 1 after
// it, and one more per applied push (asynchronous, hogwild) or closed round
// (synchronous).
func (p *Params) Version() uint64 { return p.version.Load() }

// SetWeights installs ws (copied). With ifAbsent it does nothing when weights
// are already set, so every worker may offer the initial weights and the
// first one wins. It returns the version in force afterwards.
func (p *Params) SetWeights(ws []NamedTensor, ifAbsent bool) (uint64, error) {
	if err := checkTensors(ws); err != nil {
		return 0, err
	}
	p.meta.Lock() // lock order: meta, then mu
	defer p.meta.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.weights != nil && ifAbsent {
		return p.version.Load(), nil
	}
	p.weights = cloneTensors(ws)
	p.views = make([][]float32, len(ws))
	for i := range p.weights {
		p.views[i] = p.weights[i].Data
	}
	v := p.version.Add(1)
	p.openRound(v)
	return v, nil
}

// openRound starts round v, failing nothing: a round in progress is
// abandoned and its waiters see that the version moved on. Holds meta.
func (p *Params) openRound(v uint64) {
	if p.round != nil {
		close(p.round.closed)
	}
	p.round = &round{number: v, pushed: map[string]bool{}, closed: make(chan struct{})}
}

// Weights returns a copy of the weights and their version.
func (p *Params) Weights() ([]NamedTensor, uint64) {
	p.mu.Lock() // Lock, not RLock: hogwild writers hold RLock
	defer p.mu.Unlock()
	return cloneTensors(p.weights), p.version.Load()
}

// Register records worker (again, when Spark retried its task) and returns
// the current version, the server's mode and frequency, and the worker's
// last applied step (HasPushed false when none was), so that a retried task
// can skip what an earlier attempt already pushed. Registering clears Done.
func (p *Params) Register(name string) (RegisterInfo, error) {
	if name == "" {
		return RegisterInfo{}, errors.New("ps: empty worker name")
	}
	p.meta.Lock()
	defer p.meta.Unlock()
	w := p.workers[name]
	if w == nil {
		w = &worker{stats: WorkerStats{Worker: name}}
		p.workers[name] = w
	}
	w.stats.Registers++
	w.stats.Done = false
	return RegisterInfo{Version: p.version.Load(), Mode: p.cfg.mode, Frequency: p.cfg.frequency,
		LastStep: w.lastStep, HasPushed: w.pushed}, nil
}

// Done records that worker has pushed its last update: synchronous rounds
// stop waiting for it.
func (p *Params) Done(name string) error {
	p.meta.Lock()
	defer p.meta.Unlock()
	w := p.workers[name]
	if w == nil {
		return fmt.Errorf("%w: %q", ErrUnknownWorker, name)
	}
	w.stats.Done = true
	if p.cfg.mode == Synchronous {
		return p.maybeCloseRound()
	}
	return nil
}

// PushResult says what became of a push.
type PushResult struct {
	Version   uint64 // the version after the push (synchronous: still the open round's)
	Duplicate bool   // already applied; ignored
}

// Push applies update (one slice per weight tensor, in order) from worker at
// step. Steps of one worker increase; a push whose step was already applied
// is a duplicate and changes nothing. In synchronous mode the step is the
// round (the version the worker pulled). A push of the wrong shape or holding
// NaN or Inf is refused and the weights stay untouched.
func (p *Params) Push(name string, step uint64, kind Kind, update [][]float32) (PushResult, error) {
	p.mu.RLock()
	ref := p.weights
	p.mu.RUnlock()
	p.meta.Lock()
	w := p.workers[name]
	p.meta.Unlock()
	if w == nil {
		return PushResult{}, fmt.Errorf("%w: %q", ErrUnknownWorker, name)
	}
	if ref == nil {
		return PushResult{}, ErrNoWeights
	}
	if err := p.validate(w, ref, kind, update); err != nil {
		return PushResult{}, err
	}
	if p.cfg.mode == Synchronous {
		return p.pushSync(w, step, kind, update)
	}
	p.meta.Lock()
	if w.pushed && step <= w.lastStep {
		w.stats.Duplicate++
		p.meta.Unlock()
		return PushResult{Version: p.version.Load(), Duplicate: true}, nil
	}
	w.lastStep, w.pushed = step, true
	w.stats.Applied++
	scale := float32(1)
	if p.cfg.scale && kind == Delta {
		n := p.cfg.workers
		if n == 0 {
			n = len(p.workers)
		}
		scale = 1 / float32(n)
	}
	p.meta.Unlock()

	var err error
	if p.cfg.mode == Hogwild {
		err = p.applyHogwild(kind, scale, update)
	} else {
		p.mu.Lock()
		err = p.applyLocked(kind, scale, update)
		p.mu.Unlock()
	}
	if err != nil {
		return PushResult{}, err
	}
	return PushResult{Version: p.version.Add(1)}, nil
}

// validate checks kind, shapes and values, counting a refusal.
func (p *Params) validate(w *worker, ref []NamedTensor, kind Kind, update [][]float32) error {
	var err error
	switch {
	case kind == Gradient && p.cfg.optimizer == nil:
		err = ErrNoOptimizer
	case kind != Delta && kind != Gradient:
		err = fmt.Errorf("ps: unknown update kind %d", kind)
	default:
		err = checkUpdate(ref, update)
	}
	if err != nil {
		p.meta.Lock()
		w.stats.Refused++
		if errors.Is(err, ErrNonFinite) {
			w.stats.NonFinite++
		}
		p.meta.Unlock()
	}
	return err
}

// applyLocked applies one update; the caller holds mu.
func (p *Params) applyLocked(kind Kind, scale float32, update [][]float32) error {
	if kind == Gradient {
		p.optMu.Lock()
		defer p.optMu.Unlock()
		if err := p.cfg.optimizer.Apply(p.views, update); err != nil {
			return fmt.Errorf("ps: optimizer: %w", err)
		}
		return nil
	}
	for i, u := range update {
		w := p.views[i]
		if scale == 1 {
			for j, v := range u {
				w[j] += v
			}
			continue
		}
		for j, v := range u {
			w[j] += scale * v
		}
	}
	return nil
}

// applyHogwild adds update without excluding other pushes: each value is
// loaded and stored atomically, so a concurrent push may overwrite it (the
// Hogwild! trade). Gradients still go through the optimizer one at a time,
// because its state cannot be shared.
func (p *Params) applyHogwild(kind Kind, scale float32, update [][]float32) error {
	if kind == Gradient {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.applyLocked(kind, scale, update)
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	for i, u := range update {
		w := p.views[i]
		for j, v := range u {
			a := (*uint32)(unsafe.Pointer(&w[j]))
			atomic.StoreUint32(a, math.Float32bits(math.Float32frombits(atomic.LoadUint32(a))+scale*v))
		}
	}
	return nil
}

// pushSync adds update to the open round.
func (p *Params) pushSync(w *worker, step uint64, kind Kind, update [][]float32) (PushResult, error) {
	p.meta.Lock()
	defer p.meta.Unlock()
	r := p.round
	switch {
	case step < r.number || r.pushed[w.stats.Worker]:
		w.stats.Duplicate++
		return PushResult{Version: p.version.Load(), Duplicate: true}, nil
	case step > r.number:
		w.stats.Refused++
		return PushResult{}, fmt.Errorf("%w: push for round %d, open round is %d", ErrRoundNotOpen, step, r.number)
	}
	if len(r.pushed) == 0 {
		r.opened = time.Now()
		r.kind = kind
		r.sum = make([][]float32, len(update))
		for i, u := range update {
			r.sum[i] = append([]float32(nil), u...)
		}
	} else {
		if kind != r.kind {
			w.stats.Refused++
			return PushResult{}, fmt.Errorf("ps: round %d mixes deltas and gradients", r.number)
		}
		for i, u := range update {
			s := r.sum[i]
			for j, v := range u {
				s[j] += v
			}
		}
	}
	r.pushed[w.stats.Worker] = true
	w.stats.Applied++
	w.lastStep, w.pushed = step, true
	return PushResult{Version: p.version.Load()}, p.maybeCloseRound()
}

// active returns the workers a round waits for: registered and not done.
// Holds meta.
func (p *Params) active() []string {
	var names []string
	for n, w := range p.workers {
		if !w.stats.Done {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// maybeCloseRound closes the open round when every active worker has pushed
// and enough workers have registered. Holds meta.
func (p *Params) maybeCloseRound() error {
	r := p.round
	if r == nil || len(r.pushed) == 0 || len(p.workers) < p.cfg.workers {
		return nil
	}
	for _, n := range p.active() {
		if !r.pushed[n] {
			return nil
		}
	}
	inv := 1 / float32(len(r.pushed))
	for _, s := range r.sum {
		for j := range s {
			s[j] *= inv
		}
	}
	p.mu.Lock()
	err := p.applyLocked(r.kind, 1, r.sum)
	v := p.version.Add(1)
	p.mu.Unlock()
	p.openRound(v)
	if err != nil {
		return err
	}
	return nil
}

// WaitRound blocks until synchronous round r has closed, ctx ends, or the
// round has been open longer than the round timeout; then the error wraps
// ErrRoundTimeout and names the workers that did not push.
func (p *Params) WaitRound(ctx context.Context, r uint64) (uint64, error) {
	if p.cfg.mode != Synchronous {
		return p.version.Load(), nil
	}
	start := time.Now()
	for {
		p.meta.Lock()
		cur := p.round
		p.meta.Unlock()
		if cur == nil {
			return 0, ErrNoWeights
		}
		if r < cur.number {
			return p.version.Load(), nil
		}
		if r > cur.number {
			return 0, fmt.Errorf("%w: wait for round %d, open round is %d", ErrRoundNotOpen, r, cur.number)
		}
		p.meta.Lock()
		opened := cur.opened
		p.meta.Unlock()
		if opened.IsZero() {
			opened = start
		}
		timer := time.NewTimer(time.Until(opened.Add(p.cfg.roundTimeout)))
		select {
		case <-cur.closed:
			timer.Stop()
			continue
		case <-ctx.Done():
			timer.Stop()
			return 0, fmt.Errorf("ps: waiting for round %d: %w", r, ctx.Err())
		case <-timer.C:
			p.meta.Lock()
			if p.round != cur {
				p.meta.Unlock()
				continue
			}
			err := p.roundTimeoutError(cur)
			p.meta.Unlock()
			return 0, err
		}
	}
}

// roundTimeoutError names who round r waits for. Holds meta.
func (p *Params) roundTimeoutError(r *round) error {
	var missing []string
	for _, n := range p.active() {
		if !r.pushed[n] {
			missing = append(missing, n)
		}
	}
	msg := fmt.Sprintf("%v: round %d open for %v: missing workers [%s]; %d pushed, %d registered",
		ErrRoundTimeout, r.number, p.cfg.roundTimeout, strings.Join(missing, ", "), len(r.pushed), len(p.workers))
	if p.cfg.workers > len(p.workers) {
		msg += fmt.Sprintf(", %d expected (%d never registered)", p.cfg.workers, p.cfg.workers-len(p.workers))
	}
	return &roundError{msg: msg, missing: missing}
}

type roundError struct {
	msg     string
	missing []string
}

func (e *roundError) Error() string { return e.msg }
func (e *roundError) Unwrap() error { return ErrRoundTimeout }

// Stats returns counters per worker, sorted by name.
func (p *Params) Stats() Stats {
	p.meta.Lock()
	defer p.meta.Unlock()
	s := Stats{Mode: p.cfg.mode, Frequency: p.cfg.frequency, Version: p.version.Load()}
	if p.round != nil {
		s.Round = p.round.number
	}
	for _, w := range p.workers {
		s.Workers = append(s.Workers, w.stats)
	}
	slices.SortFunc(s.Workers, func(a, b WorkerStats) int { return strings.Compare(a.Worker, b.Worker) })
	return s
}

// countRefused counts a push refused before it reached Push (undecodable
// or of the wrong shape).
func (p *Params) countRefused(name string, err error) {
	p.meta.Lock()
	defer p.meta.Unlock()
	if w := p.workers[name]; w != nil {
		w.stats.Refused++
		if errors.Is(err, ErrNonFinite) {
			w.stats.NonFinite++
		}
	}
}
