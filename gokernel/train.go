package gokernel

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// chunkRows is how many rows Predict and EvaluateBatch push through at once.
const chunkRows = 256

// FitOptions are the arguments of Fit, named as Keras names them.
type FitOptions struct {
	// Epochs is the number of passes over the training rows; 0 means 1.
	Epochs int
	// BatchSize is the number of rows per step; 0 means 32 (Keras' default).
	// The last batch of an epoch may be shorter.
	BatchSize int
	// Shuffle reorders the training rows before every epoch. Keras' default
	// is true; the zero value here is false.
	Shuffle bool
	// ValidationSplit in [0, 1) holds out the last fraction of the rows
	// (Keras: taken before shuffling, floor(rows·(1-split)) rows train) and
	// reports val_loss and val_<metric> on them after every epoch.
	ValidationSplit float64
	// Seed seeds each epoch's shuffle and Dropout masks (see EpochOptions);
	// default 0.
	Seed int64
	// Callback, if set, is called after every epoch with its logs.
	Callback func(EpochLogs)
	// Hooks, if set, act around every step (see Hooks).
	Hooks Hooks
	// ClassWeight weighs each training row by its class, SampleWeight
	// (one per row of x; Fit only) by its own weight, as Keras' class_weight
	// and sample_weight (see sample_weight.go); at most one of them. The
	// validation rows keep their sample weights, not the class weights.
	ClassWeight  ClassWeight
	SampleWeight []float32
}

// EpochLogs are the logs of one epoch, keyed as in History.
type EpochLogs struct {
	Epoch int
	Logs  map[string]float64
}

// History is what Fit returns, as Keras' History: Epoch lists the epoch
// numbers (from 0) and History[key][i] is the value of key after epoch
// Epoch[i]. Keys are "loss", the metric names as compiled, and with a
// validation split "val_loss" and "val_<metric>".
type History struct {
	Epoch   []int
	History map[string][]float64
}

// Sums are the exact partial results of an evaluation or of an epoch's
// training: the number of rows and, per key ("loss" and the metric names),
// the sum over the rows of the per-row value. Sums of disjoint parts Add up
// to the Sums of the whole, and Result turns them into the means Evaluate
// and Fit report.
//
// With weighted metrics (Spec.WeightedKeys) Sums also hold WeightKey, the
// sum of the rows' sample weights, and Result divides the weighted keys by
// it instead of by Count.
type Sums struct {
	Count int
	Sums  map[string]float64

	weighted []string // the keys Result divides by Sums[WeightKey]
}

// Add returns the combined sums of s and o.
func (s Sums) Add(o Sums) Sums {
	out := s.clone()
	if out.weighted == nil {
		out.weighted = o.weighted
	}
	out.Count += o.Count
	for k, v := range o.Sums {
		out.Sums[k] += v
	}
	return out
}

func (s Sums) clone() Sums {
	out := Sums{Count: s.Count, Sums: make(map[string]float64, len(s.Sums)), weighted: s.weighted}
	for k, v := range s.Sums {
		out.Sums[k] = v
	}
	return out
}

// Result returns the mean per key: Sums[key] / Count (NaN without rows);
// a weighted metric's is Sums[key] / Sums[WeightKey] (0 when the weights
// sum to 0, as Keras' divide_no_nan gives). WeightKey itself is left out,
// and so are the keys "<key>[<i>]" of a stateful metric's state (AUC,
// Precision, ...): Model.Result computes those metrics.
func (s Sums) Result() map[string]float64 {
	out := make(map[string]float64, len(s.Sums))
	for k, v := range s.Sums {
		if isStateKey(k) {
			continue
		}
		out[k] = v / float64(s.Count)
	}
	if s.Count == 0 {
		for k := range out {
			out[k] = math.NaN()
		}
	}
	s.weightedResult(out)
	return out
}

// newSums returns zero sums with the model's keys (SumKeys).
func (m *Model) newSums() Sums {
	s := Sums{Sums: map[string]float64{}}
	for _, k := range m.SumKeys() {
		s.Sums[k] = 0
	}
	m.weightedSums(&s)
	return s
}

