package gokernel

import (
	"math/rand/v2"
	"testing"
)

// heldBytes is what the model's step buffers hold now, by their lengths.
func heldBytes(m *Model) int64 {
	var n int64
	for _, bufs := range [][][]float32{m.act, m.grad, m.temps} {
		for _, b := range bufs {
			n += 4 * int64(len(b))
		}
	}
	for _, b := range m.idBuf {
		n += 4 * int64(len(b))
	}
	for _, b := range m.maskVal {
		n += int64(len(b))
	}
	return n
}

// TestStepBytes: StepBytes is what a training step's buffers hold per row,
// for a graph with a shared layer, merges (gradient temporaries) and two
// outputs, and for a sequence model with integer ids and masks; the
// worker's batch-size bound rests on it.
func TestStepBytes(t *testing.T) {
	graph := funcJSON([]string{"x", "z"}, 6, []gl{
		{"Dense", "s", `,"units":6,"activation":"relu"`, [][]string{{"x"}, {"z"}}},
		{"Add", "sum", "", one("s", "s:1", "x")},
		{"Concatenate", "cat", "", one("sum", "s")},
		dl("o1", 3, "softmax", one("cat")...),
		dl("o2", 2, "linear", one("sum")...),
	}, []string{"o1", "o2"}, `{"optimizer":"adam","loss":["categorical_crossentropy","mse"]}`)
	m := mustModel(t, graph, WithThreads(1))
	rng := rand.New(rand.NewPCG(1, 1))
	const rows = 16
	m.stepAll([][]float32{randFloats(rng, rows*6, -1, 1), randFloats(rng, rows*6, -1, 1)},
		[][]float32{randFloats(rng, rows*3, 0, 1), randFloats(rng, rows*2, -1, 1)}, rows)
	if len(m.temps) == 0 {
		t.Fatal("the graph has no gradient temporaries: the test would not cover them")
	}
	if got, want := m.StepBytes()*rows, heldBytes(m); got != want {
		t.Errorf("graph: StepBytes·%d = %d; the step holds %d bytes", rows, got, want)
	}
	// At least the values and the gradients of s, s:1, sum, cat, o1 and o2:
	// 6+6+6+12+3+2 floats each way (every one is downstream of a weight).
	if got := m.StepBytes(); got < 4*(6+6+6+12+3+2)*2 {
		t.Errorf("graph: StepBytes %d is below its values and gradients, %d", got, 4*(6+6+6+12+3+2)*2)
	}

	seq := kjson(tokens5, []kl{emb(true),
		{class: "LSTM", name: "l", config: `,"units":4,"return_sequences":true`, in: []string{"emb"}},
		{class: "Dense", name: "out", config: `,"units":2,"activation":"softmax"`, in: []string{"l"}},
	}, []string{"out"}, `{"optimizer":"adam","loss":"sparse_categorical_crossentropy"}`)
	m = mustModel(t, seq, WithThreads(1))
	ids := [][]int32{append(append([]int32(nil), tokenIDs...), tokenIDs...)}
	m.stepIDs([][]float32{nil}, ids, [][]float32{make([]float32, 4*5)}, 4)
	if len(m.maskVal) == 0 || len(m.idBuf) == 0 {
		t.Fatal("the sequence model has no masks or ids: the test would not cover them")
	}
	if got, want := m.StepBytes()*4, heldBytes(m); got != want {
		t.Errorf("sequence: StepBytes·4 = %d; the step holds %d bytes", got, want)
	}
}
