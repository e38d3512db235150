package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"time"

	"gorgonia.org/tensor"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/mnist"
)

// MNIST is the TrainConfig.Data and TrainConfig.Test value that names the
// MNIST digits (the GoMNIST IDX files): 60,000 training and 10,000 test rows.
const MNIST = "mnist"

// TrainConfig is what `gophas train` trains on. The zero value of each
// optional field is its documented default.
type TrainConfig struct {
	// Model is a spec file (Keras model.to_json(), or {"model", "compile"})
	// or a model directory written by gokernel.SaveModel. Required; the spec
	// must carry a compile config (optimizer, loss, metrics).
	Model string
	// Data is MNIST or a file: Arrow IPC (file or stream format) or CSV
	// (a name ending in .csv). Required.
	Data string
	// Test is MNIST or a file as Data, evaluated after training; "" for
	// none.
	Test string
	// Epochs is the number of passes over the training rows; 0 means 1.
	Epochs int
	// BatchSize is the number of rows per step; 0 means 32 (Keras' default).
	BatchSize int
	// ValidationSplit in [0, 1) holds out the last fraction of the training
	// rows, before shuffling, as Keras does; default 0.
	ValidationSplit float64
	// Seed seeds the weight initializers, Dropout and the shuffle; default 0.
	Seed int64
	// Out is the directory the trained model is saved to; "" saves nothing.
	Out string
	// Features names the feature columns of a file, comma-separated: one
	// list column or numeric columns. Default: every column but the label.
	Features string
	// Label names the label column of a file. Default: the last column.
	Label string
	// Threads is the number of goroutines per matrix multiply; 0 means
	// GOMAXPROCS.
	Threads int
	// MNISTDir is the folder of the MNIST IDX files; "" means
	// mnist.DefaultDir().
	MNISTDir string
	// Progress forces the progress bar on (1) or off (-1); 0 shows it only
	// when stderr is a terminal.
	Progress int
}

// dataset is a table of rows: x is rows×xWidth, y is rows×yWidth.
type dataset struct {
	rows           int
	x, y           []float32
	xWidth, yWidth int
}

// Train trains a model as TrainConfig describes: per epoch a progress bar
// (a terminal) or a plain line on stderr, and one line of loss and metrics
// on stdout ("epoch 1/5 - 2.1s - loss: 0.3102 - accuracy: 0.9101"); with
// test data, a final line "test accuracy: 0.9712" (or "test loss: ..." and
// the metrics when there is no accuracy metric). The model is saved to
// c.Out at the end. Train stops between two steps when ctx is done.
func Train(ctx context.Context, c TrainConfig, stdout, stderr io.Writer) error {
	if err := c.check(); err != nil {
		return err
	}
	m, err := loadTrainModel(c)
	if err != nil {
		return err
	}
	spec := m.Spec()
	if spec.Loss() == "" {
		return fmt.Errorf("bridge: train: model %s has no compile config with a loss", c.Model)
	}
	train, test, err := loadTrainData(c, spec)
	if err != nil {
		return err
	}
	var val *dataset
	if c.ValidationSplit > 0 {
		n := int(math.Floor(float64(train.rows) * (1 - c.ValidationSplit)))
		if n == 0 || n == train.rows {
			return fmt.Errorf("bridge: train: validation split %v of %d rows leaves no training or no validation rows", c.ValidationSplit, train.rows)
		}
		train, val = train.slice(0, n), train.slice(n, train.rows)
	}
	progress := c.Progress > 0 || c.Progress == 0 && isTerminal(stderr)
	if err := trainLoop(ctx, m, c, train, val, progress, stdout, stderr); err != nil {
		return err
	}
	if test != nil {
		logs, err := evaluate(m, test)
		if err != nil {
			return fmt.Errorf("bridge: train: evaluating the test data: %w", err)
		}
		fmt.Fprintln(stdout, testLine(logs, spec.Metrics()))
	}
	if c.Out != "" {
		if err := gokernel.SaveModel(c.Out, m); err != nil {
			return fmt.Errorf("bridge: train: saving the model: %w", err)
		}
		fmt.Fprintf(stderr, "model saved to %s\n", c.Out)
	}
	return nil
}

func (c *TrainConfig) check() error {
	switch {
	case c.Model == "":
		return errors.New("bridge: train: no model given (--model SPEC_OR_DIR)")
	case c.Data == "":
		return errors.New("bridge: train: no training data given (--data mnist|FILE)")
	case c.Epochs < 0:
		return fmt.Errorf("bridge: train: epochs %d must not be negative", c.Epochs)
	case c.BatchSize < 0:
		return fmt.Errorf("bridge: train: batch size %d must not be negative", c.BatchSize)
	case !(c.ValidationSplit >= 0 && c.ValidationSplit < 1):
		return fmt.Errorf("bridge: train: validation split %v must be in [0, 1)", c.ValidationSplit)
	}
	if c.Epochs == 0 {
		c.Epochs = 1
	}
	if c.BatchSize == 0 {
		c.BatchSize = 32
	}
	return nil
}

