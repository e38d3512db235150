package gokernel

import (
	"fmt"
	"slices"
)

// Masks, as Keras 3 propagates them. A mask marks which positions of a
// tensor's samples hold data: Embedding(mask_zero=True) masks the zero
// ids, Masking the steps whose features all equal mask_value. It is a
// boolean per position of the tensor's shape without its last axis (a
// (T, d) sequence has a (T) mask). Keras attaches it to the tensor, and
// each layer called on a masked tensor does one of three things:
//
//   - passes it on: a layer that supports masking without computing a
//     mask of its own (Dense, Activation, Dropout, LayerNormalization,
//     TimeDistributed, an RNN with return_sequences, Attention and
//     MultiHeadAttention the query's mask) gives its output its input's
//     mask (a masker returning the input's index);
//   - computes one (Embedding, Masking; the merges, whose output mask is
//     the OR of their inputs' masks when all are masked; Concatenate);
//   - drops it: any other layer (Flatten, a convolution, an RNN without
//     return_sequences, GlobalAveragePooling1D, Dot) gives no mask.
//
// Independently of that, a layer whose call takes a mask reads it: an RNN
// keeps its state over masked steps, attention ignores masked keys,
// GlobalAveragePooling1D averages the unmasked steps only, and the losses
// and metrics of a masked output average over its unmasked positions.
// MultiHeadAttention also removes the masks of its query, value and key
// tensors as it runs (keras MultiHeadAttention.call sets them to None):
// a layer that reads one of those tensors after it in Keras' order of the
// calls (see sortKeras) sees no mask. planMasks works all this out once,
// when the graph is built; at run time a layer reads c.mask and fills
// c.maskOut.

// The mask rules a masker returns per output, besides the index of the
// input whose mask the output carries.
const (
	maskNone     = -1 // the output has no mask
	maskComputed = -2 // the layer computes the output's mask (c.maskOut[k])
)

// masker is implemented by the layer kinds that support masking (Keras'
// supports_masking). outputMasks returns, for a call whose inputs are
// masked or not (masked[i]), each output's rule: maskNone, maskComputed or
// the index of the input whose mask it passes on. A layer kind that does
// not implement it drops masks, as Keras' layers without supports_masking
// do.
type masker interface {
	outputMasks(masked []bool) []int
}

// maskEraser is implemented by MultiHeadAttention: erasesMasks lists,
// for a call on inputs tensors, those whose tensors lose their mask when
// the call runs.
type maskEraser interface {
	erasesMasks(inputs int) []int
}

// maskChecker is implemented by the layer kinds that cannot take a masked
// input: checkMasks returns the error planMasks reports, given which of a
// call's inputs carry a mask when it runs.
type maskChecker interface {
	checkMasks(masked []bool) error
}

// maskCombiner is implemented by the layer kinds whose output masks
// depend on their inputs' masks (the merges, Concatenate): combineMasks
// sets out[k] (nil where the output's mask is not computed) from the
// inputs' masks in (nil for an unmasked input), given the call's shapes.
// A masker that computes masks without implementing it computes them from
// the data in forward (Embedding, Masking), into c.maskOut.
type maskCombiner interface {
	combineMasks(c *call, in, out [][]bool)
}

// How a call gets the mask of an input (node.explicit).
const (
	maskExplicitNo    int8 = iota // as its input carries it when the call runs
	maskExplicitBuilt             // Keras recorded it: as the input carried it when the model was built
	maskExplicitNone              // Keras recorded none
)

// maskInfo is one mask of the graph.
type maskInfo struct {
	shape []int // per sample: the masked tensor's shape without its last axis
	node  int   // the node that computes it
	k     int   // for its output k
	// in are the masks of the node's inputs it is computed from (a
	// maskCombiner's; nil for one computed from the data).
	in []int
}

