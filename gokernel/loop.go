package gokernel

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// The training loop. Model.Fit, `gophas train` and the Spark worker train
// through it and through nothing else: an Epoch shuffles the rows it is
// given with the epoch's seeded stream, gathers them into batches with
// Batch.Gather, and runs each batch through the model's contract:
//
//	TrainStep       forward and backward on a batch in training mode; adds
//	                the batch's loss and metric sums
//	ApplyGradients  the optimizer step on those gradients
//	EvaluateBatch   inference mode; adds the batch's loss and metric sums
//
// (and, once per epoch, the unexported reseed of the Dropout masks). These
// are the only Model methods the loop calls: a new layer engine keeps the
// loop as it is by keeping them.

// Hooks act around the steps of an epoch: the Spark worker's distributed
// rules pull weights before a step and push after it; `gophas train` draws
// its progress bar and stops when cancelled. A nil Hooks trains every step.
type Hooks interface {
	// BeforeStep is called before step (from 0 within the epoch) of rows
	// rows. Returning false skips the step: its rows are not trained (they
	// count as skipped).
	BeforeStep(step, rows int) (train bool, err error)
	// AfterStep is called once step is trained and its gradients applied,
	// with the sums of the epoch's trained rows so far.
	AfterStep(step, rows int, sums *Sums) error
}

// EpochOptions configure one epoch of the loop. The zero value of each
// field is its documented default.
type EpochOptions struct {
	// BatchSize is the number of rows per step; 0 means 32 (Keras'
	// default). The last step of an epoch may be shorter.
	BatchSize int
	// Shuffle trains each block of rows in the order of a seeded random
	// permutation; default false: the order given.
	Shuffle bool
	// Seed, Epoch (from 1) and Worker (0 for a single process, the Spark
	// partition index otherwise) choose the epoch's random streams: its
	// shuffle and its Dropout masks. The same three give the same epoch.
	Seed   int64
	Epoch  int
	Worker int
	// BlockRows bounds the rows Feed holds and shuffles at once; 0 means no
	// bound (the whole stream is one block).
	BlockRows int
	// Hooks, if set, act around each step.
	Hooks Hooks
	// ClassWeight, if set, weighs each row by its class (Keras'
	// class_weight; see sample_weight.go). Rows with sample weights of
	// their own are refused with it, as Keras refuses both.
	ClassWeight ClassWeight
}

// Epoch is one pass of the training loop over rows given whole (Train) or
// as they stream in (Feed, then Finish). Make one with Model.NewEpoch.
type Epoch struct {
	m       *Model
	o       EpochOptions
	rng     *rand.Rand // nil: the order given
	block   Batch      // Feed's rows not trained yet
	batch   Batch      // the gathered step
	perm    []int
	steps   int
	skipped int
	sums    Sums
	cw      []float32 // the class weights' buffer
}