// TrainStep is the loop's training step (see the loop's contract in
// loop.go): it runs the forward pass on b in training mode (Dropout
// active) and the backward pass, leaving the gradients of the batch-mean
// loss (the weighted sum over the outputs, regularization included) for
// ApplyGradients; the weights are not changed. It adds b's rows to
// sums.Count and, to sums.Sums under the keys of Model.SumKeys, the
// batch's per-row total loss (regularization counted once per row, as Keras
// reports it), with several outputs each output's loss, and the metrics
// (a stateful metric's state), summed over its rows and computed before
// any update; Model.Result turns the sums into Keras' logs. Without sums.Sums it
// makes them. Once the model's buffers hold b's rows, a step of a
// one-output model allocates nothing.
func (m *Model) TrainStep(b *Batch, sums *Sums) error {
	xs, ys, err := m.batchData(b, "TrainStep")
	if err != nil {
		return err
	}
	if err := m.setSampleWeights(b); err != nil {
		return err
	}
	loss := m.stepAll(xs, ys, b.Rows)
	m.addSums(sums, b.Rows, loss)
	return nil
}

// ApplyGradients is the loop's optimizer step: it updates the weights from
// the gradients of the last TrainStep with the model's optimizer.
func (m *Model) ApplyGradients() error {
	if m.opt == nil {
		return fmt.Errorf("gokernel: ApplyGradients: the model has no optimizer (its spec has no compile config)")
	}
	if err := m.opt.Apply(m.params, m.grads); err != nil {
		return fmt.Errorf("gokernel: ApplyGradients: %w", err)
	}
	return nil
}

// EvaluateBatch is the loop's evaluation: it runs b in inference mode
// (Dropout off) and adds its rows to sums.Count and, to sums.Sums, the
// per-row loss (regularization included), the outputs' losses and the
// metrics summed over its rows, keyed as TrainStep keys them.
func (m *Model) EvaluateBatch(b *Batch, sums *Sums) error {
	xs, ys, err := m.batchData(b, "EvaluateBatch")
	if err != nil {
		return err
	}
	if err := m.setSampleWeights(b); err != nil {
		return err
	}
	m.evalSums(xs, ys, b.Rows, sums)
	return nil
}

// batchData checks b against the model (an array per input of its width,
// one per output of its targets' width, valid class indexes) and returns
// its arrays.
func (m *Model) batchData(b *Batch, op string) (xs, ys [][]float32, err error) {
	if m.loss == nil && !m.spec.trains() {
		return nil, nil, fmt.Errorf("gokernel: %s: the model has no loss (its spec has no compile config with a loss)", op)
	}
	if err := b.check(); err != nil {
		return nil, nil, fmt.Errorf("gokernel: %s: %w", op, unwrapPrefix(err))
	}
	g := m.g
	if len(b.X) != len(g.inputs) || len(b.Y) != len(m.heads) {
		return nil, nil, fmt.Errorf("gokernel: %s: a batch of %d inputs and %d outputs; the model has %d and %d", op, len(b.X), len(b.Y), len(g.inputs), len(m.heads))
	}
	if b.Rows == 0 {
		return nil, nil, fmt.Errorf("gokernel: %s: the batch has no rows", op)
	}
	exact := true // b's arrays hold exactly its rows: use them as they are
	for i, t := range g.inputs {
		if w := prod(g.tensors[t].shape); b.XWidths[i] != w {
			return nil, nil, fmt.Errorf("gokernel: %s: input %d: rows of %d features; the model takes %d", op, i, b.XWidths[i], w)
		}
		exact = exact && len(b.X[i]) == b.Rows*b.XWidths[i]
	}
	for j, h := range m.heads {
		if h.spec.loss == nil {
			continue
		}
		if w := h.yWidth(); b.YWidths[j] != w {
			return nil, nil, fmt.Errorf("gokernel: %s: output %d: rows of %d targets; the model wants %d", op, j, b.YWidths[j], w)
		}
		y := b.Y[j][:b.Rows*b.YWidths[j]]
		exact = exact && len(b.Y[j]) == len(y)
		if h.sparse {
			if err := checkClasses(y, h.width); err != nil {
				return nil, nil, fmt.Errorf("gokernel: %s: %w", op, err)
			}
		}
	}
	if exact {
		return b.X, b.Y, nil
	}
	xs, ys = make([][]float32, len(b.X)), make([][]float32, len(b.Y))
	for i, x := range b.X {
		xs[i] = x[:b.Rows*b.XWidths[i]]
	}
	for j, y := range b.Y {
		ys[j] = y[:b.Rows*b.YWidths[j]]
	}
	return xs, ys, nil
}

