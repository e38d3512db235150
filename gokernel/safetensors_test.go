package gokernel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func oddTensors() []NamedTensor {
	return []NamedTensor{
		// Out of name order, to show the order is kept.
		{Name: "z/kernel", Shape: []int{2, 3}, Data: []float32{1, -0, float32(math.Inf(1)), float32(math.Inf(-1)), math.SmallestNonzeroFloat32, math.MaxFloat32}},
		{Name: "a/bias", Shape: []int{3}, Data: []float32{math.Float32frombits(0x7fc00001), math.Float32frombits(0xffbfffff), 0.1}},
		{Name: "iteration", Shape: []int{}, Data: []float32{7}},
		{Name: "empty", Shape: []int{0, 4}, Data: []float32{}},
	}
}

func bits(ts []NamedTensor) [][]uint32 {
	var out [][]uint32
	for _, t := range ts {
		b := make([]uint32, len(t.Data))
		for i, v := range t.Data {
			b[i] = math.Float32bits(v)
		}
		out = append(out, b)
	}
	return out
}

func TestSafetensorsRoundTrip(t *testing.T) {
	in := oddTensors()
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, in); err != nil {
		t.Fatal(err)
	}
	if hl := binary.LittleEndian.Uint64(buf.Bytes()); hl%8 != 0 {
		t.Errorf("header length: got %d; want a multiple of 8", hl)
	}
	out, err := ReadSafetensors(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if out[i].Name != in[i].Name || !reflect.DeepEqual(out[i].Shape, in[i].Shape) {
			t.Errorf("tensor %d: got %q %v; want %q %v", i, out[i].Name, out[i].Shape, in[i].Name, in[i].Shape)
		}
	}
	if !reflect.DeepEqual(bits(out), bits(in)) {
		t.Errorf("bits: got %x; want %x", bits(out), bits(in))
	}
	// Without the order metadata the data order is used, which is the same.
	noMeta := stripMetadata(t, buf.Bytes())
	out, err = ReadSafetensors(bytes.NewReader(noMeta))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range out {
		names = append(names, o.Name)
	}
	// "empty" (0 bytes) shares its offset with nothing after it.
	if want := []string{"z/kernel", "a/bias", "iteration", "empty"}; !reflect.DeepEqual(names, want) {
		t.Errorf("order without metadata: got %v; want %v", names, want)
	}
}

// stripMetadata rewrites a file's header without __metadata__.
func stripMetadata(t *testing.T, file []byte) []byte {
	t.Helper()
	hl := binary.LittleEndian.Uint64(file)
	h := string(file[8 : 8+hl])
	i := strings.Index(h, `"__metadata__"`)
	j := strings.Index(h[i:], "}") + i + 1
	if h[j] == ',' {
		j++
	} else if h[i-1] == ',' {
		i--
	}
	nh := []byte(h[:i] + h[j:])
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(nh)))
	return append(append(out, nh...), file[8+hl:]...)
}

func header(h string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data...)
}