// planMasks decides which mask each call's inputs carry when it runs
// (node.inMask), which each of its outputs gets (node.outMask: a mask it
// passes on or one it computes), and which each model output carries for
// its loss (graph.outMask).
//
// Keras propagates masks twice. As the model is built (its calls made on
// symbolic tensors), each layer's compute_mask gives its outputs' masks,
// and where Keras passes a mask to a layer whose call takes one it may
// record it in the call (kwargs.mask): the call then always gets that
// mask. When the model runs, the masks are propagated again, and there
// MultiHeadAttention removes its inputs' masks, which the calls after it
// do not see unless recorded. planMasks follows both, in Keras' order of
// the calls: builtIn/builtOut as built, inMask/outMask as run, where a
// recorded input takes its mask as built.
func (g *graph) planMasks() error {
	built := make([]int, len(g.tensors)) // the mask each tensor carries, as built
	run := make([]int, len(g.tensors))   // ... and as run
	for i := range built {
		built[i], run[i] = -1, -1
	}
	type key struct {
		node, k int
		in      string
	}
	made := map[key]int{} // computed masks, by node, output and input masks
	for i := range g.nodes {
		n := &g.nodes[i]
		n.builtIn = make([]int, len(n.in))
		n.inMask = make([]int, len(n.in))
		for j, t := range n.in {
			n.builtIn[j] = built[t]
			n.inMask[j] = run[t]
			if j < len(n.explicit) {
				switch n.explicit[j] {
				case maskExplicitBuilt:
					n.inMask[j] = built[t]
				case maskExplicitNone:
					n.inMask[j] = -1
				}
			}
		}
		if mc, ok := n.fn.(maskChecker); ok {
			masked := make([]bool, len(n.inMask))
			for j, m := range n.inMask {
				masked[j] = m >= 0
			}
			if err := mc.checkMasks(masked); err != nil {
				return fmt.Errorf("gokernel: %s: %v", n.layer.where(), err)
			}
		}
		var err error
		out := func(in []int) ([]int, error) {
			ids := make([]int, len(n.out))
			for k := range ids {
				ids[k] = -1
			}
			mk, ok := n.fn.(masker)
			if !ok {
				return ids, nil
			}
			masked := make([]bool, len(in))
			for j, m := range in {
				masked[j] = m >= 0
			}
			_, combines := n.fn.(maskCombiner)
			for k, r := range mk.outputMasks(masked) {
				shape := g.tensors[n.out[k]].shape
				if r == maskNone || (r >= 0 && in[r] < 0) {
					continue
				}
				if len(shape) == 0 {
					return nil, fmt.Errorf("gokernel: %s: output %d of shape %s cannot carry a mask (it has no axis besides the batch's)", n.layer.where(), k, shapeStr(shape))
				}
				want := shape[:len(shape)-1]
				if r >= 0 {
					if got := g.masks[in[r]].shape; !slices.Equal(got, want) {
						return nil, fmt.Errorf("gokernel: %s: passes the mask %s of input %d to output %d of shape %s, whose mask would be %s (not supported)", n.layer.where(), shapeStr(got), r, k, shapeStr(shape), shapeStr(want))
					}
					ids[k] = in[r]
					continue
				}
				kk := key{node: i, k: k}
				if combines {
					kk.in = fmt.Sprint(in)
				}
				id, ok := made[kk]
				if !ok {
					id = len(g.masks)
					mi := maskInfo{shape: append([]int(nil), want...), node: i, k: k}
					if combines {
						mi.in = append([]int(nil), in...)
					}
					g.masks = append(g.masks, mi)
					made[kk] = id
				}
				ids[k] = id
			}
			return ids, nil
		}
		if n.builtOut, err = out(n.builtIn); err != nil {
			return err
		}
		if n.outMask, err = out(n.inMask); err != nil {
			return err
		}
		for k, t := range n.out {
			built[t], run[t] = n.builtOut[k], n.outMask[k]
		}
		if er, ok := n.fn.(maskEraser); ok {
			for _, j := range er.erasesMasks(len(n.in)) {
				run[n.in[j]] = -1
			}
		}
	}
	g.outMask = make([]int, len(g.outputs))
	for i, t := range g.outputs {
		g.outMask[i] = run[t]
	}
	return nil
}