// checkClasses checks integer class labels in [0, classes).
func checkClasses(y []float32, classes int) error {
	for i, v := range y {
		if v != float32(math.Trunc(float64(v))) || v < 0 || int(v) >= classes {
			return fmt.Errorf("label %v in row %d is not an integer in [0, %d)", v, i, classes)
		}
	}
	return nil
}

// floats returns the row-major float32 data of t as rows×width, where width
// is the product of every axis but the first.
func floats(t *tensor.Dense, what string) (data []float32, rows, width int, err error) {
	if t == nil {
		return nil, 0, 0, fmt.Errorf("gokernel: %s is nil", what)
	}
	if t.Dtype() != tensor.Float32 {
		return nil, 0, 0, fmt.Errorf("gokernel: %s has dtype %v, want float32", what, t.Dtype())
	}
	shape := t.Shape()
	if len(shape) == 0 {
		return nil, 0, 0, fmt.Errorf("gokernel: %s is a scalar, want rows", what)
	}
	if t.IsMaterializable() {
		mt, ok := t.Materialize().(*tensor.Dense)
		if !ok {
			return nil, 0, 0, fmt.Errorf("gokernel: %s: cannot materialize the view", what)
		}
		t = mt
	}
	if t.DataOrder().IsColMajor() {
		return nil, 0, 0, fmt.Errorf("gokernel: %s is column-major, want row-major", what)
	}
	rows, width = shape[0], 1
	for _, d := range shape[1:] {
		width *= d
	}
	if rows*width == 0 {
		return nil, rows, width, nil // tensor's Data panics on empty storage
	}
	d, ok := t.Data().([]float32)
	if !ok || len(d) < rows*width {
		return nil, 0, 0, fmt.Errorf("gokernel: %s: backing data does not hold shape %v", what, shape)
	}
	return d[:rows*width], rows, width, nil
}

// inputs checks the tensors x and y against the model and returns them as
// a Batch (y nil for Predict).
func (m *Model) inputs(x, y *tensor.Dense, op string) (*Batch, error) {
	if err := m.singleIO(op); err != nil {
		return nil, err
	}
	needY := op != "Predict"
	xd, rows, width, err := floats(x, "x")
	if err != nil {
		return nil, fmt.Errorf("gokernel: %s: %w", op, unwrapPrefix(err))
	}
	if width != m.spec.InputDim() {
		return nil, fmt.Errorf("gokernel: %s: x has shape %v, want (rows, %d)", op, x.Shape(), m.spec.InputDim())
	}
	if rows == 0 {
		return nil, fmt.Errorf("gokernel: %s: x has no rows", op)
	}
	if err := m.checkIDs(0, nil, xd, rows); err != nil {
		return nil, fmt.Errorf("gokernel: %s: %w", op, unwrapPrefix(err))
	}
	if !needY {
		return NewBatch(rows, xd, width, nil, 0), nil
	}
	if m.loss == nil {
		return nil, fmt.Errorf("gokernel: %s: the model has no loss (its spec has no compile config with a loss)", op)
	}
	yd, yrows, ywidth, err := floats(y, "y")
	if err != nil {
		return nil, fmt.Errorf("gokernel: %s: %w", op, unwrapPrefix(err))
	}
	if yrows != rows {
		return nil, fmt.Errorf("gokernel: %s: x has %d rows but y has %d", op, rows, yrows)
	}
	if m.sparse {
		if ywidth != 1 || len(y.Shape()) > 2 {
			return nil, fmt.Errorf("gokernel: %s: y has shape %v, want integer labels of shape (%d) or (%d, 1) for %v", op, y.Shape(), rows, rows, m.loss.kind)
		}
		if err := checkClasses(yd, m.outDim); err != nil {
			return nil, fmt.Errorf("gokernel: %s: %w", op, err)
		}
	} else if ywidth != m.outDim {
		return nil, fmt.Errorf("gokernel: %s: y has shape %v, want (%d, %d)", op, y.Shape(), rows, m.outDim)
	}
	return NewBatch(rows, xd, width, yd, ywidth), nil
}

