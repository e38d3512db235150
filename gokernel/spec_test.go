package gokernel

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestParseSpecKerasFiles(t *testing.T) {
	// Keras names a default RMSprop "rm_sprop" and AdamW "adam_w".
	tests := []struct {
		file          string
		in, out       int
		loss          string
		metrics       []string
		weightShapes  [][]int
		firstWeight   string
		optimizerName string
	}{
		{"mnist_mlp.json", 784, 10, "categorical_crossentropy", []string{"accuracy"}, [][]int{{784, 128}, {128}, {128, 128}, {128}, {128, 10}, {10}}, "dense/kernel", "adam"},
		{"mnist_mlp_to_json.json", 784, 10, "categorical_crossentropy", []string{"accuracy"}, [][]int{{784, 128}, {128}, {128, 128}, {128}, {128, 10}, {10}}, "dense/kernel", "adam"},
		{"functional.json", 784, 10, "sparse_categorical_crossentropy", []string{"accuracy"}, [][]int{{784, 64}, {64}, {64, 10}, {10}}, "dense_3/kernel", "sgd"},
		{"regression.json", 13, 1, "huber", []string{"mae", "mse"}, [][]int{{13, 32}, {32}, {32, 16}, {16}, {16, 1}, {1}}, "dense_5/kernel", "rm_sprop"},
		{"binary.json", 20, 1, "binary_crossentropy", []string{"accuracy"}, [][]int{{20, 16}, {16}, {16, 8}, {8}, {8, 1}}, "dense_8/kernel", "adagrad"},
		{"binary_logits.json", 20, 1, "binary_crossentropy", []string{"binary_accuracy"}, [][]int{{20, 1}, {1}}, "dense_11/kernel", "adam_w"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile("testdata/spec/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			m := mustModel(t, data)
			s := m.Spec()
			if s.InputDim() != tt.in || s.OutputDim() != tt.out {
				t.Errorf("dims: got %d→%d; want %d→%d", s.InputDim(), s.OutputDim(), tt.in, tt.out)
			}
			if s.Loss() != tt.loss || !reflect.DeepEqual(s.Metrics(), tt.metrics) {
				t.Errorf("compile: got %s %v; want %s %v", s.Loss(), s.Metrics(), tt.loss, tt.metrics)
			}
			var shapes [][]int
			for _, w := range m.Weights() {
				shapes = append(shapes, w.Shape)
			}
			if !reflect.DeepEqual(shapes, tt.weightShapes) {
				t.Errorf("weight shapes: got %v; want %v", shapes, tt.weightShapes)
			}
			if got := m.Weights()[0].Name; got != tt.firstWeight {
				t.Errorf("first weight: got %q; want %q", got, tt.firstWeight)
			}
			if got := m.Optimizer().Name(); got != tt.optimizerName {
				t.Errorf("optimizer: got %q; want %q", got, tt.optimizerName)
			}
		})
	}
}

func TestSpecRoundTrip(t *testing.T) {
	for _, f := range []string{"mnist_mlp.json", "mnist_mlp_to_json.json", "functional.json", "regression.json"} {
		data, err := os.ReadFile("testdata/spec/" + f)
		if err != nil {
			t.Fatal(err)
		}
		s, err := ParseSpec(data)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		s2, err := ParseSpec(out)
		if err != nil {
			t.Fatalf("%s: reparse: %v", f, err)
		}
		if !reflect.DeepEqual(s, s2) {
			t.Errorf("%s: the spec changed in a round trip", f)
		}
		out2, _ := s2.MarshalJSON()
		if !bytes.Equal(out, out2) {
			t.Errorf("%s: MarshalJSON is not stable:\n%s\n%s", f, out, out2)
		}
	}
	// A plain to_json without compile config stays plain.
	plain := seqJSON(3, "", "", dense("d", 2, "relu", ""))
	s, err := ParseSpec(plain)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := s.MarshalJSON()
	if bytes.Contains(out, []byte(`"compile"`)) || s.HasCompile() {
		t.Errorf("plain spec: got %s; want no compile", out)
	}
	s2, err := s.WithCompile([]byte(`"sgd"`), "mse", []string{"mae"})
	if err != nil {
		t.Fatal(err)
	}
	if s2.Loss() != "mean_squared_error" || s2.Metrics()[0] != "mae" {
		t.Errorf("WithCompile: got %s %v", s2.Loss(), s2.Metrics())
	}
}

