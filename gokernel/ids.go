package gokernel

import (
	"fmt"
	"math"
)

// Integer inputs. A model input whose Keras dtype is int32 or int64
// (keras.Input((T,), dtype="int32")) holds token ids. The kernel carries
// them as int32 values, row-major like every batch, from the caller to the
// layers that read ids (Embedding): no round trip through float32, whose
// 24-bit mantissa cannot hold every id of a large vocabulary. A layer that
// reads floats and is called on an integer input gets the ids converted to
// float32, as Keras' operations promote them.
//
// A float32 batch may also feed an integer input (the tensor methods, a
// Keras fixture): its values are truncated to ids as Keras' cast does, and
// an Embedding called on a float input reads it the same way.
//
// Every id an Embedding reads straight from a model input must lie in
// [0, input_dim): checkIDs reports the first that does not, naming the
// input, the row, the position and the value.

// idTaker is implemented by the layer kinds that read ids (Embedding):
// takesIDs reports whether input i is read as ids (c.ids[i]: int32 ids
// when the input is an integer tensor, else c.x[i] truncated) and the
// number n of ids it takes: an id outside [0, n) is an error of the batch.
type idTaker interface {
	takesIDs(i int) (n int, ok bool)
}

// idBound is the smallest number of ids any Embedding reading model input
// i directly takes, and the layer that takes it.
type idBound struct {
	n     int
	layer *layerEntry
}

// idBounds returns, per model input, the bound its ids must respect (n 0:
// no Embedding reads it directly).
func (g *graph) idBounds() []idBound {
	out := make([]idBound, len(g.inputs))
	for i, t := range g.inputs {
		for _, n := range g.nodes {
			it, ok := n.fn.(idTaker)
			if !ok {
				continue
			}
			for j, in := range n.in {
				if in != t {
					continue
				}
				if b, ok := it.takesIDs(j); ok && (out[i].n == 0 || b < out[i].n) {
					out[i] = idBound{b, n.layer}
				}
			}
		}
	}
	return out
}

// checkIDs checks the ids of model input i (rows rows of ids, or of
// floats when ids is nil) against the Embeddings that read it.
func (m *Model) checkIDs(i int, ids []int32, xs []float32, rows int) error {
	b := m.bounds[i]
	if b.n == 0 {
		return nil
	}
	w := prod(m.g.tensors[m.g.inputs[i]].shape)
	bad := func(k int, v any) error {
		return fmt.Errorf("gokernel: input %q row %d position %d: id %v is outside [0, %d), the input_dim of %s", m.g.inputNames[i], k/w, k%w, v, b.n, b.layer.where())
	}
	if ids != nil {
		for k, v := range ids[:rows*w] {
			if v < 0 || int(v) >= b.n {
				return bad(k, v)
			}
		}
		return nil
	}
	for k, v := range xs[:rows*w] {
		if !(v > -1 && float64(v) < float64(b.n)) || math.IsNaN(float64(v)) {
			return bad(k, v)
		}
	}
	return nil
}

// truncIDs sets ids to the values of xs truncated toward zero, as Keras'
// cast to int32 does.
func truncIDs(ids []int32, xs []float32) {
	for k, v := range xs[:len(ids)] {
		switch {
		case v != v:
			ids[k] = 0
		case v >= math.MaxInt32:
			ids[k] = math.MaxInt32
		case v <= math.MinInt32:
			ids[k] = math.MinInt32
		default:
			ids[k] = int32(v)
		}
	}
}

// floatIDs sets xs to the ids as float32 values.
func floatIDs(xs []float32, ids []int32) {
	for k, v := range ids[:len(xs)] {
		xs[k] = float32(v)
	}
}