func TestReadSafetensorsMalformed(t *testing.T) {
	var good bytes.Buffer
	if err := WriteSafetensors(&good, oddTensors()); err != nil {
		t.Fatal(err)
	}
	g := good.Bytes()
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "header length"},
		{"huge header", binary.LittleEndian.AppendUint64(nil, 1<<40), "header length"},
		{"truncated header", g[:20], "header"},
		{"truncated data", g[:len(g)-3], "data is"},
		{"trailing data", append(append([]byte{}, g...), 0), "data is"},
		{"not json", header("{nope}  ", nil), "header"},
		{"gap", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "gap"},
		{"size", header(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), "do not hold"},
		{"negative shape", header(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)), "shape"},
		{"unknown field", header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`, make([]byte, 4)), "unknown field"},
		{"bad order", header(`{"__metadata__":{"gophas.order":"[\"b\"]"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)), "unknown or repeated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadSafetensors(bytes.NewReader(tt.file))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v; want ErrMalformed mentioning %q", err, tt.want)
			}
		})
	}
	_, err := ReadSafetensors(bytes.NewReader(header(`{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4))))
	if err == nil || !strings.Contains(err.Error(), `"w"`) || !strings.Contains(err.Error(), "F16") {
		t.Errorf("F16: got %v; want an error naming the tensor and dtype", err)
	}
}

func TestWriteSafetensorsErrors(t *testing.T) {
	tests := []struct {
		name string
		ts   []NamedTensor
	}{
		{"size", []NamedTensor{{Name: "a", Shape: []int{2}, Data: []float32{1}}}},
		{"duplicate", []NamedTensor{{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}}},
		{"metadata", []NamedTensor{{Name: "__metadata__", Shape: []int{1}, Data: []float32{1}}}},
	}
	for _, tt := range tests {
		if err := WriteSafetensors(&bytes.Buffer{}, tt.ts); err == nil {
			t.Errorf("%s: got no error", tt.name)
		}
	}
}

func FuzzReadSafetensors(f *testing.F) {
	var good bytes.Buffer
	if err := WriteSafetensors(&good, oddTensors()); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 4)))
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := ReadSafetensors(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, ts); err != nil {
			t.Fatalf("rewriting what was read: %v", err)
		}
		again, err := ReadSafetensors(&buf)
		if err != nil {
			t.Fatalf("reading what was rewritten: %v", err)
		}
		if !reflect.DeepEqual(bits(again), bits(ts)) {
			t.Fatal("the rewritten file reads differently")
		}
	})
}

func TestSaveLoadModel(t *testing.T) {
	data, err := os.ReadFile("testdata/spec/mnist_mlp.json")
	if err != nil {
		t.Fatal(err)
	}
	// A small trained model, with optimizer state, and the MNIST MLP as
	// Keras describes it, freshly initialized. from the same kind of spec keeps the test fast.
	m := mustModel(t, seqJSON(6, `"categorical_crossentropy"`, `["accuracy"]`, dense("h", 5, "relu", ""), dense("o", 3, "softmax", "")), WithSeed(4))
	x, y, _ := blobs(40, 8)
	x6 := make([]float32, 40*6)
	for r := 0; r < 40; r++ {
		copy(x6[r*6:], x[r*4:r*4+4])
	}
	if _, err := m.Fit(dense2(40, 6, x6), dense2(40, 3, y), FitOptions{Epochs: 1, BatchSize: 8}); err != nil {
		t.Fatal(err)
	}
	for _, mm := range []*Model{m, mustModel(t, data)} {
		dir := filepath.Join(t.TempDir(), "model")
		if err := SaveModel(dir, mm); err != nil {
			t.Fatal(err)
		}
		back, err := LoadModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(bits(back.Weights()), bits(mm.Weights())) || !reflect.DeepEqual(back.Weights()[0].Name, mm.Weights()[0].Name) {
			t.Error("weights changed in SaveModel/LoadModel")
		}
		if !reflect.DeepEqual(back.Spec(), mm.Spec()) {
			t.Error("spec changed in SaveModel/LoadModel")
		}
		if !reflect.DeepEqual(bits(back.Optimizer().State()), bits(mm.Optimizer().State())) {
			t.Error("optimizer state changed in SaveModel/LoadModel")
		}
	}
	if _, err := LoadModel(t.TempDir()); err == nil || !strings.Contains(err.Error(), "model.json") {
		t.Errorf("LoadModel of an empty directory: got %v; want an error naming model.json", err)
	}
}

// A model saved before it ever trained has an optimizer state of only its
// iteration count; loaded, it must still train (the slots build on the
// first step) and match a model that never went through the disk.
func TestSaveLoadUntrainedModelTrains(t *testing.T) {
	spec := bytes.Replace(seqJSON(4, `"categorical_crossentropy"`, `["accuracy"]`, dense("h", 5, "relu", ""), dense("o", 3, "softmax", "")),
		[]byte(`{"class_name":"SGD","config":{"learning_rate":0.1}}`), []byte(`"adam"`), 1)
	fresh := mustModel(t, spec, WithSeed(9))
	dir := filepath.Join(t.TempDir(), "model")
	if err := SaveModel(dir, fresh); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	x, y, _ := blobs(16, 8)
	for _, m := range []*Model{fresh, loaded} {
		if _, err := m.TrainOnBatch(dense2(16, 4, x), dense2(16, 3, y)); err != nil {
			t.Fatalf("TrainOnBatch after SaveModel/LoadModel of an untrained model: %v", err)
		}
	}
	if !reflect.DeepEqual(bits(loaded.Weights()), bits(fresh.Weights())) {
		t.Error("the loaded model took a different step than the fresh one")
	}
}
