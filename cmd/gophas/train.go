package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/mnist"
)

// MNIST is the trainConfig.Data and trainConfig.Test value that names the
// MNIST digits (the GoMNIST IDX files): 60,000 training and 10,000 test rows.
const MNIST = "mnist"

// trainConfig is what `gophas train` trains on. The zero value of each
// optional field is its documented default.
type trainConfig struct {
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

// runTrain trains a model as trainConfig describes, through the kernel's
// training loop (gokernel.Model.FitRows): per epoch a progress bar (a
// terminal) or a plain line on stderr, and one line of loss and metrics on
// stdout ("epoch 1/5 - 2.1s - loss: 0.3102 - accuracy: 0.9101"); with test
// data, a final line "test accuracy: 0.9712" (or "test loss: ..." and the
// metrics when there is no accuracy metric). The model is saved to c.Out at
// the end. Train stops between two steps when ctx is done.
func runTrain(ctx context.Context, c trainConfig, stdout, stderr io.Writer) error {
	if err := c.check(); err != nil {
		return err
	}
	m, err := gokernel.Open(c.Model, gokernel.WithSeed(c.Seed), gokernel.WithThreads(c.Threads))
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	spec := m.Spec()
	if spec.Loss() == "" {
		return fmt.Errorf("train: model %s has no compile config with a loss", c.Model)
	}
	train, test, err := loadTrainData(c, spec)
	if err != nil {
		return err
	}
	progress := c.Progress > 0 || c.Progress == 0 && isTerminal(stderr)
	nTrain := train.Rows
	if c.ValidationSplit > 0 {
		if tr, _, err := gokernel.SplitValidation(train, c.ValidationSplit); err == nil {
			nTrain = tr.Rows
		}
	}
	steps := (nTrain + c.BatchSize - 1) / c.BatchSize
	bar := &progressBar{ctx: ctx, w: stderr, on: progress, epochs: c.Epochs, steps: steps}
	keys := spec.EvaluateKeys()
	start := time.Now()
	_, err = m.FitRows(train, gokernel.FitOptions{Epochs: c.Epochs, BatchSize: c.BatchSize, Shuffle: true,
		ValidationSplit: c.ValidationSplit, Seed: c.Seed, Hooks: bar,
		Callback: func(l gokernel.EpochLogs) {
			bar.done()
			epoch, took := l.Epoch+1, time.Since(start)
			line := fmt.Sprintf("epoch %d/%d - %.1fs", epoch, c.Epochs, took.Seconds())
			for _, key := range keys {
				line += fmt.Sprintf(" - %s: %.4f", key, l.Logs[key])
			}
			if c.ValidationSplit > 0 {
				for _, key := range keys {
					line += fmt.Sprintf(" - val_%s: %.4f", key, l.Logs["val_"+key])
				}
			}
			fmt.Fprintln(stdout, line)
			if !progress {
				fmt.Fprintf(stderr, "epoch %d/%d: %d steps in %.2fs\n", epoch, c.Epochs, steps, took.Seconds())
			}
			start = time.Now()
		}})
	if err != nil {
		bar.done()
		return fmt.Errorf("train: %w", err)
	}
	if test != nil {
		sums := gokernel.Sums{}
		if err := m.EvaluateBatch(test, &sums); err != nil {
			return fmt.Errorf("train: evaluating the test data: %w", err)
		}
		fmt.Fprintln(stdout, testLine(m.Result(sums), spec.Metrics()))
	}
	if c.Out != "" {
		if err := gokernel.SaveModel(c.Out, m); err != nil {
			return fmt.Errorf("train: saving the model: %w", err)
		}
		fmt.Fprintf(stderr, "model saved to %s\n", c.Out)
	}
	return nil
}

func (c *trainConfig) check() error {
	switch {
	case c.Model == "":
		return errors.New("train: no model given (--model SPEC_OR_DIR)")
	case c.Data == "":
		return errors.New("train: no training data given (--data mnist|FILE)")
	case c.Epochs < 0:
		return fmt.Errorf("train: epochs %d must not be negative", c.Epochs)
	case c.BatchSize < 0:
		return fmt.Errorf("train: batch size %d must not be negative", c.BatchSize)
	case !(c.ValidationSplit >= 0 && c.ValidationSplit < 1):
		return fmt.Errorf("train: validation split %v must be in [0, 1)", c.ValidationSplit)
	}
	if c.Epochs == 0 {
		c.Epochs = 1
	}
	if c.BatchSize == 0 {
		c.BatchSize = 32
	}
	return nil
}

// loadTrainData reads the training and (optional) test data and shapes the
// labels for the loss with the kernel's one label rule (Spec.Labels).
func loadTrainData(c trainConfig, spec *gokernel.Spec) (train, test *gokernel.Batch, err error) {
	var trainSet, testSet *dataset
	if c.Data == MNIST || c.Test == MNIST {
		dir := c.MNISTDir
		if dir == "" {
			if dir, err = mnist.DefaultDir(); err != nil {
				return nil, nil, fmt.Errorf("train: %w", err)
			}
		}
		tr, te, err := mnist.Load(dir)
		if err != nil {
			return nil, nil, fmt.Errorf("train: %w", err)
		}
		if c.Data == MNIST {
			trainSet = mnistSet(tr)
		}
		if c.Test == MNIST {
			testSet = mnistSet(te)
		}
	}
	if trainSet == nil {
		if trainSet, err = readTable(c.Data, c.Features, c.Label); err != nil {
			return nil, nil, err
		}
	}
	if testSet == nil && c.Test != "" {
		if testSet, err = readTable(c.Test, c.Features, c.Label); err != nil {
			return nil, nil, err
		}
	}
	if train, err = trainSet.batch(c.Data, spec); err != nil {
		return nil, nil, err
	}
	if testSet != nil {
		if test, err = testSet.batch(c.Test, spec); err != nil {
			return nil, nil, err
		}
	}
	return train, test, nil
}

func mnistSet(s *mnist.Set) *dataset {
	return &dataset{rows: s.N, x: s.Images, xWidth: mnist.Width, y: s.LabelsFloat(), yWidth: 1}
}

// batch checks d against spec and returns its rows, the labels shaped for
// the loss.
func (d *dataset) batch(name string, spec *gokernel.Spec) (*gokernel.Batch, error) {
	if d.rows == 0 {
		return nil, fmt.Errorf("train: %s has no rows", name)
	}
	if d.xWidth != spec.InputDim() {
		return nil, fmt.Errorf("train: %s has %d features per row but the model takes %d", name, d.xWidth, spec.InputDim())
	}
	l, err := spec.Labels(d.yWidth)
	if err != nil {
		return nil, fmt.Errorf("train: %s: %w", name, err)
	}
	y, err := l.Shape(nil, d.y, d.rows, 0)
	if err != nil {
		return nil, fmt.Errorf("train: %s: %w", name, err)
	}
	return gokernel.NewBatch(d.rows, d.x, d.xWidth, y, l.Width()), nil
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
// terminal line, at most every 100 ms; off, it draws nothing. As the loop's
// Hooks it also stops the fit between two steps when ctx is done.
type progressBar struct {
	ctx           context.Context
	w             io.Writer
	on            bool
	epoch, epochs int
	steps         int
	last          time.Time
}

const barWidth = 30

// BeforeStep stops the fit when ctx is done and counts the epochs.
func (p *progressBar) BeforeStep(step, rows int) (bool, error) {
	if step == 0 {
		p.epoch++
	}
	if err := p.ctx.Err(); err != nil {
		p.done()
		return false, fmt.Errorf("epoch %d step %d: %w", p.epoch, step+1, err)
	}
	return true, nil
}

// AfterStep draws the bar with the running mean loss, as Keras shows it.
func (p *progressBar) AfterStep(step, rows int, sums *gokernel.Sums) error {
	s := step + 1
	if !p.on || (s < p.steps && time.Since(p.last) < 100*time.Millisecond) {
		return nil
	}
	p.last = time.Now()
	n := barWidth * s / p.steps
	bar := strings.Repeat("=", n)
	if n < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-n-1)
	}
	fmt.Fprintf(p.w, "\repoch %d/%d [%s] %d/%d loss: %.4f", p.epoch, p.epochs, bar, s, p.steps, sums.Sums["loss"]/float64(sums.Count))
	return nil
}

// done clears the bar's line.
func (p *progressBar) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