func loadTrainModel(c TrainConfig) (*gokernel.Model, error) {
	opts := []gokernel.Option{gokernel.WithSeed(c.Seed), gokernel.WithThreads(c.Threads)}
	st, err := os.Stat(c.Model)
	if err != nil {
		return nil, fmt.Errorf("bridge: train: model: %w", err)
	}
	if st.IsDir() {
		m, err := gokernel.LoadModel(c.Model, opts...)
		if err != nil {
			return nil, fmt.Errorf("bridge: train: %w", err)
		}
		return m, nil
	}
	b, err := os.ReadFile(c.Model)
	if err != nil {
		return nil, fmt.Errorf("bridge: train: model: %w", err)
	}
	spec, err := gokernel.ParseSpec(b)
	if err != nil {
		return nil, fmt.Errorf("bridge: train: %s: %w", c.Model, err)
	}
	m, err := gokernel.NewModel(spec, opts...)
	if err != nil {
		return nil, fmt.Errorf("bridge: train: %s: %w", c.Model, err)
	}
	return m, nil
}

// loadTrainData reads the training and (optional) test data and shapes the
// labels for the loss: integer labels for sparse_categorical_crossentropy,
// one-hot rows when the model has several outputs and the label one column,
// the label values as they are otherwise.
func loadTrainData(c TrainConfig, spec *gokernel.Spec) (train, test *dataset, err error) {
	if c.Data == MNIST || c.Test == MNIST {
		dir := c.MNISTDir
		if dir == "" {
			if dir, err = mnist.DefaultDir(); err != nil {
				return nil, nil, fmt.Errorf("bridge: train: %w", err)
			}
		}
		tr, te, err := mnist.Load(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("bridge: train: %w", err)
		}
		if c.Data == MNIST {
			train = mnistSet(tr)
		}
		if c.Test == MNIST {
			test = mnistSet(te)
		}
	}
	if train == nil {
		if train, err = readTable(c.Data, c.Features, c.Label); err != nil {
			return nil, nil, err
		}
	}
	if test == nil && c.Test != "" {
		if test, err = readTable(c.Test, c.Features, c.Label); err != nil {
			return nil, nil, err
		}
	}
	for _, d := range []struct {
		name string
		set  *dataset
	}{{c.Data, train}, {c.Test, test}} {
		if d.set == nil {
			continue
		}
		if err := fitLabels(d.set, spec); err != nil {
			return nil, nil, fmt.Errorf("bridge: train: %s: %w", d.name, err)
		}
		if d.set.xWidth != spec.InputDim() {
			return nil, nil, fmt.Errorf("bridge: train: %s has %d features per row but the model takes %d", d.name, d.set.xWidth, spec.InputDim())
		}
		if d.set.rows == 0 {
			return nil, nil, fmt.Errorf("bridge: train: %s has no rows", d.name)
		}
	}
	return train, test, nil
}

func mnistSet(s *mnist.Set) *dataset {
	return &dataset{rows: s.N, x: s.Images, xWidth: mnist.Width, y: s.LabelsFloat(), yWidth: 1}
}

// fitLabels turns single-column class labels into what the loss wants.
func fitLabels(d *dataset, spec *gokernel.Spec) error {
	out := spec.OutputDim()
	sparse := spec.Loss() == "sparse_categorical_crossentropy"
	switch {
	case sparse && d.yWidth != 1:
		return fmt.Errorf("the label has %d values per row but %s wants one class index", d.yWidth, spec.Loss())
	case sparse, d.yWidth == out:
		return nil
	case d.yWidth == 1 && out > 1:
		return oneHot(d, out)
	default:
		return fmt.Errorf("the label has %d values per row but the model has %d outputs", d.yWidth, out)
	}
}

// oneHot replaces d's class-index labels by one-hot rows of width k.
func oneHot(d *dataset, k int) error {
	y := make([]float32, d.rows*k)
	for i, v := range d.y {
		c := int(v)
		if float32(c) != v || c < 0 || c >= k {
			return fmt.Errorf("label %v in row %d is not a class index in [0, %d) for one-hot encoding", v, i+1, k)
		}
		y[i*k+c] = 1
	}
	d.y, d.yWidth = y, k
	return nil
}

func (d *dataset) slice(from, to int) *dataset {
	return &dataset{rows: to - from, xWidth: d.xWidth, yWidth: d.yWidth,
		x: d.x[from*d.xWidth : to*d.xWidth], y: d.y[from*d.yWidth : to*d.yWidth]}
}

func (d *dataset) tensors() (x, y *tensor.Dense) {
	return tensor.New(tensor.WithShape(d.rows, d.xWidth), tensor.WithBacking(d.x)),
		tensor.New(tensor.WithShape(d.rows, d.yWidth), tensor.WithBacking(d.y))
}

// batchBuf holds one batch of gathered rows and the tensors over them.
type batchBuf struct {
	x, y   []float32
	xt, yt *tensor.Dense
}

