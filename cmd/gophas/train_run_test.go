package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/internal/fixture"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// blobsCSV is fixture.Blobs as a CSV: two classes in 2 dimensions, columns
// a, b, and the class y.
func blobsCSV(rows int, seed uint64) string {
	x, labels := fixture.Blobs(rows, 2, 2, seed)
	var b strings.Builder
	b.WriteString("a,b,y\n")
	for i := range rows {
		fmt.Fprintf(&b, "%.4f,%.4f,%d\n", x[2*i], x[2*i+1], int(labels[i]))
	}
	return b.String()
}

var epochLine = regexp.MustCompile(`^epoch (\d+)/(\d+) - \d+\.\ds - loss: (\d+\.\d{4})( - [a-z_]+: \d+\.\d{4})*$`)

// epochLosses checks every stdout line but the last n against the epoch
// line format and returns their losses.
func epochLosses(t *testing.T, out string, tail int) []float64 {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var losses []float64
	for _, l := range lines[:len(lines)-tail] {
		m := epochLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("stdout line %q does not match %v", l, epochLine)
		}
		v, _ := strconv.ParseFloat(m[3], 64)
		losses = append(losses, v)
	}
	return losses
}

func TestTrainCSV(t *testing.T) {
	spec := writeFile(t, "model.json", fixture.BinarySpec)
	data := writeFile(t, "train.csv", blobsCSV(200, 1))
	test := writeFile(t, "test.csv", blobsCSV(60, 2))
	out := filepath.Join(t.TempDir(), "model")
	var stdout, stderr bytes.Buffer
	cfg := trainConfig{Model: spec, Data: data, Test: test, Epochs: 5, BatchSize: 16, ValidationSplit: 0.2, Seed: 3, Out: out}
	if err := runTrain(context.Background(), cfg, &stdout, &stderr); err != nil {
		t.Fatalf("Train: %v\nstderr: %s", err, stderr.String())
	}
	losses := epochLosses(t, stdout.String(), 1)
	if len(losses) != 5 || !(losses[4] < losses[0]) {
		t.Errorf("got epoch losses %v; want 5, decreasing", losses)
	}
	if !strings.Contains(stdout.String(), " - val_loss: ") || !strings.Contains(stdout.String(), " - val_accuracy: ") {
		t.Errorf("got stdout %q; want val_loss and val_accuracy", stdout.String())
	}
	last := regexp.MustCompile(`\ntest accuracy: (0\.\d{4}|1\.0000)\n$`).FindStringSubmatch(stdout.String())
	if last == nil {
		t.Fatalf("got stdout %q; want it to end with a test accuracy line", stdout.String())
	}
	if acc, _ := strconv.ParseFloat(last[1], 64); acc < 0.9 {
		t.Errorf("got test accuracy %v; want >= 0.9 on separable blobs", acc)
	}
	if got := stderr.String(); !strings.Contains(got, "epoch 5/5: 10 steps in ") || strings.Contains(got, "\r") {
		t.Errorf("got stderr %q; want plain epoch lines (not a terminal)", got)
	}
	for _, f := range []string{"model.json", "model.safetensors"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("saved model: %v", err)
		}
	}
	// The saved directory loads and trains further.
	stdout.Reset()
	cfg = trainConfig{Model: out, Data: data, Test: test, Epochs: 1, BatchSize: 16}
	if err := runTrain(context.Background(), cfg, &stdout, &stderr); err != nil {
		t.Fatalf("Train from the saved directory: %v", err)
	}
	if again := epochLosses(t, stdout.String(), 1); again[0] > losses[0] {
		t.Errorf("got loss %v after reloading; want below the first epoch's %v", again[0], losses[0])
	}
}

func TestTrainCSVNoAccuracy(t *testing.T) {
	var b strings.Builder
	b.WriteString("target,u,v\n")
	for i := range 64 {
		u, v := float64(i%8)/4-1, float64(i/8)/4-1
		fmt.Fprintf(&b, "%.3f,%.3f,%.3f\n", 2*u-v+0.5, u, v)
	}
	spec := writeFile(t, "model.json", fixture.RegressionSpec)
	data := writeFile(t, "train.CSV", b.String())
	var stdout, stderr bytes.Buffer
	cfg := trainConfig{Model: spec, Data: data, Test: data, Label: "target", Epochs: 8, BatchSize: 8}
	if err := runTrain(context.Background(), cfg, &stdout, &stderr); err != nil {
		t.Fatalf("Train: %v", err)
	}
	losses := epochLosses(t, stdout.String(), 1)
	if !(losses[len(losses)-1] < losses[0]/2) {
		t.Errorf("got epoch losses %v; want the last below half the first", losses)
	}
	if !regexp.MustCompile(`\ntest loss: \d+\.\d{4} - mae: \d+\.\d{4}\n$`).MatchString(stdout.String()) {
		t.Errorf("got stdout %q; want a final test loss line with mae", stdout.String())
	}
}

