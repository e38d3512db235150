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
	// ErrKind reports a push of a kind other than Delta and Gradient.
	ErrKind = errors.New("ps: unknown update kind")
	// ErrStep reports a push whose step is beyond MaxStep.
	ErrStep = errors.New("ps: step out of range")
	// ErrOverflow reports a push that is finite but whose sum with the
	// weights (or with the open round's other pushes) would not be: it is
	// refused and nothing changes.
	ErrOverflow = errors.New("ps: the update would make the weights NaN or Inf")
	// ErrWrongEpoch reports a registration for an epoch other than the one
	// the driver has opened (OpenEpoch), or an epoch opened out of order.
	ErrWrongEpoch = errors.New("ps: wrong epoch")
)

// MaxStep is the largest step a push may carry. Steps count batches or
// rounds, so real ones stay far below it; a step near 2^64 would leave the
// worker no later step, and every later push would look like a duplicate.
const MaxStep = math.MaxInt64

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
// does not close before that many have registered for the open epoch (see
// OpenEpoch), and WithScale divides by it. Default 0: whoever has
// registered.
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

// WorkerStats counts one worker's pushes. Its JSON names are those of the
// driver's stats answer (package protocol).
type WorkerStats struct {
	Worker    string `json:"worker"`
	Applied   uint64 `json:"applied"`   // pushes applied (or accepted into a synchronous round)
	Refused   uint64 `json:"refused"`   // wrong shape, NaN or Inf, or otherwise invalid
	Duplicate uint64 `json:"duplicate"` // already applied, ignored
	NonFinite uint64 `json:"nonFinite"` // the refused pushes that held NaN or Inf, or would have made the weights so
	Registers uint64 `json:"registers"` // registrations, more than one when Spark retried a task
	Done      bool   `json:"done"`      // done with the epoch it registered for
	Epoch     int    `json:"epoch"`     // the epoch it last registered for (0: none given)
}

// Stats describes the server: the one stats record of Gophas, which the
// driver's control channel answers as JSON with these names (package
// protocol), the shim reads and the Python package receives.
type Stats struct {
	Mode      Mode      `json:"mode"`
	Frequency Frequency `json:"frequency"`
	Version   uint64    `json:"version"`
	Round     uint64    `json:"round"` // the open synchronous round (equal to Version)
	Epoch     int       `json:"epoch"` // the epoch the driver has opened (OpenEpoch); 0 for none
	// WorkersExpected is how many workers a synchronous round waits for
	// (WithWorkers); 0: whoever registered.
	WorkersExpected int           `json:"workersExpected"`
	Workers         []WorkerStats `json:"workers"`
	// Steps is the global step: the training batches held by the pushes
	// applied (PushBatches), over all workers, the step a learning-rate
	// schedule reads.
	Steps uint64 `json:"steps"`
}

type worker struct {
	stats    WorkerStats
	lastStep uint64
	pushed   bool   // lastStep is meaningful
	joins    uint64 // registrations for stats.Epoch

	// push serialises the asynchronous and hogwild pushes of one worker,
	// so that the duplicate check, the apply and recording the step are
	// one step for it (a zombie task and its retry may push at once).
	// Taken before meta and mu.
	push sync.Mutex
}

type round struct {
	number  uint64
	sizes   []int // values per weight tensor when the round opened
	sum     [][]float32
	kind    Kind
	pushed  map[string]bool
	batches uint64    // training batches in the pushes so far
	opened  time.Time // first push
	closed  chan struct{}
	err     error // why the round closed without changing the weights
}