// NewEpoch starts an epoch of training m. The model needs a compile config
// with a loss.
func (m *Model) NewEpoch(o EpochOptions) (*Epoch, error) {
	if m.loss == nil {
		return nil, fmt.Errorf("gokernel: the model has no loss (its spec has no compile config with a loss)")
	}
	if o.BatchSize < 0 || o.Epoch < 0 || o.Worker < 0 || o.BlockRows < 0 {
		return nil, fmt.Errorf("gokernel: epoch options: batch size %d, epoch %d, worker %d, block rows %d must not be negative", o.BatchSize, o.Epoch, o.Worker, o.BlockRows)
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if o.BlockRows == 0 {
		o.BlockRows = math.MaxInt
	}
	o.BlockRows = max(o.BlockRows, o.BatchSize)
	if err := m.checkClassWeight(o.ClassWeight); err != nil {
		return nil, err
	}
	e := &Epoch{m: m, o: o, sums: m.newSums()}
	stream := epochStream(o.Epoch, o.Worker)
	if o.Shuffle {
		e.rng = rand.New(rand.NewPCG(uint64(o.Seed), shuffleStream^stream))
	}
	m.reseed(uint64(o.Seed), dropoutStream^stream)
	return e, nil
}

// Train trains rows as one whole block, read in place: shuffled unless the
// epoch keeps the given order, in steps of BatchSize rows, the last one
// short. Rows fed before and not trained yet are trained first, as their
// own block.
func (e *Epoch) Train(rows *Batch) error {
	if err := e.Finish(); err != nil {
		return err
	}
	if err := rows.check(); err != nil {
		return err
	}
	_, err := e.train(rows, true)
	return err
}

// Feed adds rows (copied) to the epoch's block; whenever the block holds
// BlockRows rows it is shuffled and trained in full steps, and the rows
// that do not fill a step carry over to the next block. Finish trains the
// rest.
func (e *Epoch) Feed(rows *Batch) error {
	if err := rows.check(); err != nil {
		return err
	}
	if e.block.X != nil && !sameWidths(&e.block, rows) {
		return fmt.Errorf("gokernel: Feed: rows of widths %v → %v after rows of widths %v → %v", rows.XWidths, rows.YWidths, e.block.XWidths, e.block.YWidths)
	}
	for from := 0; from < rows.Rows; {
		to := min(rows.Rows, from+e.o.BlockRows-e.block.Rows)
		e.block.appendRows(rows, from, to, e.o.BlockRows)
		from = to
		if e.block.Rows == e.o.BlockRows {
			rest, err := e.train(&e.block, false)
			if err != nil {
				return err
			}
			e.keep(rest)
		}
	}
	return nil
}

// Finish trains the rows Feed holds: shuffled, the last step short.
func (e *Epoch) Finish() error {
	if e.block.Rows == 0 {
		return nil
	}
	_, err := e.train(&e.block, true)
	e.block.Rows = 0
	return err
}

// Sums returns the rows trained so far in this epoch (Count) and the sums
// over them of the per-row loss and metric values seen at each step
// (training mode, before the step's update), keyed as Model.SumKeys.
func (e *Epoch) Sums() Sums { return e.sums.clone() }

// Steps is the number of steps taken so far, trained or skipped.
func (e *Epoch) Steps() int { return e.steps }

// Skipped is the number of rows whose step a hook skipped.
func (e *Epoch) Skipped() int { return e.skipped }

// train runs the steps of one block: every row when final, else the full
// steps only; it returns the indexes of the rows left.
func (e *Epoch) train(block *Batch, final bool) (rest []int, err error) {
	n := block.Rows
	e.perm = e.perm[:0]
	for i := range n {
		e.perm = append(e.perm, i)
	}
	if e.rng != nil {
		e.rng.Shuffle(n, func(i, j int) { e.perm[i], e.perm[j] = e.perm[j], e.perm[i] })
	}
	bs := e.o.BatchSize
	full := n / bs * bs
	if final {
		full = n
	}
	for b := 0; b < full; b += bs {
		k := min(bs, full-b)
		if err := e.step(block, e.perm[b:b+k]); err != nil {
			return nil, err
		}
	}
	return e.perm[full:], nil
}

// step gathers rows idx of block and trains them as one step.
func (e *Epoch) step(block *Batch, idx []int) error {
	step := e.steps
	e.steps++
	if h := e.o.Hooks; h != nil {
		train, err := h.BeforeStep(step, len(idx))
		if err != nil {
			return err
		}
		if !train {
			e.skipped += len(idx)
			return nil
		}
	}
	e.batch.Gather(block, idx)
	if err := e.classWeights(); err != nil {
		return err
	}
	if err := e.m.TrainStep(&e.batch, &e.sums); err != nil {
		return fmt.Errorf("gokernel: epoch %d step %d: %w", e.o.Epoch, step+1, unwrapPrefix(err))
	}
	if err := e.m.ApplyGradients(); err != nil {
		return fmt.Errorf("gokernel: epoch %d step %d: %w", e.o.Epoch, step+1, unwrapPrefix(err))
	}
	if h := e.o.Hooks; h != nil {
		return h.AfterStep(step, len(idx), &e.sums)
	}
	return nil
}

// keep moves the block's rows rest to its front, in that order.
func (e *Epoch) keep(rest []int) {
	e.batch.Gather(&e.block, rest)
	e.block.Rows = 0
	e.block.appendRows(&e.batch, 0, e.batch.Rows, e.o.BlockRows)
}

// SplitValidation holds out the last fraction split of rows for
// validation, as Keras' fit does before any shuffling: the first
// floor(rows·(1-split)) rows train, the others validate. With split 0, val
// is nil.
func SplitValidation(rows *Batch, split float64) (train, val *Batch, err error) {
	if !(split >= 0 && split < 1) {
		return nil, nil, fmt.Errorf("gokernel: validation split %v must be in [0, 1)", split)
	}
	n := int(math.Floor(float64(rows.Rows) * (1 - split)))
	if n == 0 {
		return nil, nil, fmt.Errorf("gokernel: validation split %v of %d rows leaves no training rows", split, rows.Rows)
	}
	if split > 0 && n == rows.Rows {
		return nil, nil, fmt.Errorf("gokernel: validation split %v of %d rows leaves no validation rows", split, rows.Rows)
	}
	if n == rows.Rows {
		return rows, nil, nil
	}
	return rows.Slice(0, n), rows.Slice(n, rows.Rows), nil
}

// FitRows trains the model on rows for o.Epochs epochs through the loop,
// as Fit does for tensors: the epochs are numbered from 1 for their random
// streams (worker 0), o.Hooks act around every step, and o.Callback gets
// each epoch's logs.
func (m *Model) FitRows(rows *Batch, o FitOptions) (*History, error) {
	if o.Epochs < 0 || o.BatchSize < 0 {
		return nil, fmt.Errorf("gokernel: Fit: Epochs %d and BatchSize %d must not be negative", o.Epochs, o.BatchSize)
	}
	if o.Epochs == 0 {
		o.Epochs = 1
	}
	if err := rows.check(); err != nil {
		return nil, fmt.Errorf("gokernel: Fit: %w", unwrapPrefix(err))
	}
	train, val, err := SplitValidation(rows, o.ValidationSplit)
	if err != nil {
		return nil, fmt.Errorf("gokernel: Fit: %w", unwrapPrefix(err))
	}
	h := &History{History: map[string][]float64{}}
	for epoch := 0; epoch < o.Epochs; epoch++ {
		e, err := m.NewEpoch(EpochOptions{BatchSize: o.BatchSize, Shuffle: o.Shuffle, Seed: o.Seed, Epoch: epoch + 1, Hooks: o.Hooks,
			ClassWeight: o.ClassWeight})
		if err != nil {
			return h, fmt.Errorf("gokernel: Fit: %w", unwrapPrefix(err))
		}
		if err := e.Train(train); err != nil {
			return h, fmt.Errorf("gokernel: Fit: %w", unwrapPrefix(err))
		}
		logs := m.Result(e.sums)
		if val != nil {
			vs := m.newSums()
			if err := m.EvaluateBatch(val, &vs); err != nil {
				return h, fmt.Errorf("gokernel: Fit: validation: %w", unwrapPrefix(err))
			}
			for k, v := range m.Result(vs) {
				logs["val_"+k] = v
			}
		}
		h.Epoch = append(h.Epoch, epoch)
		for k, v := range logs {
			h.History[k] = append(h.History[k], v)
		}
		if o.Callback != nil {
			o.Callback(EpochLogs{Epoch: epoch, Logs: logs})
		}
	}
	return h, nil
}