// writeArrow writes rows of 4 features (as one fixed-size list column
// "features", or as columns f0..f3) and an int32 class "label" (0..2) to an
// Arrow IPC file or stream.
func writeArrow(t *testing.T, rows int, listColumn, stream bool) string {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var fields []arrow.Field
	if listColumn {
		fields = append(fields, arrow.Field{Name: "features", Type: arrow.FixedSizeListOf(4, arrow.PrimitiveTypes.Float32)})
	} else {
		for j := range 4 {
			fields = append(fields, arrow.Field{Name: fmt.Sprintf("f%d", j), Type: arrow.PrimitiveTypes.Float64})
		}
	}
	fields = append(fields, arrow.Field{Name: "label", Type: arrow.PrimitiveTypes.Int32})
	schema := arrow.NewSchema(fields, nil)
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	r := rand.New(rand.NewPCG(7, 7))
	for i := range rows {
		c := i % 3
		var x [4]float32
		for j := range x {
			x[j] = float32(0.4 * r.NormFloat64())
		}
		x[c] += 1.5
		if listColumn {
			lb := b.Field(0).(*array.FixedSizeListBuilder)
			lb.Append(true)
			lb.ValueBuilder().(*array.Float32Builder).AppendValues(x[:], nil)
		} else {
			for j := range x {
				b.Field(j).(*array.Float64Builder).Append(float64(x[j]))
			}
		}
		b.Field(len(fields) - 1).(*array.Int32Builder).Append(int32(c))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	p := filepath.Join(t.TempDir(), "data.arrow")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if stream {
		w := ipc.NewWriter(f, ipc.WithSchema(schema), ipc.WithAllocator(mem))
		if err := w.Write(rec); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return p
	}
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTrainArrow(t *testing.T) {
	spec := writeFile(t, "model.json", fixture.ClassifierSpec)
	for _, tc := range []struct {
		name             string
		listColumn, strm bool
		features         string
	}{
		{"file list column", true, false, ""},
		{"stream numeric columns", false, true, "f0,f1,f2,f3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := writeArrow(t, 150, tc.listColumn, tc.strm)
			var stdout, stderr bytes.Buffer
			cfg := trainConfig{Model: spec, Data: data, Test: data, Features: tc.features, Label: "label", Epochs: 4, BatchSize: 10, Seed: 1}
			if err := runTrain(context.Background(), cfg, &stdout, &stderr); err != nil {
				t.Fatalf("Train: %v", err)
			}
			losses := epochLosses(t, stdout.String(), 1)
			if !(losses[3] < losses[0]) {
				t.Errorf("got epoch losses %v; want decreasing", losses)
			}
			if !strings.Contains(stdout.String(), "\ntest accuracy: ") {
				t.Errorf("got stdout %q; want a test accuracy line", stdout.String())
			}
		})
	}
}

func TestTrainErrors(t *testing.T) {
	spec := writeFile(t, "model.json", fixture.BinarySpec)
	good := writeFile(t, "good.csv", blobsCSV(20, 1))
	for _, tc := range []struct {
		name string
		cfg  trainConfig
		want string
	}{
		{"no model", trainConfig{Data: good}, "no model given"},
		{"no data", trainConfig{Model: spec}, "no training data given"},
		{"negative epochs", trainConfig{Model: spec, Data: good, Epochs: -1}, "epochs -1 must not be negative"},
		{"negative batch", trainConfig{Model: spec, Data: good, BatchSize: -2}, "batch size -2"},
		{"split", trainConfig{Model: spec, Data: good, ValidationSplit: 1}, "validation split 1 must be in [0, 1)"},
		{"missing model", trainConfig{Model: spec + ".nope", Data: good}, "no such file"},
		{"missing data", trainConfig{Model: spec, Data: good + ".nope"}, "no such file"},
		{"bad number", trainConfig{Model: spec, Data: writeFile(t, "d.csv", "a,b,y\n1,2,0\n3,x,1\n")}, `line 3, column "b": "x" is not a number`},
		{"bad label", trainConfig{Model: spec, Data: writeFile(t, "d.csv", "a,b,y\n1,2,0\n3,4,\n")}, `line 3, column "y": "" is not a number`},
		{"ragged", trainConfig{Model: spec, Data: writeFile(t, "d.csv", "a,b,y\n1,2,0\n3,4\n")}, "record on line 3: wrong number of fields"},
		{"empty", trainConfig{Model: spec, Data: writeFile(t, "d.csv", "")}, "empty CSV"},
		{"header only", trainConfig{Model: spec, Data: writeFile(t, "d.csv", "a,b,y\n")}, "has no rows"},
		{"no label column", trainConfig{Model: spec, Data: good, Label: "z"}, `no column "z" (columns: a, b, y)`},
		{"label is feature", trainConfig{Model: spec, Data: good, Features: "a,y", Label: "y"}, `column "y" is both a feature and the label`},
		{"feature width", trainConfig{Model: spec, Data: good, Features: "a"}, "1 features per row but the model takes 2"},
		{"not arrow", trainConfig{Model: spec, Data: writeFile(t, "d.arrow", "hello")}, "not an Arrow IPC file"},
		{"bad spec", trainConfig{Model: writeFile(t, "m.json", `{"class_name":"Nope"}`), Data: good}, `m.json: model: class_name "Nope" is not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runTrain(context.Background(), tc.cfg, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "train: ") {
				t.Errorf("got error %v; want one starting \"train: \" and containing %q", err, tc.want)
			}
		})
	}
}

func TestTrainCanceled(t *testing.T) {
	spec := writeFile(t, "model.json", fixture.BinarySpec)
	data := writeFile(t, "train.csv", blobsCSV(40, 1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	err := runTrain(ctx, trainConfig{Model: spec, Data: data, Epochs: 3}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "epoch 1 step 1: context canceled") {
		t.Errorf("got error %v; want context canceled at epoch 1 step 1", err)
	}
}

// blobsFile writes fixture.Blobs as a CSV (columns a, b, c, d and the class
// y), each float32 value written so that it reads back exactly.
func blobsFile(t *testing.T, rows int, seed uint64) (path string, x, labels []float32) {
	t.Helper()
	x, labels = fixture.Blobs(rows, 4, 3, seed)
	var b strings.Builder
	b.WriteString("a,b,c,d,y\n")
	for r := range rows {
		for j := range 4 {
			b.WriteString(strconv.FormatFloat(float64(x[r*4+j]), 'g', -1, 32) + ",")
		}
		fmt.Fprintf(&b, "%d\n", int(labels[r]))
	}
	return writeFile(t, "blobs.csv", b.String()), x, labels
}

// TestTrainSameWeightsAsFit: the same seed gives the same weights, bit for
// bit, through `gophas train` and Model.Fit (one training loop, one shuffle,
// the same epoch streams, Dropout included). The one-worker Spark fit is
// compared with `gophas train` in the Scala suite (SparkModelSuite).
func TestTrainSameWeightsAsFit(t *testing.T) {
	data, x, labels := blobsFile(t, 203, 4)
	spec := writeFile(t, "spec.json", fixture.DropoutSpec)
	out := filepath.Join(t.TempDir(), "trained")
	var stdout, stderr bytes.Buffer
	cfg := trainConfig{Model: spec, Data: data, Epochs: 3, BatchSize: 16, Seed: 5, Out: out}
	if err := runTrain(context.Background(), cfg, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	trained, err := gokernel.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gokernel.ParseSpec([]byte(fixture.DropoutSpec))
	if err != nil {
		t.Fatal(err)
	}
	m, err := gokernel.NewModel(s, gokernel.WithSeed(5))
	if err != nil {
		t.Fatal(err)
	}
	rows := gokernel.NewBatch(203, x, 4, fixture.OneHot(labels, 3), 3)
	if _, err := m.FitRows(rows, gokernel.FitOptions{Epochs: 3, BatchSize: 16, Shuffle: true, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	got, want := trained.Weights(), m.Weights()
	for i := range want {
		if !slices.Equal(got[i].Data, want[i].Data) {
			t.Errorf("%s: gophas train's weights differ from Model.Fit's with the same seed", want[i].Name)
		}
	}
	if other, _ := gokernel.NewModel(s, gokernel.WithSeed(5)); other != nil {
		if _, err := other.FitRows(rows, gokernel.FitOptions{Epochs: 3, BatchSize: 16, Shuffle: true, Seed: 6}); err != nil {
			t.Fatal(err)
		}
		if slices.Equal(other.Weights()[0].Data, want[0].Data) {
			t.Error("another fit seed gave the same weights; the comparison above proves nothing")
		}
	}
}
