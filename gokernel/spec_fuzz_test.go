package gokernel

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseSpec: whatever the JSON, ParseSpec returns a spec or an error,
// and a spec small enough to build runs a forward and a backward pass on
// one row without panicking. Seeded with the spec files and every Keras
// fixture's model.
func FuzzParseSpec(f *testing.F) {
	files, _ := filepath.Glob("testdata/spec/*.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	fixtures, _ := filepath.Glob("testdata/keras/layers*.json")
	for _, path := range append(fixtures, "testdata/keras/graphs.json") {
		file := filepath.Base(path)
		var fix struct {
			Cases []layerFixture `json:"cases"`
		}
		readKerasFixture(f, file, &fix)
		for _, c := range fix.Cases {
			f.Add([]byte(c.Spec))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(data)
		if err != nil {
			return
		}
		if _, err := json.Marshal(s); err != nil {
			t.Fatalf("MarshalJSON: %v", err)
		}
		values := 0
		for _, ti := range s.graph.tensors {
			values += prod(ti.shape)
		}
		for _, e := range s.graph.layers {
			for _, w := range e.weights {
				values += prod(w.shape)
			}
		}
		if values > 1<<20 || bigWindow(s) {
			return // too big to build in a fuzz iteration
		}
		m, err := NewModel(s, WithThreads(1), withInputGrads())
		if err != nil {
			return
		}
		var xs, dys [][]float32
		for _, in := range m.g.inputs {
			xs = append(xs, make([]float32, prod(m.g.tensors[in].shape)))
		}
		m.run(xs, 1, true)
		for _, o := range m.g.outputs {
			dys = append(dys, make([]float32, prod(m.g.tensors[o].shape)))
		}
		m.backpropFrom(dys, 1)
	})
}

// bigWindow reports whether a layer slides a window of more than 64 taps
// (legal, but slow to run in a fuzz iteration).
func bigWindow(s *Spec) bool {
	for _, e := range s.graph.layers {
		var a windowArgs
		switch l := e.layer.(type) {
		case *conv:
			a = l.win
		case *convTranspose:
			a = l.win
		case *depthwiseConv:
			a = l.win
		case *separableConv:
			a = l.win
		case *pool:
			a = l.win
		default:
			continue
		}
		if prod(a.size) > 64 || prod(a.dilation) > 64 || prod(a.strides) > 64 {
			return true
		}
	}
	return false
}