func TestParseSpecErrors(t *testing.T) {
	mnist, err := os.ReadFile("testdata/spec/mnist_mlp.json")
	if err != nil {
		t.Fatal(err)
	}
	functional, err := os.ReadFile("testdata/spec/functional.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want []string // all must appear in the error
	}{
		{"not json", []byte("{"), []string{"not a JSON object"}},
		{"unknown layer", seqJSON(3, "", "", `{"class_name":"Conv2D","config":{"name":"conv"}}`), []string{"layer 1", `"conv"`, "Conv2D"}},
		{"unknown activation", seqJSON(3, "", "", dense("d", 2, "sparsemax", "")), []string{"layer 1", `"d"`, `"sparsemax"`}},
		{"float16 dtype", seqJSON(3, "", "", dense("d", 2, "relu", `,"dtype":"float16"`)), []string{"layer 1", "float16"}},
		{"mixed policy", bytes.Replace(mnist, []byte(`"name": "float32"`), []byte(`"name": "mixed_float16"`), 1), []string{"mixed_float16"}},
		{"constraint", seqJSON(3, "", "", dense("d", 2, "relu", `,"kernel_constraint":{"class_name":"MaxNorm","config":{}}`)), []string{"layer 1", "kernel_constraint"}},
		{"activity regularizer", seqJSON(3, "", "", dense("d", 2, "relu", `,"activity_regularizer":"l2"`)), []string{"activity_regularizer"}},
		{"unknown key", seqJSON(3, "", "", dense("d", 2, "relu", `,"frobnicate":1`)), []string{"layer 1", "frobnicate"}},
		{"trainable not a bool", seqJSON(3, "", "", dense("d", 2, "relu", `,"trainable":"no"`)), []string{"layer 1", "trainable"}},
		{"initializer", seqJSON(3, "", "", dense("d", 2, "relu", `,"kernel_initializer":{"class_name":"Identity","config":{}}`)), []string{"layer 1", "identity"}},
		{"regularizer", seqJSON(3, "", "", dense("d", 2, "relu", `,"kernel_regularizer":{"class_name":"OrthogonalRegularizer","config":{}}`)), []string{"OrthogonalRegularizer"}},
		{"noise shape rank", seqJSON(3, "", "", `{"class_name":"Dropout","config":{"name":"dr","rate":0.5,"noise_shape":[null,1,1]}}`), []string{"dr", "noise_shape", "rank 3"}},
		{"noise shape dims", seqJSON(3, "", "", `{"class_name":"Dropout","config":{"name":"dr","rate":0.5,"noise_shape":[null,2]}}`), []string{"dr", "noise_shape", "broadcast"}},
		{"noise shape batch", seqJSON(3, "", "", `{"class_name":"Dropout","config":{"name":"dr","rate":0.5,"noise_shape":[4,3]}}`), []string{"dr", "batch axis"}},
		{"dropout rate", seqJSON(3, "", "", `{"class_name":"Dropout","config":{"name":"dr","rate":1}}`), []string{"dr", "rate"}},
		{"dense on a scalar", []byte(`{"class_name":"Sequential","config":{"name":"s","layers":[{"class_name":"InputLayer","config":{"batch_shape":[null],"name":"i"}},` + dense("d", 2, "relu", "") + `]}}`), []string{"batch_shape"}},
		{"merge shapes", []byte(`{"class_name":"Functional","config":{"name":"f","layers":[
			{"class_name":"InputLayer","name":"a","config":{"batch_shape":[null,3],"name":"a"},"inbound_nodes":[]},
			{"class_name":"InputLayer","name":"b","config":{"batch_shape":[null,4],"name":"b"},"inbound_nodes":[]},
			{"class_name":"Add","name":"sum","config":{"name":"sum"},"inbound_nodes":[{"args":[[` + kt("a") + `,` + kt("b") + `]],"kwargs":{}}]}],
			"input_layers":[["a",0,0],["b",0,0]],"output_layers":[["sum",0,0]]}}`), []string{"layer 2", `"sum"`, "(None, 4)", "(None, 3)", "broadcasting"}},
		{"loss", seqJSON(3, `"dice"`, "", dense("d", 2, "relu", "")), []string{"loss", "dice"}},
		{"metric", seqJSON(3, `"mse"`, `["mean_io_u"]`, dense("d", 2, "relu", "")), []string{"metric", "mean_io_u"}},
		{"label smoothing", seqJSON(3, `{"class_name":"SparseCategoricalCrossentropy","config":{"label_smoothing":0.1}}`, "", dense("d", 2, "relu", "")), []string{"label_smoothing"}},
		{"loss weights", bytes.Replace(mnist, []byte(`"loss_weights": null`), []byte(`"loss_weights": [1, 2]`), 1), []string{"loss_weights", "2 entries", "1 outputs"}},
		{"model class", []byte(`{"class_name":"MyModel","config":{}}`), []string{"MyModel"}},
		{"dangling input", regexp.MustCompile(`"keras_history": \[\s*"dropout_2"`).ReplaceAll(functional, []byte(`"keras_history": ["nowhere"`)), []string{`"nowhere"`, "not the output of any layer call"}},
		{"call kwargs", bytes.Replace(functional, []byte(`"training": false`), []byte(`"mask": [1]`), 1), []string{"mask"}},
		{"call kwarg", bytes.Replace(functional, []byte(`"training": false`), []byte(`"scale": 2`), 1), []string{"scale"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec(tt.data)
			if err == nil {
				t.Fatalf("got no error; want one mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q; want it to mention %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "gokernel: ") {
				t.Errorf("got error %q; want the package prefix", err)
			}
		})
	}
}

// kt is a Keras tensor argument: output 0 of call 0 of layer name.
func kt(name string) string {
	return `{"class_name":"__keras_tensor__","config":{"dtype":"float32","keras_history":["` + name + `",0,0]}}`
}

func TestNewModelErrors(t *testing.T) {
	if _, err := NewModel(nil); err == nil {
		t.Error("NewModel(nil): got no error")
	}
	s, err := ParseSpec(seqJSON(3, `"mse"`, `["sparse_categorical_accuracy"]`, dense("d", 2, "relu", "")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewModel(s); err == nil || !strings.Contains(err.Error(), "sparse_categorical_accuracy") {
		t.Errorf("got %v; want an error naming sparse_categorical_accuracy", err)
	}
}

// TestSequentialWithoutInputLayer: Keras records the input shape of a
// Sequential built without keras.Input in build_input_shape.
func TestSequentialWithoutInputLayer(t *testing.T) {
	s, err := ParseSpec([]byte(`{"class_name":"Sequential","config":{"name":"s","build_input_shape":[null,7],"layers":[` + dense("d", 2, "relu", "") + `]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.InputDim() != 7 || s.OutputDim() != 2 {
		t.Errorf("dims: got %d→%d; want 7→2", s.InputDim(), s.OutputDim())
	}
	_, err = ParseSpec([]byte(`{"class_name":"Sequential","config":{"name":"s","layers":[` + dense("d", 2, "relu", "") + `]}}`))
	if err == nil || !strings.Contains(err.Error(), "input shape is unknown") {
		t.Errorf("no input shape: got %v; want an error saying so", err)
	}
}