// trainLoop runs the epochs: shuffled rows (Keras' default), batches through
// TrainOnBatch, and the epoch's logs as the row-weighted means of the
// batches' values, as Keras' fit reports them.
func trainLoop(ctx context.Context, m *gokernel.Model, c TrainConfig, train, val *dataset, progress bool, stdout, stderr io.Writer) error {
	bs := min(c.BatchSize, train.rows)
	full := newBatchBuf(bs, train)
	var last *batchBuf
	if r := train.rows % bs; r != 0 {
		last = newBatchBuf(r, train)
	}
	perm := make([]int, train.rows)
	for i := range perm {
		perm[i] = i
	}
	rng := rand.New(rand.NewPCG(uint64(c.Seed), 0x6f70686173)) // "ophas"
	steps := (train.rows + bs - 1) / bs
	keys := append([]string{"loss"}, m.Spec().Metrics()...)
	sums := make([]float64, len(keys))
	for epoch := 1; epoch <= c.Epochs; epoch++ {
		start := time.Now()
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		clear(sums)
		seen := 0
		bar := newProgressBar(stderr, progress, epoch, c.Epochs, steps)
		for s := 0; s < steps; s++ {
			if err := ctx.Err(); err != nil {
				bar.done()
				return fmt.Errorf("bridge: train: epoch %d step %d: %w", epoch, s+1, err)
			}
			idx := perm[s*bs : min((s+1)*bs, train.rows)]
			b := full
			if len(idx) < bs {
				b = last
			}
			b.gather(train, idx)
			logs, err := m.TrainOnBatch(b.xt, b.yt)
			if err != nil {
				bar.done()
				return fmt.Errorf("bridge: train: epoch %d step %d: %w", epoch, s+1, err)
			}
			for k, key := range keys {
				sums[k] += logs[key] * float64(len(idx))
			}
			seen += len(idx)
			bar.step(s+1, sums[0]/float64(seen)) // the running mean, as Keras shows it
		}
		bar.done()
		line := fmt.Sprintf("epoch %d/%d - %.1fs", epoch, c.Epochs, time.Since(start).Seconds())
		for k, key := range keys {
			line += fmt.Sprintf(" - %s: %.4f", key, sums[k]/float64(train.rows))
		}
		if val != nil {
			logs, err := evaluate(m, val)
			if err != nil {
				return fmt.Errorf("bridge: train: epoch %d validation: %w", epoch, err)
			}
			for _, key := range keys {
				line += fmt.Sprintf(" - val_%s: %.4f", key, logs[key])
			}
		}
		fmt.Fprintln(stdout, line)
		if !progress {
			fmt.Fprintf(stderr, "epoch %d/%d: %d steps in %.2fs\n", epoch, c.Epochs, steps, time.Since(start).Seconds())
		}
	}
	return nil
}

func newBatchBuf(rows int, d *dataset) *batchBuf {
	b := &batchBuf{x: make([]float32, rows*d.xWidth), y: make([]float32, rows*d.yWidth)}
	b.xt = tensor.New(tensor.WithShape(rows, d.xWidth), tensor.WithBacking(b.x))
	b.yt = tensor.New(tensor.WithShape(rows, d.yWidth), tensor.WithBacking(b.y))
	return b
}

func (b *batchBuf) gather(d *dataset, idx []int) {
	xw, yw := d.xWidth, d.yWidth
	for i, r := range idx {
		copy(b.x[i*xw:(i+1)*xw], d.x[r*xw:(r+1)*xw])
		copy(b.y[i*yw:(i+1)*yw], d.y[r*yw:(r+1)*yw])
	}
}

func evaluate(m *gokernel.Model, d *dataset) (map[string]float64, error) {
	x, y := d.tensors()
	return m.Evaluate(x, y)
}

// testLine is the final line: the accuracy when a metric is an accuracy,
// else the loss and every metric.
func testLine(logs map[string]float64, metrics []string) string {
	for _, k := range metrics {
		if strings.Contains(k, "accuracy") {
			return fmt.Sprintf("test %s: %.4f", k, logs[k])
		}
	}
	line := fmt.Sprintf("test loss: %.4f", logs["loss"])
	ms := append([]string(nil), metrics...)
	sort.Strings(ms)
	for _, k := range ms {
		line += fmt.Sprintf(" - %s: %.4f", k, logs[k])
	}
	return line
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar draws "epoch 2/5 [=====>    ] 120/469 loss: 0.3102" on one
// terminal line, at most every 100 ms; off, it draws nothing.
type progressBar struct {
	w             io.Writer
	on            bool
	epoch, epochs int
	steps         int
	last          time.Time
}

func newProgressBar(w io.Writer, on bool, epoch, epochs, steps int) *progressBar {
	return &progressBar{w: w, on: on, epoch: epoch, epochs: epochs, steps: steps}
}

const barWidth = 30

func (p *progressBar) step(s int, loss float64) {
	if !p.on || (s < p.steps && time.Since(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = time.Now()
	n := barWidth * s / p.steps
	bar := strings.Repeat("=", n)
	if n < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-n-1)
	}
	fmt.Fprintf(p.w, "\repoch %d/%d [%s] %d/%d loss: %.4f", p.epoch, p.epochs, bar, s, p.steps, loss)
}

// done clears the bar's line.
func (p *progressBar) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
