package gokernel

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gorgonia.org/tensor"
)

// chunkRows is how many rows Predict and Evaluate push through at once.
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
	// Seed seeds the shuffle; default 0.
	Seed int64
	// Callback, if set, is called after every epoch with its logs.
	Callback func(EpochLogs)
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

// Sums are the exact partial results of an evaluation: the number of rows
// and, per key ("loss" and the metric names), the sum over the rows of the
// per-row value. Sums of disjoint parts Add up to the Sums of the whole, and
// Result turns them into the means Evaluate reports.
type Sums struct {
	Count int
	Sums  map[string]float64
}

// Add returns the combined sums of s and o.
func (s Sums) Add(o Sums) Sums {
	out := Sums{Count: s.Count + o.Count, Sums: make(map[string]float64, len(s.Sums))}
	for k, v := range s.Sums {
		out.Sums[k] = v
	}
	for k, v := range o.Sums {
		out.Sums[k] += v
	}
	return out
}

// Result returns the mean per key: Sums[key] / Count (NaN without rows).
func (s Sums) Result() map[string]float64 {
	out := make(map[string]float64, len(s.Sums))
	for k, v := range s.Sums {
		out[k] = v / float64(s.Count)
	}
	if s.Count == 0 {
		for k := range out {
			out[k] = math.NaN()
		}
	}
	return out
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

// inputs checks x and y against the model and returns their data.
func (m *Model) inputs(x, y *tensor.Dense, op string) (xd, yd []float32, rows int, err error) {
	return m.checkInputs(x, y, op, op != "Predict")
}

func (m *Model) checkInputs(x, y *tensor.Dense, op string, needY bool) (xd, yd []float32, rows int, err error) {
	if err := m.singleIO(op); err != nil {
		return nil, nil, 0, err
	}
	xd, rows, width, err := floats(x, "x")
	if err != nil {
		return nil, nil, 0, fmt.Errorf("gokernel: %s: %w", op, unwrapPrefix(err))
	}
	if width != m.spec.InputDim() {
		return nil, nil, 0, fmt.Errorf("gokernel: %s: x has shape %v, want (rows, %d)", op, x.Shape(), m.spec.InputDim())
	}
	if rows == 0 {
		return nil, nil, 0, fmt.Errorf("gokernel: %s: x has no rows", op)
	}
	if !needY {
		return xd, nil, rows, nil
	}
	if m.loss == nil {
		return nil, nil, 0, fmt.Errorf("gokernel: %s: the model has no loss (its spec has no compile config with a loss)", op)
	}
	yd, yrows, ywidth, err := floats(y, "y")
	if err != nil {
		return nil, nil, 0, fmt.Errorf("gokernel: %s: %w", op, unwrapPrefix(err))
	}
	if yrows != rows {
		return nil, nil, 0, fmt.Errorf("gokernel: %s: x has %d rows but y has %d", op, rows, yrows)
	}
	if m.sparse {
		if ywidth != 1 || len(y.Shape()) > 2 {
			return nil, nil, 0, fmt.Errorf("gokernel: %s: y has shape %v, want integer labels of shape (%d) or (%d, 1) for %v", op, y.Shape(), rows, rows, m.loss.kind)
		}
		for i, v := range yd {
			if v != float32(math.Trunc(float64(v))) || v < 0 || int(v) >= m.outDim {
				return nil, nil, 0, fmt.Errorf("gokernel: %s: label %v in row %d is not an integer in [0, %d)", op, v, i, m.outDim)
			}
		}
	} else if ywidth != m.outDim {
		return nil, nil, 0, fmt.Errorf("gokernel: %s: y has shape %v, want (%d, %d)", op, y.Shape(), rows, m.outDim)
	}
	return xd, yd, rows, nil
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
	xd, _, rows, err := m.inputs(x, nil, "Predict")
	if err != nil {
		return nil, err
	}
	in := m.spec.InputDim()
	out := make([]float32, rows*m.outDim)
	for r := 0; r < rows; r += chunkRows {
		n := min(chunkRows, rows-r)
		copy(out[r*m.outDim:], m.forward(xd[r*in:], n, false))
	}
	return tensor.New(tensor.WithShape(rows, m.outDim), tensor.WithBacking(out)), nil
}

// EvaluateSums returns the exact sums behind Evaluate on x and y, for
// combining the evaluations of several partitions.
func (m *Model) EvaluateSums(x, y *tensor.Dense) (Sums, error) {
	xd, yd, rows, err := m.inputs(x, y, "EvaluateSums")
	if err != nil {
		return Sums{}, err
	}
	return m.evalSums(xd, yd, rows), nil
}

func (m *Model) evalSums(xd, yd []float32, rows int) Sums {
	in, yw := m.spec.InputDim(), m.yWidth()
	s := Sums{Count: rows, Sums: map[string]float64{}}
	var loss float64
	met := make([]float64, len(m.metrics))
	for r := 0; r < rows; r += chunkRows {
		n := min(chunkRows, rows-r)
		out := m.forward(xd[r*in:], n, false)
		loss += m.loss.lossSum(out, yd[r*yw:], n, m.outDim, nil, 0) + float64(n)*m.addedLoss()
		for k, ms := range m.metrics {
			met[k] += ms.kind.metricSum(out, yd[r*yw:], n, m.outDim, m.sparse)
		}
	}
	s.Sums["loss"] = loss + float64(rows)*m.regularize(false)
	for k, ms := range m.metrics {
		s.Sums[ms.name] = met[k]
	}
	return s
}

// Evaluate returns the mean loss (regularization included, as Keras reports
// it) under "loss" and each metric under its compiled name, inference mode.
func (m *Model) Evaluate(x, y *tensor.Dense) (map[string]float64, error) {
	s, err := m.EvaluateSums(x, y)
	if err != nil {
		return nil, err
	}
	return s.Result(), nil
}

// Gradients returns the gradients of the batch-mean loss (regularization
// included) with respect to the weights, in Weights() order, and that loss.
// The forward pass runs in training mode: Dropout is active. The weights
// are not changed.
func (m *Model) Gradients(x, y *tensor.Dense) (grads [][]float32, loss float64, err error) {
	xd, yd, rows, err := m.inputs(x, y, "Gradients")
	if err != nil {
		return nil, 0, err
	}
	loss = m.step(xd, yd, rows) / float64(rows)
	grads = make([][]float32, len(m.grads))
	for i, g := range m.grads {
		grads[i] = append([]float32(nil), g...)
	}
	return grads, loss, nil
}

// TrainOnBatch runs one optimizer step on all of x and y and returns the
// loss and metrics of that batch, computed before the step as Keras'
// train_on_batch does.
func (m *Model) TrainOnBatch(x, y *tensor.Dense) (map[string]float64, error) {
	xd, yd, rows, err := m.inputs(x, y, "TrainOnBatch")
	if err != nil {
		return nil, err
	}
	loss := m.step(xd, yd, rows)
	if err := m.opt.Apply(m.params, m.grads); err != nil {
		return nil, fmt.Errorf("gokernel: TrainOnBatch: %w", err)
	}
	out := map[string]float64{"loss": loss / float64(rows)}
	for k, ms := range m.metrics {
		out[ms.name] = m.msum[k] / float64(rows)
	}
	return out, nil
}

// Fit trains the model on x and y for o.Epochs epochs of o.BatchSize-row
// steps. The logged loss and metrics of an epoch are the means over its
// training rows of the values seen at each step (training mode, before the
// step's update), the way Keras reports them.
func (m *Model) Fit(x, y *tensor.Dense, o FitOptions) (*History, error) {
	xd, yd, rows, err := m.inputs(x, y, "Fit")
	if err != nil {
		return nil, err
	}
	if o.Epochs < 0 || o.BatchSize < 0 {
		return nil, fmt.Errorf("gokernel: Fit: Epochs %d and BatchSize %d must not be negative", o.Epochs, o.BatchSize)
	}
	if o.Epochs == 0 {
		o.Epochs = 1
	}
	if o.BatchSize == 0 {
		o.BatchSize = 32
	}
	if !(o.ValidationSplit >= 0 && o.ValidationSplit < 1) {
		return nil, fmt.Errorf("gokernel: Fit: ValidationSplit %v must be in [0, 1)", o.ValidationSplit)
	}
	in, yw := m.spec.InputDim(), m.yWidth()
	nTrain := int(math.Floor(float64(rows) * (1 - o.ValidationSplit)))
	if nTrain == 0 {
		return nil, fmt.Errorf("gokernel: Fit: ValidationSplit %v of %d rows leaves no training rows", o.ValidationSplit, rows)
	}
	if o.ValidationSplit > 0 && nTrain == rows {
		return nil, fmt.Errorf("gokernel: Fit: ValidationSplit %v of %d rows leaves no validation rows", o.ValidationSplit, rows)
	}
	bs := min(o.BatchSize, nTrain)
	m.reserve(bs)
	if len(m.xbuf) < bs*in {
		m.xbuf, m.ybuf = make([]float32, bs*in), make([]float32, bs*yw)
	}
	perm := make([]int, nTrain)
	for i := range perm {
		perm[i] = i
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x5f1e))
	h := &History{History: map[string][]float64{}}
	sums := make([]float64, len(m.metrics))
	for epoch := 0; epoch < o.Epochs; epoch++ {
		if o.Shuffle {
			rng.Shuffle(nTrain, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		}
		var loss float64
		clear(sums)
		for b := 0; b < nTrain; b += bs {
			n := min(bs, nTrain-b)
			bx, by := xd[b*in:], yd[b*yw:]
			if o.Shuffle {
				bx, by = m.xbuf, m.ybuf
				for r, i := range perm[b : b+n] {
					copy(bx[r*in:(r+1)*in], xd[i*in:(i+1)*in])
					copy(by[r*yw:(r+1)*yw], yd[i*yw:(i+1)*yw])
				}
			}
			loss += m.step(bx, by, n)
			for k := range sums {
				sums[k] += m.msum[k]
			}
			if err := m.opt.Apply(m.params, m.grads); err != nil {
				return h, fmt.Errorf("gokernel: Fit: epoch %d: %w", epoch, err)
			}
		}
		logs := map[string]float64{"loss": loss / float64(nTrain)}
		for k, ms := range m.metrics {
			logs[ms.name] = sums[k] / float64(nTrain)
		}
		if nTrain < rows {
			for k, v := range m.evalSums(xd[nTrain*in:], yd[nTrain*yw:], rows-nTrain).Result() {
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