// passMask is the outputMasks of a one-input layer that passes its
// input's mask to each of its outputs.
func passMask(outputs int) []int {
	r := make([]int, outputs)
	return r // zeros: the mask of input 0
}

// orMask is the mask rule of Keras' merge layers (Add, Multiply, ...):
// the OR of the inputs' masks when every input is masked, else none.
func orMask(masked []bool) []int {
	for _, m := range masked {
		if !m {
			return []int{maskNone}
		}
	}
	return []int{maskComputed}
}

// maskCount returns the number of true values of m.
func maskCount(m []bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// maskedLossSums is lossSums for an output h whose mask is h.mask. Keras
// (keras.src.losses.loss.apply_mask) weighs each of the n = rows·positions
// positions by n/valid where the mask is true and by 0 where it is false,
// valid being the number of true ones: the loss ("sum_over_batch_size")
// and its gradient are the mean over the unmasked positions, and each
// metric the mean of its values there (0 when every position is masked,
// as Keras' divide_no_nan gives). lsum and msum are per row, as unmasked
// ones: the batch's mean times rows.
func (m *Model) maskedLossSums(h *head, y []float32, rows int, grad []float32) {
	n := rows * h.positions
	mask := m.maskVal[h.mask][:n]
	out := m.val[h.tensor]
	valid := maskCount(mask)
	w := h.width
	yw := w
	if h.sparse {
		yw = 1
	}
	clear(grad)
	var lsum float64
	clear(h.msum)
	scale := 0.0
	if valid > 0 {
		scale = h.spec.weight / float64(valid)
	}
	for p, ok := range mask {
		if !ok {
			continue
		}
		var gp []float32
		if grad != nil {
			gp = grad[p*w : (p+1)*w]
		}
		lsum += h.spec.loss.lossSum(out[p*w:(p+1)*w], y[p*yw:(p+1)*yw], 1, w, gp, scale)
		for k, ms := range h.metrics {
			h.msum[k] += ms.kind.metricSum(out[p*w:(p+1)*w], y[p*yw:(p+1)*yw], 1, w, h.sparse)
		}
	}
	f := 0.0
	if valid > 0 {
		f = float64(rows) / float64(valid)
	}
	h.lsum = lsum * f
	for k := range h.msum {
		h.msum[k] *= f
	}
}

// nodeMasks lists, per node, the masks it computes.
func (g *graph) nodeMasks() [][]int {
	out := make([][]int, len(g.nodes))
	for id, mi := range g.masks {
		out[mi.node] = append(out[mi.node], id)
	}
	return out
}

// computeMasks sets c.maskOut for the masks node i computes from its data
// in forward, and computes those it combines from its inputs' masks.
func (m *Model) computeMasks(i int, c *call, rows int) {
	for k := range c.maskOut {
		c.maskOut[k] = nil
	}
	for _, id := range m.nodeMasks[i] {
		mi := m.g.masks[id]
		buf := m.maskVal[id][:rows*prod(mi.shape)]
		if mi.in == nil {
			c.maskOut[mi.k] = buf
			continue
		}
		in := m.maskIn[:0]
		for _, j := range mi.in {
			var v []bool
			if j >= 0 {
				v = m.maskVal[j][:rows*prod(m.g.masks[j].shape)]
			}
			in = append(in, v)
		}
		out := m.maskOut[:0]
		for k := range c.out {
			var v []bool
			if k == mi.k {
				v = buf
			}
			out = append(out, v)
		}
		m.maskIn, m.maskOut = in, out
		m.g.nodes[i].fn.(maskCombiner).combineMasks(c, in, out)
	}
}