// unwrapPrefix drops nothing; it exists so that wrapped messages read
// "gokernel: Fit: x is nil" rather than repeating the prefix.
func unwrapPrefix(err error) error { return prefixless{err} }

type prefixless struct{ err error }

func (p prefixless) Error() string {
	const pre = "gokernel: "
	s := p.err.Error()
	if len(s) > len(pre) && s[:len(pre)] == pre {
		return s[len(pre):]
	}
	return s
}
func (p prefixless) Unwrap() error { return p.err }

func (m *Model) yWidth() int {
	if m.sparse {
		return 1
	}
	return m.outDim
}

// Predict returns the model's output for x (rows, InputDim), inference mode
// (Dropout off), as a float32 (rows, OutputDim) tensor.
func (m *Model) Predict(x *tensor.Dense) (*tensor.Dense, error) {
	b, err := m.inputs(x, nil, "Predict")
	if err != nil {
		return nil, err
	}
	in, rows := m.spec.InputDim(), b.Rows
	out := make([]float32, rows*m.outDim)
	for r := 0; r < rows; r += chunkRows {
		n := min(chunkRows, rows-r)
		copy(out[r*m.outDim:], m.forward(b.X[0][r*in:], n, false))
	}
	return tensor.New(tensor.WithShape(rows, m.outDim), tensor.WithBacking(out)), nil
}

// PredictBatch returns the model's outputs for the inputs of b (its
// targets and weights are not read), inference mode (Dropout off): per
// model output, b.Rows×prod(output shape) values, row-major, in Keras'
// output order. It takes any number of inputs and outputs; an input of
// the wrong width or an id outside an Embedding's input_dim is an error
// naming the input, the row and the value. The outputs are appended to
// dst's arrays (reset to length 0), reusing their memory.
func (m *Model) PredictBatch(b *Batch, dst [][]float32) ([][]float32, error) {
	g := m.g
	if len(b.X) != len(g.inputs) || len(b.XWidths) != len(b.X) {
		return dst, fmt.Errorf("gokernel: PredictBatch: a batch of %d inputs; the model has %d", len(b.X), len(g.inputs))
	}
	if b.Rows <= 0 {
		return dst, fmt.Errorf("gokernel: PredictBatch: the batch has no rows")
	}
	for i, t := range g.inputs {
		if w := prod(g.tensors[t].shape); b.XWidths[i] != w {
			return dst, fmt.Errorf("gokernel: PredictBatch: input %q: rows of %d values; the model takes %d", g.inputNames[i], b.XWidths[i], w)
		}
		if len(b.X[i]) < b.Rows*b.XWidths[i] {
			return dst, fmt.Errorf("gokernel: PredictBatch: input %q holds %d values, want %d rows of %d", g.inputNames[i], len(b.X[i]), b.Rows, b.XWidths[i])
		}
		if err := m.checkIDs(i, nil, b.X[i], b.Rows); err != nil {
			return dst, fmt.Errorf("gokernel: PredictBatch: %w", unwrapPrefix(err))
		}
	}
	dst = resize(dst, len(g.outputs))
	dims := make([]int, len(g.outputs))
	for j, t := range g.outputs {
		dims[j] = prod(g.tensors[t].shape)
		dst[j] = grow(dst[j][:0], b.Rows*dims[j])
	}
	xs := make([][]float32, len(b.X))
	for r := 0; r < b.Rows; r += chunkRows {
		n := min(chunkRows, b.Rows-r)
		for i, x := range b.X {
			w := b.XWidths[i]
			xs[i] = x[r*w : (r+n)*w]
		}
		m.run(xs, n, false)
		for j, t := range g.outputs {
			copy(dst[j][r*dims[j]:(r+n)*dims[j]], m.val[t][:n*dims[j]])
		}
	}
	return dst, nil
}

