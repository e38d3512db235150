package bridge

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"gorgonia.org/tensor"

	"github.com/gophas/gophas/arrowio"
	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/ps"
)

func init() { registerMode(ModeTrain, runTrain) }

// TrainSchema is the schema of the train output; see the protocol comment
// in protocol.go.
var TrainSchema = arrow.NewSchema([]arrow.Field{
	{Name: "key", Type: arrow.BinaryTypes.String},
	{Name: "sum", Type: arrow.PrimitiveTypes.Float64},
	{Name: "count", Type: arrow.PrimitiveTypes.Int64},
	{Name: "state", Type: arrow.BinaryTypes.String},
}, nil)

// Bounds of the worker's calls to the driver.
const (
	maxCallTimeout = 2 * time.Minute  // one attempt of one call, at most
	roundWait      = 30 * time.Minute // one synchronous round; the server's round timeout answers first
)

// readSpec reads the spec of the header's model: DIR/model.json, or the
// file itself when path is a file.
func readSpec(path string) (*gokernel.Spec, error) {
	file := path
	if st, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("model %q: %w", path, err)
	} else if st.IsDir() {
		file = filepath.Join(path, gokernel.SpecFile)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", path, err)
	}
	spec, err := gokernel.ParseSpec(b)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", file, err)
	}
	return spec, nil
}

// dialDriver returns a client of the header's driver. Each attempt of a
// call is bounded by the pipe's timeout, at most maxCallTimeout.
func dialDriver(h *Header) (*ps.Client, error) {
	opts := []ps.ClientOption{ps.WithCallTimeout(min(h.IOTimeout(), maxCallTimeout)), ps.WithRoundWait(roundWait)}
	if h.TLSFingerprint != "" {
		opts = append(opts, ps.WithFingerprint(h.TLSFingerprint))
	}
	return ps.Dial(h.Driver, h.Token, opts...)
}

