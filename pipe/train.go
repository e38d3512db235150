package pipe

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/protocol"
	"github.com/gophas/gophas/ps"
	"github.com/gophas/gophas/rules"
)

// Bounds of the worker's calls to the driver.
const (
	maxCallTimeout = 2 * time.Minute  // one attempt of one call, at most
	roundWait      = 30 * time.Minute // one synchronous round; the server's round timeout answers first
)

// dialDriver returns a client of the header's driver. Each attempt of a
// call is bounded by the pipe's timeout, at most maxCallTimeout.
func dialDriver(h *protocol.Header) (*ps.Client, error) {
	opts := []ps.ClientOption{ps.WithCallTimeout(min(h.IOTimeout(), maxCallTimeout)), ps.WithRoundWait(roundWait)}
	if h.TLSFingerprint != "" {
		opts = append(opts, ps.WithFingerprint(h.TLSFingerprint))
	}
	return ps.Dial(h.Driver, h.Token, opts...)
}

// driverModel builds the header's spec with the driver's current weights.
func driverModel(ctx context.Context, h *protocol.Header) (*gokernel.Model, error) {
	m, err := openSpec(h)
	if err != nil {
		return nil, err
	}
	c, err := dialDriver(h)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ws, v, _, err := c.Pull(ctx, 0)
	if err != nil {
		return nil, err
	}
	if err := m.SetWeights(ws); err != nil {
		return nil, fmt.Errorf("the weights of driver %s (version %d) do not fit model %q: %w", h.Driver, v, h.Model, err)
	}
	return m, nil
}

// openSpec builds a model of the header's spec (the weights to come from
// the driver) with the header's threads.
func openSpec(h *protocol.Header) (*gokernel.Model, error) {
	spec, err := gokernel.OpenSpec(h.Model)
	if err != nil {
		return nil, err
	}
	m, err := gokernel.NewModel(spec, gokernel.WithThreads(h.Threads))
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", h.Model, err)
	}
	return m, nil
}

// trainer is one train task: the epoch of the training loop it feeds, and
// the distributed rules (package rules) it executes around each step as the
// loop's Hooks.
type trainer struct {
	t     *Task
	h     *protocol.Header
	m     *gokernel.Model
	c     *ps.Client
	info  ps.RegisterInfo
	rules *rules.Worker

	base    []ps.NamedTensor // the weights pulled
	version uint64           // their version
	pushed  []int            // the weights a push holds: the ones not Frozen (ps.Role)
	shapes  []ps.TensorInfo  // theirs

	epoch              *gokernel.Epoch
	pushes, duplicates int
	unpushed           uint64 // batches trained since the last push
}

// runTrain trains one epoch of the partition through the driver's parameter
// server and writes one batch of TrainSchema.
func runTrain(t *Task) (err error) {
	h := &t.Header
	in := t.Input.Schema()
	rows, err := newRows(h, in)
	if err != nil {
		return err
	}
	m, err := openSpec(h)
	if err != nil {
		return err
	}
	if err := rows.check(m.Spec(), h.Model); err != nil {
		return err
	}
	if err := checkBuffers(h, rows, m.StepBytes(), t.MemLimit); err != nil {
		return err
	}

	c, err := dialDriver(h)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := t.Ctx
	info, err := c.Register(ctx, h.Worker, h.Epoch)
	if err != nil {
		return err
	}
	tr := &trainer{t: t, h: h, m: m, c: c, info: info}
	round := h.Round
	if info.Mode == ps.Synchronous && round == 0 {
		round = info.Version
		fmt.Fprintf(t.Log, "gophas worker: partition %d, train: no round in the header; using version %d\n", h.Partition, info.Version)
	}
	ws, v, _, err := c.Pull(ctx, 0)
	if err != nil {
		return err
	}
	if err := m.SetWeights(ws); err != nil {
		return fmt.Errorf("the weights of driver %s (version %d) do not fit model %q: %w", h.Driver, v, h.Model, err)
	}
	tr.base, tr.version = ws, v
	for i, r := range m.Roles() {
		if r != gokernel.Frozen {
			tr.pushed = append(tr.pushed, i)
			tr.shapes = append(tr.shapes, ps.TensorInfo{Name: ws[i].Name, Shape: ws[i].Shape})
		}
	}
	tr.rules = rules.New(rules.Config{Synchronous: info.Mode == ps.Synchronous, PerBatch: info.Frequency == ps.Batch,
		Epoch: h.Epoch, Round: round, Version: v, Rejoin: info.Rejoin, LastStep: info.LastStep, HasPushed: info.HasPushed})
	if h.OptimizerState != "" {
		if err := tr.loadOptimizer(h.OptimizerState); err != nil {
			return err
		}
	}
	if h.LearningRate != nil {
		if err := m.Optimizer().SetLearningRate(float32(*h.LearningRate)); err != nil {
			return fmt.Errorf("learning rate %v: %w", *h.LearningRate, unprefixed(err))
		}
	}
	cw, err := h.ClassWeights()
	if err != nil {
		return err
	}
	blockRows := 0
	if !h.NoShuffle {
		blockRows = int(max(1, h.ShuffleBufferBytes/int64(4*(rows.xWidth()+rows.yWidth()))))
	}
	if tr.epoch, err = m.NewEpoch(gokernel.EpochOptions{BatchSize: h.BatchSize, Shuffle: !h.NoShuffle, Seed: h.Seed,
		Epoch: h.Epoch, Worker: h.Partition, BlockRows: blockRows, Hooks: tr, ClassWeight: cw}); err != nil {
		return err
	}

	for t.Input.Next() {
		b, err := rows.load(t.Input.RecordBatch())
		if err != nil {
			return err
		}
		if b == nil {
			continue
		}
		if err := tr.epoch.Feed(b); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cancelled: %w", err)
		}
	}
	if err := t.Input.Err(); err != nil {
		return fmt.Errorf("reading the input stream: %w", err)
	}
	if err := tr.epoch.Finish(); err != nil {
		return err
	}
	if err := tr.act(tr.rules.End()); err != nil {
		return err
	}
	if err := c.Done(ctx); err != nil {
		return err
	}
	state := ""
	if tr.epoch.Sums().Count > 0 {
		if state, err = tr.saveOptimizer(); err != nil {
			return err
		}
	}
	tr.log()
	return tr.write(state)
}

