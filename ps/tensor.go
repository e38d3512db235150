package ps

import (
	"errors"
	"fmt"
	"math"

	"github.com/gophas/gophas/gokernel"
)

// NamedTensor is one named float32 tensor in row-major order: a weight or a
// piece of optimizer state. It is gokernel's type, so that the weights of a
// gokernel.Model and its optimizers' state pass through unchanged.
type NamedTensor = gokernel.NamedTensor

// numel returns the product of shape, or -1 when a dimension is negative or
// the product overflows.
func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		if d < 0 || (d > 0 && n > math.MaxInt32/d) {
			return -1
		}
		n *= d
	}
	return n
}

// checkTensors verifies that every tensor's data matches its shape.
func checkTensors(ts []NamedTensor) error {
	for i, t := range ts {
		if n := numel(t.Shape); n != len(t.Data) {
			return fmt.Errorf("ps: tensor %d %q: shape %v holds %d values, data has %d", i, t.Name, t.Shape, n, len(t.Data))
		}
	}
	return nil
}

// cloneTensors deep-copies ts.
func cloneTensors(ts []NamedTensor) []NamedTensor {
	out := make([]NamedTensor, len(ts))
	for i, t := range ts {
		out[i] = NamedTensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), Data: append([]float32(nil), t.Data...)}
	}
	return out
}

// ErrShape reports an update whose tensors do not match the model's.
var ErrShape = errors.New("ps: update shape does not match the model")

// ErrNonFinite reports an update holding NaN or Inf.
var ErrNonFinite = errors.New("ps: update holds NaN or Inf")

// checkUpdate verifies that upd has one slice per tensor of ref, each of the
// same length, and that every value is finite.
func checkUpdate(ref []NamedTensor, upd [][]float32) error {
	if len(upd) != len(ref) {
		return fmt.Errorf("%w: %d tensors, want %d", ErrShape, len(upd), len(ref))
	}
	for i, u := range upd {
		if len(u) != len(ref[i].Data) {
			return fmt.Errorf("%w: tensor %d %q has %d values, want %d", ErrShape, i, ref[i].Name, len(u), len(ref[i].Data))
		}
	}
	for i, u := range upd {
		if j := firstNonFinite(u); j >= 0 {
			return fmt.Errorf("%w: tensor %d %q index %d is %v", ErrNonFinite, i, ref[i].Name, j, u[j])
		}
	}
	return nil
}

// firstNonFinite returns the index of the first NaN or Inf in xs, or -1:
// those are the values whose exponent bits are all ones.
func firstNonFinite(xs []float32) int {
	const exp = 0x7f800000
	for j, v := range xs {
		if math.Float32bits(v)&exp == exp {
			return j
		}
	}
	return -1
}