// Params holds a model's weights and applies pushes to them by the rules of
// its Mode. It is safe for concurrent use and knows nothing of the network.
type Params struct {
	cfg config

	mu      sync.RWMutex // weights: written under Lock; hogwild pushes hold RLock
	weights []NamedTensor
	views   [][]float32 // weights[i].Data
	roles   []Role      // per weight tensor (roles.go), under mu
	pushIdx []int       // the weight tensor of each tensor of a push: the ones not Frozen
	fixed   bool        // some role is not Trainable
	version atomic.Uint64
	optMu   sync.Mutex // serialises the optimizer (hogwild gradients)

	meta    sync.Mutex // workers, round and epoch; taken before mu, never after
	workers map[string]*worker
	round   *round
	refused *round // the last round that closed without applying (err set)

	backup [][]float32 // the weights before a gradient push, under mu
	spare  [][]float32 // the next weights of a delta, swapped in whole, under mu
	epoch  int         // opened by the driver; 0 before any

	// steps is the global step (Stats.Steps) and epochStep its value when
	// the driver opened the epoch; under meta.
	steps, epochStep uint64

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

// SetWeights installs ws (copied), every tensor Trainable. With ifAbsent it
// does nothing when weights are already set, so every worker may offer the
// initial weights and the first one wins. It returns the version in force
// afterwards.
func (p *Params) SetWeights(ws []NamedTensor, ifAbsent bool) (uint64, error) {
	return p.SetWeightsRoles(ws, nil, ifAbsent)
}

// SetWeightsRoles is SetWeights with the role of each tensor (Role: how
// pushes merge into it; nil: all Trainable), as gokernel.Model.Roles gives
// them.
func (p *Params) SetWeightsRoles(ws []NamedTensor, roles []Role, ifAbsent bool) (uint64, error) {
	if err := checkTensors(ws); err != nil {
		return 0, err
	}
	if err := checkRoles(roles, len(ws)); err != nil {
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
	p.setRoles(roles)
	v := p.version.Add(1)
	p.openRound(v)
	return v, nil
}

// openRound starts round v for the weights in force, failing nothing: a
// round in progress is abandoned and its waiters see that the version moved
// on. Holds meta; the weights do not change while meta is held (SetWeights
// holds it too).
func (p *Params) openRound(v uint64) {
	if p.round != nil {
		close(p.round.closed)
	}
	sizes := make([]int, len(p.pushIdx))
	for k, i := range p.pushIdx {
		sizes[k] = len(p.views[i])
	}
	p.round = &round{number: v, sizes: sizes, pushed: map[string]bool{}, closed: make(chan struct{})}
}

// Weights returns a copy of the weights and their version.
func (p *Params) Weights() ([]NamedTensor, uint64) {
	p.mu.Lock() // Lock, not RLock: hogwild writers hold RLock
	defer p.mu.Unlock()
	return cloneTensors(p.weights), p.version.Load()
}

// OpenEpoch opens epoch e (from 1, each one after the last) and returns the
// synchronous round its first batch belongs to (the current version). The
// driver calls it before each epoch's tasks start: from then on a
// synchronous round waits until every expected worker (WithWorkers) has
// registered for epoch e and has pushed for the round or is done with the
// epoch; a worker still done from the previous epoch no longer lets a round
// close without it. Registrations for another epoch are refused.
func (p *Params) OpenEpoch(e int) (uint64, error) {
	p.meta.Lock()
	defer p.meta.Unlock()
	if e < 1 || e < p.epoch {
		return 0, fmt.Errorf("%w: cannot open epoch %d after epoch %d", ErrWrongEpoch, e, p.epoch)
	}
	p.epoch = e
	p.epochStep = p.steps
	if p.round == nil {
		return p.version.Load(), nil
	}
	return p.round.number, nil
}

// SetSteps sets the global step (Stats.Steps), and the step of the open
// epoch, to n: a fit resumed from a checkpoint continues its count.
func (p *Params) SetSteps(n uint64) {
	p.meta.Lock()
	defer p.meta.Unlock()
	p.steps, p.epochStep = n, n
}

// Register records worker (again, when Spark retried its task) for epoch
// (0: none given) and returns the current version, the server's mode,
// frequency and open epoch, whether the worker registered for this epoch
// before (Rejoin: a retried task), and the worker's last applied step
// (HasPushed false when none was), so that a retried task can skip what an
// earlier attempt already pushed. Registering clears Done. Once the driver
// has opened an epoch, a registration for another one fails with
// ErrWrongEpoch naming both.
func (p *Params) Register(name string, epoch int) (RegisterInfo, error) {
	if name == "" {
		return RegisterInfo{}, errors.New("ps: empty worker name")
	}
	p.meta.Lock()
	defer p.meta.Unlock()
	if p.epoch > 0 && epoch != 0 && epoch != p.epoch {
		return RegisterInfo{}, fmt.Errorf("%w: worker %s registers for epoch %d but the driver has opened epoch %d", ErrWrongEpoch, name, epoch, p.epoch)
	}
	if p.epoch > 0 {
		epoch = p.epoch
	}
	w := p.workers[name]
	if w == nil {
		w = &worker{stats: WorkerStats{Worker: name}}
		p.workers[name] = w
	}
	if w.stats.Epoch != epoch {
		w.joins = 0
	}
	w.joins++
	w.stats.Epoch = epoch
	w.stats.Registers++
	w.stats.Done = false
	epochStep := p.steps
	if p.epoch > 0 {
		epochStep = p.epochStep
	}
	return RegisterInfo{Version: p.version.Load(), Mode: p.cfg.mode, Frequency: p.cfg.frequency, Epoch: p.epoch,
		Rejoin: w.joins > 1, LastStep: w.lastStep, HasPushed: w.pushed, EpochStep: epochStep, Workers: p.cfg.workers}, nil
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
// round (the version the worker pulled). A push is refused, and the weights
// stay untouched, when it does not have the shape of the weights in force
// when it is applied (ErrShape: SetWeights may replace them at any time),
// holds NaN or Inf (ErrNonFinite), would make a weight NaN or Inf
// (ErrOverflow), has an unknown kind (ErrKind) or a step beyond MaxStep
// (ErrStep).
func (p *Params) Push(name string, step uint64, kind Kind, update [][]float32) (PushResult, error) {
	return p.PushBatches(name, step, 0, kind, update)
}

// PushBatches is Push for an update that holds batches training batches:
// when it is applied (synchronous: when its round closes with the average
// applied) the global step moves on by batches. A duplicate or refused push
// counts nothing.
func (p *Params) PushBatches(name string, step, batches uint64, kind Kind, update [][]float32) (PushResult, error) {
	p.meta.Lock()
	w := p.workers[name]
	p.meta.Unlock()
	if w == nil {
		return PushResult{}, fmt.Errorf("%w: %q", ErrUnknownWorker, name)
	}
	if err := p.validate(kind, step, update); err != nil {
		p.refuse(w, err)
		return PushResult{}, err
	}
	if p.cfg.mode == Synchronous {
		return p.pushSync(w, step, batches, kind, update)
	}
	w.push.Lock()
	defer w.push.Unlock()
	p.meta.Lock()
	if w.pushed && step <= w.lastStep {
		w.stats.Duplicate++
		p.meta.Unlock()
		return PushResult{Version: p.version.Load(), Duplicate: true}, nil
	}
	scale := p.deltaScales(kind)
	p.meta.Unlock()

	var v uint64
	var err error
	if p.cfg.mode == Hogwild && kind == Delta {
		v, err = p.applyHogwild(scale, update)
	} else {
		v, err = p.applyExclusive(kind, scale, update)
	}
	if err != nil {
		p.refuse(w, err)
		return PushResult{}, err
	}
	p.meta.Lock()
	w.lastStep, w.pushed = step, true
	w.stats.Applied++
	p.steps += batches
	p.meta.Unlock()
	return PushResult{Version: v}, nil
}

// validate checks what can be checked without the weights: kind, step, and
// that a gradient's values are finite. Shapes are checked where the update
// is applied, against the weights it is applied to, and so are a delta's
// values: a NaN or Inf in a delta makes its sum with the weights NaN or Inf,
// which is checked there anyway.
func (p *Params) validate(kind Kind, step uint64, update [][]float32) error {
	switch {
	case kind != Delta && kind != Gradient:
		return fmt.Errorf("%w %d (want %d, a delta, or %d, a gradient)", ErrKind, kind, Delta, Gradient)
	case kind == Gradient && p.cfg.optimizer == nil:
		return ErrNoOptimizer
	case step > MaxStep:
		return fmt.Errorf("%w: step %d is beyond %d", ErrStep, step, uint64(MaxStep))
	case kind == Delta:
		return nil
	}
	for i, u := range update {
		if j := firstNonFinite(u); j >= 0 {
			return fmt.Errorf("%w: tensor %d%s index %d is %v", ErrNonFinite, i, p.tensorName(i), j, u[j])
		}
	}
	return nil
}

// tensorName returns ` "name"` for tensor k of a push, or "" when there is
// none (for messages only: the weights may be replaced at any time).
func (p *Params) tensorName(k int) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if k < len(p.pushIdx) {
		return fmt.Sprintf(" %q", p.weights[p.pushIdx[k]].Name)
	}
	return ""
}

// refuse counts a refused push of w.
func (p *Params) refuse(w *worker, err error) {
	p.meta.Lock()
	defer p.meta.Unlock()
	w.stats.Refused++
	if errors.Is(err, ErrNonFinite) || errors.Is(err, ErrOverflow) {
		w.stats.NonFinite++
	}
}

// checkSizes reports ErrShape unless update has one slice per pushed
// weight tensor (the ones not Frozen), each with its number of values. The
// caller holds mu (either way).
func (p *Params) checkSizes(update [][]float32) error {
	if p.weights == nil {
		return ErrNoWeights
	}
	if len(update) != len(p.pushIdx) {
		return fmt.Errorf("%w: %d tensors, want %d%s", ErrShape, len(update), len(p.pushIdx), p.frozenNote())
	}
	for k, u := range update {
		if i := p.pushIdx[k]; len(u) != len(p.views[i]) {
			return fmt.Errorf("%w: tensor %d %q has %d values, want %d", ErrShape, k, p.weights[i].Name, len(u), len(p.views[i]))
		}
	}
	return nil
}

// applyExclusive applies one update under the write lock and returns the
// new version.
func (p *Params) applyExclusive(kind Kind, scale scales, update [][]float32) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.applyLocked(kind, scale, update); err != nil {
		return 0, err
	}
	return p.version.Add(1), nil
}

// applyLocked applies one update to the weights in force, or nothing when
// the update does not fit them or would make a weight NaN or Inf. The caller
// holds mu.
//
// A delta is added in one pass into spare tensors, which replace the
// weights once every sum is known to be finite; Frozen tensors are not in
// the update and stay as they are.
func (p *Params) applyLocked(kind Kind, scale scales, update [][]float32) error {
	if err := p.checkSizes(update); err != nil {
		return err
	}
	if kind == Gradient {
		if p.fixed {
			return fmt.Errorf("%w: gradient pushes need every weight trainable, and this model has moving statistics or frozen layers (push deltas)", ErrKind)
		}
		return p.applyGradient(update)
	}
	if len(p.spare) != len(p.views) {
		p.spare = make([][]float32, len(p.views))
	}
	for k, u := range update {
		i := p.pushIdx[k]
		w := p.views[i]
		if cap(p.spare[i]) < len(w) {
			p.spare[i] = make([]float32, len(w))
		}
		t := p.spare[i][:len(w)]
		if sc := scale.of(p, i); !addInto(t, w, u, sc) {
			j := firstNonFiniteSum(w, u, sc)
			return p.sumError(i, j, w[j], sc, u[j])
		}
		p.spare[i] = t
	}
	for _, i := range p.pushIdx {
		p.views[i], p.spare[i] = p.spare[i], p.views[i]
		p.weights[i].Data = p.views[i]
	}
	return nil
}

// sumError explains why weight i, j (w) cannot take scale*u. The caller
// holds mu.
func (p *Params) sumError(i, j int, w, scale, u float32) error {
	if firstNonFinite([]float32{u}) == 0 {
		return fmt.Errorf("%w: tensor %d %q index %d is %v", ErrNonFinite, i, p.weights[i].Name, j, u)
	}
	return fmt.Errorf("%w: tensor %d %q index %d: %v + %v*%v is %v; the push is refused and the weights are unchanged",
		ErrOverflow, i, p.weights[i].Name, j, w, scale, u, w+scale*u)
}

// addInto sets t = w + scale*u and reports whether every value of t is
// finite. The check is branch-free: (bits&exp)+1<<23 carries into the sign
// bit exactly when the exponent bits are all ones (NaN or Inf).
func addInto(t, w, u []float32, scale float32) bool {
	const exp = 0x7f800000
	t, u = t[:len(w)], u[:len(w)]
	var bad uint32
	if scale == 1 {
		for j, x := range w {
			s := x + u[j]
			t[j] = s
			bad |= math.Float32bits(s)&exp + 1<<23
		}
	} else {
		for j, x := range w {
			s := x + scale*u[j]
			t[j] = s
			bad |= math.Float32bits(s)&exp + 1<<23
		}
	}
	return bad>>31 == 0
}

// applyGradient runs the optimizer on the weights, and puts the weights and
// the optimizer's state back when the result is not finite. The caller
// holds mu.
func (p *Params) applyGradient(grads [][]float32) error {
	p.optMu.Lock()
	defer p.optMu.Unlock()
	if len(p.backup) != len(p.views) {
		p.backup = make([][]float32, len(p.views))
	}
	for i, w := range p.views {
		p.backup[i] = append(p.backup[i][:0], w...)
	}
	state := p.cfg.optimizer.State()
	restore := func() error {
		for i, w := range p.views {
			copy(w, p.backup[i])
		}
		return p.cfg.optimizer.SetState(state)
	}
	if err := p.cfg.optimizer.Apply(p.views, grads); err != nil {
		if rerr := restore(); rerr != nil {
			return fmt.Errorf("ps: optimizer: %w (and restoring its state: %w)", err, rerr)
		}
		return fmt.Errorf("ps: optimizer: %w", err)
	}
	for i, w := range p.views {
		if j := firstNonFinite(w); j >= 0 {
			bad := w[j]
			if err := restore(); err != nil {
				return fmt.Errorf("ps: optimizer: restoring its state after a non-finite step: %w", err)
			}
			return fmt.Errorf("%w: the optimizer's step makes tensor %d %q index %d %v; the push is refused, the weights and the optimizer's state are unchanged",
				ErrOverflow, i, p.weights[i].Name, j, bad)
		}
	}
	return nil
}

// firstNonFiniteSum returns the first index j where w[j]+scale*u[j] is NaN
// or Inf, or -1.
func firstNonFiniteSum(w, u []float32, scale float32) int {
	const exp = 0x7f800000
	if scale == 1 {
		for j, v := range u {
			if math.Float32bits(w[j]+v)&exp == exp {
				return j
			}
		}
		return -1
	}
	for j, v := range u {
		if math.Float32bits(w[j]+scale*v)&exp == exp {
			return j
		}
	}
	return -1
}

// applyHogwild adds a delta without excluding other pushes: each value is
// loaded and stored atomically, so a concurrent push may overwrite it (the
// Hogwild! trade). The read lock keeps SetWeights from replacing the
// weights meanwhile. A sum that would not be finite refuses the push before
// anything is written; should a concurrent push make one so between the
// check and the write, that value is left as it was rather than stored.
func (p *Params) applyHogwild(sc scales, update [][]float32) (uint64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err := p.checkSizes(update); err != nil {
		return 0, err
	}
	const exp = 0x7f800000
	for k, u := range update {
		i := p.pushIdx[k]
		w, scale := p.views[i], sc.of(p, i)
		var bad uint32
		for j, v := range u {
			s := math.Float32frombits(atomic.LoadUint32((*uint32)(unsafe.Pointer(&w[j])))) + scale*v
			bad |= math.Float32bits(s)&exp + 1<<23
		}
		if bad>>31 != 0 {
			for j, v := range u {
				old := math.Float32frombits(atomic.LoadUint32((*uint32)(unsafe.Pointer(&w[j]))))
				if s := old + scale*v; math.Float32bits(s)&exp == exp {
					return 0, p.sumError(i, j, old, scale, v)
				}
			}
		}
	}
	for k, u := range update {
		i := p.pushIdx[k]
		w, scale := p.views[i], sc.of(p, i)
		for j, v := range u {
			a := (*uint32)(unsafe.Pointer(&w[j]))
			if s := math.Float32bits(math.Float32frombits(atomic.LoadUint32(a)) + scale*v); s&exp != exp {
				atomic.StoreUint32(a, s)
			}
		}
	}
	return p.version.Add(1), nil
}

// pushSync adds update to the open round. The round keeps the tensor sizes
// of the weights it was opened for: SetWeights opens a new round, so an
// update is checked against the weights its round will be applied to.
func (p *Params) pushSync(w *worker, step, batches uint64, kind Kind, update [][]float32) (PushResult, error) {
	p.meta.Lock()
	defer p.meta.Unlock()
	r := p.round
	refuse := func(err error) (PushResult, error) {
		w.stats.Refused++
		if errors.Is(err, ErrNonFinite) || errors.Is(err, ErrOverflow) {
			w.stats.NonFinite++
		}
		return PushResult{}, err
	}
	switch {
	case r == nil:
		return refuse(ErrNoWeights)
	case step < r.number || r.pushed[w.stats.Worker]:
		w.stats.Duplicate++
		return PushResult{Version: p.version.Load(), Duplicate: true}, nil
	case step > r.number:
		return refuse(fmt.Errorf("%w: push for round %d, open round is %d", ErrRoundNotOpen, step, r.number))
	case len(update) != len(r.sizes):
		return refuse(fmt.Errorf("%w: %d tensors, the weights of round %d have %d%s", ErrShape, len(update), r.number, len(r.sizes), p.frozenNote()))
	}
	for i, u := range update {
		if len(u) != r.sizes[i] {
			return refuse(fmt.Errorf("%w: tensor %d has %d values, the weights of round %d have %d", ErrShape, i, len(u), r.number, r.sizes[i]))
		}
	}
	if len(r.pushed) == 0 {
		for i, u := range update {
			if j := firstNonFinite(u); j >= 0 {
				return refuse(fmt.Errorf("%w: tensor %d index %d is %v", ErrNonFinite, i, j, u[j]))
			}
		}
		r.opened = time.Now()
		r.kind = kind
		r.sum = make([][]float32, len(update))
		for i, u := range update {
			r.sum[i] = append([]float32(nil), u...)
		}
	} else {
		if kind != r.kind {
			return refuse(fmt.Errorf("%w: round %d mixes deltas and gradients", ErrKind, r.number))
		}
		for i, u := range update {
			if j := firstNonFiniteSum(r.sum[i], u, 1); j >= 0 {
				if firstNonFinite(u[j:j+1]) == 0 {
					return refuse(fmt.Errorf("%w: tensor %d index %d is %v", ErrNonFinite, i, j, u[j]))
				}
				return refuse(fmt.Errorf("%w: tensor %d index %d: the round's sum %v + %v is %v; the push is refused and the round's sum is unchanged",
					ErrOverflow, i, j, r.sum[i][j], u[j], r.sum[i][j]+u[j]))
			}
		}
		for i, u := range update {
			s := r.sum[i]
			for j, v := range u {
				s[j] += v
			}
		}
	}
	r.pushed[w.stats.Worker] = true
	r.batches += batches
	w.stats.Applied++
	w.lastStep, w.pushed = step, true
	return PushResult{Version: p.version.Load()}, p.maybeCloseRound()
}

// joined reports whether w has registered for the open epoch (any
// registration counts before the driver opens one). Holds meta.
func (p *Params) joined(w *worker) bool { return p.epoch == 0 || w.stats.Epoch == p.epoch }

// active returns the workers a round waits for: registered for the open
// epoch and not done with it. Holds meta.
func (p *Params) active() []string {
	var names []string
	for n, w := range p.workers {
		if p.joined(w) && !w.stats.Done {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// absent returns the workers known from an earlier epoch that have not
// registered for the open one. Holds meta.
func (p *Params) absent() []string {
	var names []string
	for n, w := range p.workers {
		if !p.joined(w) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// maybeCloseRound closes the open round when enough workers have registered
// for the open epoch and every one of them not done has pushed: the average
// of the pushes is applied and the version moves on. When the average cannot
// be applied (it would make a weight NaN or Inf) the weights stay as they
// were, the version still moves on so that nobody waits for the round, and
// the round's error is what WaitRound reports for it. Holds meta.
func (p *Params) maybeCloseRound() error {
	r := p.round
	if r == nil || len(r.pushed) == 0 {
		return nil
	}
	joined := 0
	for _, w := range p.workers {
		if p.joined(w) {
			joined++
		}
	}
	if joined < p.cfg.workers {
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
	v, err := p.closeRound(r)
	p.openRound(v)
	if err != nil {
		r.err = fmt.Errorf("ps: round %d closed without changing the weights: %w", r.number, err)
		p.refused = r
		return r.err
	}
	p.steps += r.batches
	return nil
}

// closeRound applies the averaged round under the write lock and returns
// the new version.
func (p *Params) closeRound(r *round) (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	err := p.applyLocked(r.kind, one, r.sum)
	return p.version.Add(1), err
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
			p.meta.Lock()
			refused := p.refused
			p.meta.Unlock()
			if refused != nil && refused.number == r {
				return 0, refused.err
			}
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

// roundTimeoutError names who round r waits for: the workers of the epoch
// that have not pushed, those of an earlier epoch that have not started
// this one, and how many never registered. Holds meta.
func (p *Params) roundTimeoutError(r *round) error {
	var missing []string
	for _, n := range p.active() {
		if !r.pushed[n] {
			missing = append(missing, n)
		}
	}
	absent := p.absent()
	for _, n := range absent {
		missing = append(missing, n+fmt.Sprintf(" (has not started epoch %d)", p.epoch))
	}
	msg := fmt.Sprintf("%v: round %d open for %v: missing workers [%s]; %d pushed, %d registered",
		ErrRoundTimeout, r.number, p.cfg.roundTimeout, strings.Join(missing, ", "), len(r.pushed), len(p.workers))
	if p.epoch > 0 {
		msg += fmt.Sprintf(" (%d for epoch %d)", len(p.workers)-len(absent), p.epoch)
	}
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
	s := Stats{Mode: p.cfg.mode, Frequency: p.cfg.frequency, Version: p.version.Load(), Epoch: p.epoch, WorkersExpected: p.cfg.workers,
		Workers: []WorkerStats{}, Steps: p.steps}
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
		if errors.Is(err, ErrNonFinite) || errors.Is(err, ErrOverflow) {
			w.stats.NonFinite++
		}
	}
}