// EvaluateSums returns the exact sums behind Evaluate on x and y, for
// combining the evaluations of several partitions.
func (m *Model) EvaluateSums(x, y *tensor.Dense) (Sums, error) {
	b, err := m.inputs(x, y, "EvaluateSums")
	if err != nil {
		return Sums{}, err
	}
	s := m.newSums()
	if err := m.EvaluateBatch(b, &s); err != nil {
		return Sums{}, err
	}
	return s, nil
}

// evalSums adds the inference-mode sums of rows rows of xs and ys (per
// input and per output) to s, in chunks of chunkRows.
func (m *Model) evalSums(xs, ys [][]float32, rows int, s *Sums) {
	if s.Sums == nil {
		s.Sums = map[string]float64{}
	}
	cx, cy := make([][]float32, len(xs)), make([][]float32, len(ys))
	var loss float64
	part := Sums{Sums: map[string]float64{}}
	sw := m.sw
	defer func() { m.sw = sw }()
	for r := 0; r < rows; r += chunkRows {
		n := min(chunkRows, rows-r)
		if sw != nil {
			m.sw = sw[r : r+n]
		}
		for i, x := range xs {
			w := len(x) / rows
			cx[i] = x[r*w : (r+n)*w]
		}
		for j, y := range ys {
			if y != nil {
				w := len(y) / rows
				cy[j] = y[r*w : (r+n)*w]
			}
		}
		m.run(cx, n, false)
		loss += m.lossSums(cy, n, false) + float64(n)*m.addedLoss()
		m.addSums(&part, n, 0)
	}
	s.Count += rows
	s.Sums["loss"] += loss + float64(rows)*m.regularize(false)
	for k, v := range part.Sums {
		if k != "loss" {
			s.Sums[k] += v
		}
	}
}

// Evaluate returns the mean loss (regularization included, as Keras reports
// it) under "loss" and each metric under its compiled name, inference mode.
func (m *Model) Evaluate(x, y *tensor.Dense) (map[string]float64, error) {
	s, err := m.EvaluateSums(x, y)
	if err != nil {
		return nil, err
	}
	return m.Result(s), nil
}

// Gradients returns the gradients of the batch-mean loss (regularization
// included) with respect to the weights, in Weights() order, and that loss.
// The forward pass runs in training mode: Dropout is active. The weights
// are not changed.
func (m *Model) Gradients(x, y *tensor.Dense) (grads [][]float32, loss float64, err error) {
	b, err := m.inputs(x, y, "Gradients")
	if err != nil {
		return nil, 0, err
	}
	var s Sums
	if err := m.TrainStep(b, &s); err != nil {
		return nil, 0, err
	}
	grads = make([][]float32, len(m.grads))
	for i, g := range m.grads {
		grads[i] = append([]float32(nil), g...)
	}
	return grads, s.Sums["loss"] / float64(s.Count), nil
}

// TrainOnBatch runs one optimizer step on all of x and y and returns the
// loss and metrics of that batch, computed before the step as Keras'
// train_on_batch does.
func (m *Model) TrainOnBatch(x, y *tensor.Dense) (map[string]float64, error) {
	b, err := m.inputs(x, y, "TrainOnBatch")
	if err != nil {
		return nil, err
	}
	var s Sums
	if err := m.TrainStep(b, &s); err != nil {
		return nil, err
	}
	if err := m.ApplyGradients(); err != nil {
		return nil, fmt.Errorf("gokernel: TrainOnBatch: %w", unwrapPrefix(err))
	}
	return m.Result(s), nil
}

// Fit trains the model on x and y for o.Epochs epochs of o.BatchSize-row
// steps through the training loop (FitRows). The logged loss and metrics of
// an epoch are the means over its training rows of the values seen at each
// step (training mode, before the step's update), the way Keras reports
// them.
func (m *Model) Fit(x, y *tensor.Dense, o FitOptions) (*History, error) {
	b, err := m.inputs(x, y, "Fit")
	if err != nil {
		return nil, err
	}
	if o.SampleWeight != nil {
		if len(o.SampleWeight) != b.Rows {
			return nil, fmt.Errorf("gokernel: Fit: %d sample weights for %d rows", len(o.SampleWeight), b.Rows)
		}
		b.W = o.SampleWeight
	}
	return m.FitRows(b, o)
}