// checkBuffers refuses a header whose numbers size training buffers past
// the memory limit: the shuffle buffer, and one step of rows: their
// features and targets (4 bytes each, gathered) and the model's values and
// gradients for them (stepBytes a row, gokernel.Model.StepBytes). The loop
// holds at least a step's rows at once.
func checkBuffers(h *protocol.Header, r *rows, stepBytes, limit int64) error {
	dataBytes := int64(4 * (r.xWidth() + r.yWidth()))
	rowBytes := dataBytes + stepBytes
	switch {
	case !h.NoShuffle && h.ShuffleBufferBytes > limit:
		return fmt.Errorf("shuffleBufferBytes %d exceeds the worker's memory limit of %d bytes", h.ShuffleBufferBytes, limit)
	case int64(h.BatchSize) > limit/max(rowBytes, 1):
		return fmt.Errorf("batchSize %d: a step takes %d bytes a row (%d features and %d targets as float32, %d bytes of the model's activations and gradients), %d bytes in all, past the worker's memory limit of %d bytes",
			h.BatchSize, rowBytes, r.xWidth(), r.yWidth(), stepBytes, int64(h.BatchSize)*rowBytes, limit)
	}
	return nil
}

// loadOptimizer installs the optimizer state stored under hash.
func (tr *trainer) loadOptimizer(hash string) error {
	path, err := tr.c.FetchModel(tr.t.Ctx, hash)
	if err != nil {
		return fmt.Errorf("optimizer state %s: %w", hash, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("optimizer state %s: %w", hash, err)
	}
	defer f.Close()
	st, err := gokernel.ReadSafetensors(f)
	if err != nil {
		return fmt.Errorf("optimizer state %s: %w", hash, err)
	}
	if err := tr.m.Optimizer().SetState(st); err != nil {
		return fmt.Errorf("optimizer state %s: %w", hash, err)
	}
	return nil
}

// saveOptimizer stores the optimizer state in the driver's model store and
// returns its hash.
func (tr *trainer) saveOptimizer() (string, error) {
	var buf bytes.Buffer
	if err := gokernel.WriteSafetensors(&buf, tr.m.Optimizer().State()); err != nil {
		return "", fmt.Errorf("optimizer state: %w", err)
	}
	return tr.c.PutModel(tr.t.Ctx, "optimizer", buf.Bytes())
}

// BeforeStep asks the rules about batch idx and carries out their answer:
// pull, then train (from the pulled weights when they say so) or skip.
func (tr *trainer) BeforeStep(idx, _ int) (bool, error) {
	if err := tr.t.Ctx.Err(); err != nil {
		return false, fmt.Errorf("cancelled: %w", err)
	}
	a := tr.rules.Begin(idx)
	for {
		switch a.Kind {
		case rules.Pull:
			if err := tr.pull(); err != nil {
				return false, err
			}
			a = tr.rules.Pulled(tr.version)
		case rules.Train:
			if a.Reset {
				if err := tr.m.SetWeights(tr.base); err != nil {
					return false, err
				}
			}
			tr.setStep(idx)
			return true, nil
		case rules.Skip:
			return false, nil
		case rules.Fail:
			return false, fmt.Errorf("worker %s: %w", tr.h.Worker, a.Err)
		default:
			return false, fmt.Errorf("worker %s: the rules said %v before a batch", tr.h.Worker, a)
		}
	}
}

// AfterStep tells the rules the batch was trained and carries out their
// answer: push, wait for the round.
func (tr *trainer) AfterStep(int, int, *gokernel.Sums) error {
	tr.unpushed++
	return tr.act(tr.rules.Trained())
}

// setStep sets the optimizer's schedule step for batch idx of the epoch to
// the global one (gokernel.Optimizer.SetStep): the server's step when the
// driver opened the epoch, plus this worker's place among the workers'
// interleaved batches.
func (tr *trainer) setStep(idx int) {
	n := int64(max(tr.info.Workers, 1))
	p := int64(max(tr.h.Partition, 0)) % n
	tr.m.Optimizer().SetStep(int64(tr.info.EpochStep)+p+int64(idx)*n, n)
}

// act carries out push and wait actions until the rules are done.
func (tr *trainer) act(a rules.Action) error {
	for {
		switch a.Kind {
		case rules.Done:
			return nil
		case rules.Push:
			if err := tr.push(a.Step); err != nil {
				return err
			}
			a = tr.rules.Pushed()
		case rules.Wait:
			if _, err := tr.c.WaitRound(tr.t.Ctx, a.Step); err != nil {
				return fmt.Errorf("worker %s: %w", tr.h.Worker, err)
			}
			return nil
		case rules.Fail:
			return fmt.Errorf("worker %s: %w", tr.h.Worker, a.Err)
		default:
			return fmt.Errorf("worker %s: the rules said %v after a batch", tr.h.Worker, a)
		}
	}
}

// pull fetches the weights if the server has a newer version than the ones
// held.
func (tr *trainer) pull() error {
	ws, v, modified, err := tr.c.Pull(tr.t.Ctx, tr.version)
	if err != nil {
		return err
	}
	if modified {
		tr.base, tr.version = ws, v
	}
	return nil
}

// push sends the model's weights minus the pulled ones as step: the
// trainable weights and the moving statistics, never a frozen layer's
// weights (the server merges each by its role, see ps.Role).
func (tr *trainer) push(step uint64) error {
	after := tr.m.Weights()
	delta := make([][]float32, len(tr.pushed))
	for k, i := range tr.pushed {
		w, b := after[i].Data, tr.base[i].Data
		for j := range w {
			w[j] -= b[j]
		}
		delta[k] = w
	}
	res, err := tr.c.PushBatches(tr.t.Ctx, step, tr.unpushed, ps.Delta, tr.shapes, delta)
	if err != nil {
		return err
	}
	tr.unpushed = 0
	tr.pushes++
	if res.Duplicate {
		tr.duplicates++
	}
	return nil
}

// log reports the task on stderr.
func (tr *trainer) log() {
	h := tr.h
	msg := fmt.Sprintf("gophas worker: partition %d, train: worker %s, epoch %d", h.Partition, h.Worker, h.Epoch)
	if h.Epochs > 0 {
		msg += fmt.Sprintf("/%d", h.Epochs)
	}
	e := tr.epoch
	msg += fmt.Sprintf(", %s/%s: %d rows trained in %d batches, %d pushes", tr.info.Mode, tr.info.Frequency, e.Sums().Count, e.Steps(), tr.pushes)
	if tr.duplicates > 0 {
		msg += fmt.Sprintf(" (%d already applied)", tr.duplicates)
	}
	if e.Skipped() > 0 {
		msg += fmt.Sprintf("; skipped %d rows (%s)", e.Skipped(), tr.rules.Skipped())
	}
	fmt.Fprintln(tr.t.Log, msg)
}

// write writes the one output batch: the sums per key, then the optimizer
// state's hash.
func (tr *trainer) write(state string) (err error) {
	b := array.NewRecordBuilder(tr.t.Mem, protocol.TrainSchema)
	defer b.Release()
	key := b.Field(0).(*array.StringBuilder)
	sum := b.Field(1).(*array.Float64Builder)
	count := b.Field(2).(*array.Int64Builder)
	st := b.Field(3).(*array.StringBuilder)
	sums := tr.epoch.Sums()
	for _, k := range sumKeys(sums, tr.m) { // a stateful metric (AUC, ...) as its state's keys; WeightKey
		key.Append(k)
		sum.Append(sums.Sums[k])
		count.Append(int64(sums.Count))
		st.Append("")
	}
	key.Append(protocol.TrainStateKey)
	sum.Append(0)
	count.Append(0)
	st.Append(state)
	rec := b.NewRecordBatch()
	defer rec.Release()
	w := tr.t.NewWriter(protocol.TrainSchema)
	defer tr.t.Close(w, &err)
	if err := w.Write(rec); err != nil {
		return fmt.Errorf("writing the output stream: %w", err)
	}
	return nil
}
