package gokernel

import "slices"

// sortKeras puts d's calls in the order Keras' Functional runs them
// (keras.src.ops.function.map_graph and Function._run_through_graph), so
// that what depends on that order comes out as in Keras: which layers see
// a mask that MultiHeadAttention removes from its inputs as it runs (see
// planMasks). The values a call computes do not depend on the order.
//
// Keras lists the calls by a depth-first walk from the outputs, each
// call after the calls that make its inputs (inputs in the order of
// keras.tree.flatten((args, kwargs))). Walking that list backwards from
// the outputs, a call's depth is 0 or the depth a consumer gave it, raised
// to its layer's depth so far (the calls of a shared layer), and each
// call making one of its inputs gets at least its depth + 1. The calls
// then run by decreasing depth, those of one depth in the order they were
// first given a depth.
func (d *modelDef) sortKeras() {
	n := len(d.nodes)
	producer := make([]int, d.nLocal)
	for i := range producer {
		producer[i] = -1
	}
	for i, tn := range d.nodes {
		for _, t := range tn.out {
			producer[t] = i
		}
	}
	done := make([]bool, n)
	var list []int // Keras' nodes_in_decreasing_depth
	var walk func(t int)
	walk = func(t int) {
		p := producer[t]
		if p < 0 || done[p] {
			return
		}
		done[p] = true // a DAG: p cannot be reached again below itself
		for _, u := range d.nodes[p].order {
			walk(u)
		}
		list = append(list, p)
	}
	for _, t := range d.outputs {
		walk(t)
	}
	op := func(i int) any {
		if d.nodes[i].sub != nil {
			return d.nodes[i].sub
		}
		return d.nodes[i].entry
	}
	depth := make([]int, n)
	first := make([]int, n) // when the call was first given a depth
	for i := range depth {
		depth[i], first[i] = -1, n+i // unreachable calls go last, in order
	}
	seq := 0
	give := func(i, dep int) {
		if depth[i] < 0 {
			first[i] = seq
			seq++
		}
		depth[i] = max(depth[i], dep)
	}
	opDepth := map[any]int{}
	for k := len(list) - 1; k >= 0; k-- {
		i := list[k]
		give(i, 0)
		dep := max(depth[i], opDepth[op(i)])
		opDepth[op(i)] = dep
		depth[i] = dep
		for _, u := range d.nodes[i].order {
			if p := producer[u]; p >= 0 {
				give(p, dep+1)
			}
		}
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		if depth[a] != depth[b] {
			return depth[b] - depth[a]
		}
		return first[a] - first[b]
	})
	sorted := make([]tmplNode, n)
	for k, i := range idx {
		sorted[k] = d.nodes[i]
	}
	d.nodes = sorted
}