// driverModel builds the header's spec with the driver's current weights.
func driverModel(ctx context.Context, h *Header) (*gokernel.Model, error) {
	spec, err := readSpec(h.Model)
	if err != nil {
		return nil, err
	}
	m, err := gokernel.NewModel(spec, gokernel.WithThreads(h.Threads))
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", h.Model, err)
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

// trainer runs the steps of one train task and keeps their sums.
type trainer struct {
	t    *Task
	h    *Header
	m    *gokernel.Model
	c    *ps.Client
	info ps.RegisterInfo

	sync, perBatch bool
	round          uint64 // synchronous: the round of the task's first batch
	skipAll        bool   // epoch frequency: the server applied this epoch already

	base    []ps.NamedTensor // the weights pulled
	version uint64           // their version
	shapes  []ps.TensorInfo

	keys []string
	sums []float64

	// The shuffle block: rows×xw features and rows×yw targets.
	xw, yw  int
	capRows int
	rows    int
	x, y    []float32
	perm    []int
	rng     *rand.Rand // nil: arrival order
	bx, by  []float32  // one gathered batch

	batches                     int   // batch index of the next batch
	trained, skipped            int64 // rows
	pushes, duplicates, skipSet int
	peersChecked                bool // synchronous: awaitPeers ran
}

// runTrain trains one epoch of the partition through the driver's parameter
// server and writes one batch of TrainSchema.
func runTrain(t *Task) (err error) {
	h := &t.Header
	in := t.Input.Schema()
	feat := h.Features()
	if slices.Contains(feat, h.LabelCol) {
		return fmt.Errorf("column %q is both a feature and the label", h.LabelCol)
	}
	xc := &matrix{conv: arrowio.NewConverter(feat)}
	if err := xc.conv.Check(in); err != nil {
		return err
	}
	spec, err := readSpec(h.Model)
	if err != nil {
		return err
	}
	if spec.Loss() == "" {
		return fmt.Errorf("model %q has no compile config with a loss", h.Model)
	}
	seed := taskSeed(h)
	m, err := gokernel.NewModel(spec, gokernel.WithSeed(int64(seed)), gokernel.WithThreads(h.Threads))
	if err != nil {
		return fmt.Errorf("model %q: %w", h.Model, err)
	}
	if err := checkWidth(xc.conv, feat, m); err != nil {
		return err
	}
	yc := newLabels(h.LabelCol, spec)
	if err := yc.conv.Check(in); err != nil {
		return err
	}
	if w := yc.conv.Width(); w >= 0 {
		if err := yc.shape(w); err != nil {
			return err
		}
	}

	c, err := dialDriver(h)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := t.Ctx
	info, err := c.Register(ctx, h.Worker)
	if err != nil {
		return err
	}
	tr := &trainer{t: t, h: h, m: m, c: c, info: info,
		sync: info.Mode == ps.Synchronous, perBatch: info.Frequency == ps.Batch, round: h.Round}
	if tr.sync && tr.round == 0 {
		tr.round = info.Version
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
	tr.shapes = make([]ps.TensorInfo, len(ws))
	for i, w := range ws {
		tr.shapes[i] = ps.TensorInfo{Name: w.Name, Shape: w.Shape}
	}
	if h.OptimizerState != "" {
		if err := tr.loadOptimizer(h.OptimizerState); err != nil {
			return err
		}
	}
	if !tr.perBatch {
		switch {
		case tr.sync && v > tr.round:
			tr.skipAll = true
		case !tr.sync && info.HasPushed && tr.epochStep() <= info.LastStep:
			tr.skipAll = true
		}
	}
	tr.keys = evaluateKeys(spec)
	tr.sums = make([]float64, len(tr.keys))
	if !h.NoShuffle {
		tr.rng = rand.New(rand.NewPCG(uint64(h.Seed), seed))
	}

	for t.Input.Next() {
		rec := t.Input.RecordBatch()
		xt, err := xc.load(rec)
		if err != nil {
			return err
		}
		if xt == nil {
			continue
		}
		if err := checkWidth(xc.conv, feat, m); err != nil {
			return err
		}
		yt, err := yc.load(rec)
		if err != nil {
			return err
		}
		if err := tr.add(xt, yt); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("cancelled: %w", err)
		}
	}
	if err := t.Input.Err(); err != nil {
		return fmt.Errorf("reading the input stream: %w", err)
	}
	if err := tr.flush(true); err != nil {
		return err
	}
	if !tr.perBatch && !tr.skipAll && tr.trained > 0 {
		step := tr.epochStep()
		if tr.sync {
			step = tr.round
		}
		if err := tr.push(step); err != nil {
			return err
		}
	}
	if err := c.Done(ctx); err != nil {
		return err
	}
	state := ""
	if tr.trained > 0 {
		if state, err = tr.saveOptimizer(); err != nil {
			return err
		}
	}
	tr.log()
	return tr.write(state)
}

// taskSeed mixes the header's epoch and worker name into its seed, so that
// workers and epochs shuffle and drop out differently while a retried task
// repeats its first attempt exactly.
func taskSeed(h *Header) uint64 {
	hw := fnv.New64a()
	fmt.Fprintf(hw, "%d/%d/%s", h.Seed, h.Epoch, h.Worker)
	return hw.Sum64()
}

// epochStep is the step of an asynchronous epoch push: the epoch in the
// high 32 bits.
func (tr *trainer) epochStep() uint64 { return uint64(tr.h.Epoch) << 32 }

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

// add appends the rows of one input batch to the shuffle block, training
// on the block whenever it is full.
func (tr *trainer) add(xt, yt *tensor.Dense) error {
	x, y := xt.Data().([]float32), yt.Data().([]float32)
	n := xt.Shape()[0]
	if tr.capRows == 0 {
		tr.xw, tr.yw = xt.Shape()[1], yt.Shape()[1]
		tr.capRows = tr.h.BatchSize
		if tr.rng != nil {
			tr.capRows = max(tr.capRows, int(tr.h.ShuffleBufferBytes/int64(4*(tr.xw+tr.yw))))
		}
		tr.bx = make([]float32, tr.h.BatchSize*tr.xw)
		tr.by = make([]float32, tr.h.BatchSize*tr.yw)
	}
	for off := 0; off < n; {
		k := min(n-off, tr.capRows-tr.rows)
		tr.x = appendRows(tr.x, x[off*tr.xw:(off+k)*tr.xw], tr.capRows*tr.xw)
		tr.y = appendRows(tr.y, y[off*tr.yw:(off+k)*tr.yw], tr.capRows*tr.yw)
		tr.rows += k
		off += k
		if tr.rows == tr.capRows {
			if err := tr.flush(false); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendRows appends v to buf, growing it at most to limit values.
func appendRows(buf, v []float32, limit int) []float32 {
	if need := len(buf) + len(v); need > cap(buf) {
		grown := make([]float32, len(buf), min(limit, max(need, 2*cap(buf))))
		copy(grown, buf)
		buf = grown
	}
	return append(buf, v...)
}

// flush trains on the block in batches, in a seeded random order unless
// NoShuffle. Rows that do not fill a batch stay for the next block, unless
// final: then the last batch is short.
func (tr *trainer) flush(final bool) error {
	n := tr.rows
	if n == 0 {
		return nil
	}
	tr.perm = tr.perm[:0]
	for i := range n {
		tr.perm = append(tr.perm, i)
	}
	if tr.rng != nil {
		tr.rng.Shuffle(n, func(i, j int) { tr.perm[i], tr.perm[j] = tr.perm[j], tr.perm[i] })
	}
	bs := tr.h.BatchSize
	full := n / bs * bs
	if final {
		full = n
	}
	for b := 0; b < full; b += bs {
		k := min(bs, full-b)
		tr.gather(tr.perm[b : b+k])
		if err := tr.step(k); err != nil {
			return err
		}
		if err := tr.t.Ctx.Err(); err != nil {
			return fmt.Errorf("cancelled: %w", err)
		}
	}
	rest := tr.perm[full:]
	tr.gather(rest) // fewer than a batch: bx, by hold them
	tr.x = append(tr.x[:0], tr.bx[:len(rest)*tr.xw]...)
	tr.y = append(tr.y[:0], tr.by[:len(rest)*tr.yw]...)
	tr.rows = len(rest)
	return nil
}

// gather copies the block's rows idx into the batch buffers.
func (tr *trainer) gather(idx []int) {
	xw, yw := tr.xw, tr.yw
	for i, r := range idx {
		copy(tr.bx[i*xw:(i+1)*xw], tr.x[r*xw:(r+1)*xw])
		copy(tr.by[i*yw:(i+1)*yw], tr.y[r*yw:(r+1)*yw])
	}
}

// step runs the next batch of k rows (in bx, by): skipped when the server
// has it already, else pulled, trained and pushed as the mode and
// frequency say.
func (tr *trainer) step(k int) error {
	ctx := tr.t.Ctx
	idx := tr.batches
	tr.batches++
	var step uint64
	switch {
	case tr.skipAll:
		tr.skipped += int64(k)
		return nil
	case tr.perBatch && tr.sync:
		step = tr.round + uint64(idx)
		if tr.version < step {
			if err := tr.pull(); err != nil {
				return err
			}
		}
		if tr.version > step { // the round closed without us: a retried task
			tr.skipped += int64(k)
			tr.skipSet++
			return nil
		}
		if tr.version < step {
			return fmt.Errorf("batch %d: round %d is not open: the driver %s is at version %d", idx+1, step, tr.h.Driver, tr.version)
		}
		if err := tr.m.SetWeights(tr.base); err != nil {
			return err
		}
	case tr.perBatch:
		step = tr.epochStep() | uint64(idx+1)
		if tr.info.HasPushed && step <= tr.info.LastStep {
			tr.skipped += int64(k)
			tr.skipSet++
			return nil
		}
		if err := tr.pull(); err != nil {
			return err
		}
		if err := tr.m.SetWeights(tr.base); err != nil {
			return err
		}
	}
	xt := tensor.New(tensor.WithShape(k, tr.xw), tensor.WithBacking(tr.bx[:k*tr.xw]))
	yt := tensor.New(tensor.WithShape(k, tr.yw), tensor.WithBacking(tr.by[:k*tr.yw]))
	logs, err := tr.m.TrainOnBatch(xt, yt)
	if err != nil {
		return fmt.Errorf("batch %d: %w", idx+1, err)
	}
	for i, key := range tr.keys {
		tr.sums[i] += logs[key] * float64(k)
	}
	tr.trained += int64(k)
	if !tr.perBatch {
		return nil
	}
	if err := tr.push(step); err != nil {
		return err
	}
	if tr.sync {
		if _, err := tr.c.WaitRound(ctx, step); err != nil {
			return err
		}
	}
	return nil
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

// awaitPeers runs once, before the task's first synchronous push: it waits
// until every worker the server knows has registered for this epoch. A
// worker registers at least once per epoch, so its count of registrations
// reaches Epoch; one below it has not started this epoch's task yet, and
// is still marked done from the previous epoch, so a round would close
// without it and it would then skip the round. (In epoch 1 the server's
// worker count does this.) The wait is bounded by the call timeout; then
// the push goes ahead.
func (tr *trainer) awaitPeers() error {
	if !tr.sync || tr.peersChecked {
		return nil
	}
	tr.peersChecked = true
	ctx := tr.t.Ctx
	start := time.Now()
	limit := min(tr.h.IOTimeout(), maxCallTimeout)
	wait := 5 * time.Millisecond
	for {
		st, err := tr.c.Stats(ctx)
		if err != nil {
			return err
		}
		var late []string
		for _, w := range st.Workers {
			if w.Worker != tr.h.Worker && w.Registers < uint64(tr.h.Epoch) {
				late = append(late, w.Worker)
			}
		}
		if len(late) == 0 {
			if d := time.Since(start); d > time.Second {
				fmt.Fprintf(tr.t.Log, "gophas worker: partition %d, train: waited %v for the other workers to start epoch %d\n",
					tr.h.Partition, d.Round(time.Millisecond), tr.h.Epoch)
			}
			return nil
		}
		if time.Since(start) > limit {
			fmt.Fprintf(tr.t.Log, "gophas worker: partition %d, train: workers %v have not started epoch %d after %v; pushing without them\n",
				tr.h.Partition, late, tr.h.Epoch, limit)
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cancelled: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// push sends the model's weights minus the pulled ones as step.
func (tr *trainer) push(step uint64) error {
	if err := tr.awaitPeers(); err != nil {
		return err
	}
	after := tr.m.Weights()
	delta := make([][]float32, len(after))
	for i, w := range after {
		b := tr.base[i].Data
		for j := range w.Data {
			w.Data[j] -= b[j]
		}
		delta[i] = w.Data
	}
	res, err := tr.c.Push(tr.t.Ctx, step, ps.Delta, tr.shapes, delta)
	if err != nil {
		return err
	}
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
	msg += fmt.Sprintf(", %s/%s: %d rows trained in %d batches, %d pushes", tr.info.Mode, tr.info.Frequency, tr.trained, tr.batches, tr.pushes)
	if tr.duplicates > 0 {
		msg += fmt.Sprintf(" (%d already applied)", tr.duplicates)
	}
	if tr.skipped > 0 {
		why := "the epoch was applied by an earlier attempt"
		if tr.perBatch {
			why = fmt.Sprintf("%d batches applied by an earlier attempt", tr.skipSet)
			if tr.sync {
				why = fmt.Sprintf("%d rounds closed without this attempt", tr.skipSet)
			}
		}
		msg += fmt.Sprintf("; skipped %d rows (%s)", tr.skipped, why)
	}
	fmt.Fprintln(tr.t.Log, msg)
}

// write writes the one output batch: the sums per key, then the optimizer
// state's hash.
func (tr *trainer) write(state string) (err error) {
	b := array.NewRecordBuilder(tr.t.Mem, TrainSchema)
	defer b.Release()
	key := b.Field(0).(*array.StringBuilder)
	sum := b.Field(1).(*array.Float64Builder)
	count := b.Field(2).(*array.Int64Builder)
	st := b.Field(3).(*array.StringBuilder)
	for i, k := range tr.keys {
		key.Append(k)
		sum.Append(tr.sums[i])
		count.Append(tr.trained)
		st.Append("")
	}
	key.Append(TrainStateKey)
	sum.Append(0)
	count.Append(0)
	st.Append(state)
	rec := b.NewRecordBatch()
	defer rec.Release()
	w := tr.t.NewWriter(TrainSchema)
	defer tr.t.Close(w, &err)
	if err := w.Write(rec); err != nil {
		return fmt.Errorf("writing the output stream: %w", err)
	}
	return nil
}
