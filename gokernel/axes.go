package gokernel

import (
	"encoding/json"
	"fmt"
	"slices"
)

// The arguments several layer kinds share: axes, integer tuples, and the
// broadcasting of a small weight or constant over a sample.

// axesArg reads a Keras axis argument: an integer or a list of integers
// (def when absent or null). list reports whether Keras wrote a list.
func axesArg(c *obj, key string, def []int) (axes []int, list bool, err error) {
	r := c.get(key)
	if isNull(r) {
		return def, false, nil
	}
	var one float64
	if json.Unmarshal(r, &one) == nil {
		if one != float64(int(one)) {
			return nil, false, c.errf("%s: want an integer or a list of integers, got %s", key, short(r))
		}
		return []int{int(one)}, false, nil
	}
	var many []float64
	if err := json.Unmarshal(r, &many); err != nil {
		return nil, false, c.errf("%s: want an integer or a list of integers, got %s", key, short(r))
	}
	for _, v := range many {
		if v != float64(int(v)) {
			return nil, false, c.errf("%s: want an integer or a list of integers, got %s", key, short(r))
		}
		axes = append(axes, int(v))
	}
	return axes, true, nil
}

// sampleAxes maps Keras axes (0 the batch axis, negative counting from the
// end) onto the axes of a sample of rank r (0 its first axis), sorted. The
// batch axis, an axis out of range and a repeated axis are errors.
func sampleAxes(axes []int, r int) ([]int, error) {
	out := make([]int, 0, len(axes))
	for _, a := range axes {
		s := a - 1
		if a < 0 {
			s = r + a
		}
		switch {
		case a == 0 || a == -(r+1):
			return nil, errorf("axis %d is the batch axis; normalizing over it is not supported", a)
		case s < 0 || s >= r:
			return nil, errorf("axis %d is out of range for an input of rank %d", a, r+1)
		case slices.Contains(out, s):
			return nil, errorf("axis %d appears twice in %v", a, axes)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}

// axisRun views a sample of shape s as (outer, n, inner) around the sample
// axes axes (sorted), which must be a contiguous run: n is the product of
// their sizes, outer of the axes before them, inner of those after.
func axisRun(s []int, axes []int) (outer, n, inner int, err error) {
	if len(axes) == 0 {
		return 1, prod(s), 1, nil
	}
	first, last := axes[0], axes[len(axes)-1]
	if last-first+1 != len(axes) {
		return 0, 0, 0, errorf("axes %v are not a contiguous run of axes (only contiguous runs are supported)", kerasAxes(axes))
	}
	return prod(s[:first]), prod(s[first : last+1]), prod(s[last+1:]), nil
}

// kerasAxes writes sample axes as Keras numbers them (the batch axis 0).
func kerasAxes(axes []int) []int {
	out := make([]int, len(axes))
	for i, a := range axes {
		out[i] = a + 1
	}
	return out
}

// intTuple reads an argument that is an integer or a list of k integers
// (Keras' standardize_tuple); def when absent or null. Each value must be
// at least min.
func intTuple(c *obj, key string, k int, def []int, min int) ([]int, error) {
	r := c.get(key)
	if isNull(r) {
		return def, nil
	}
	var out []int
	var one float64
	if json.Unmarshal(r, &one) == nil {
		out = slices.Repeat([]int{int(one)}, k)
		if one != float64(int(one)) {
			out = nil
		}
	} else {
		var many []float64
		if json.Unmarshal(r, &many) == nil && len(many) == k {
			for _, v := range many {
				if v != float64(int(v)) {
					out = nil
					break
				}
				out = append(out, int(v))
			}
		}
	}
	if out == nil {
		return nil, c.errf("%s: want an integer or a list of %d integers, got %s", key, k, short(r))
	}
	for _, v := range out {
		if v < min {
			return nil, c.errf("%s %s: each value must be at least %d", key, short(r), min)
		}
	}
	return out, nil
}

// pairs reads an argument that is an integer, a list of k integers or a
// list of k pairs of integers (ZeroPadding2D's padding, Cropping2D's
// cropping): the result holds a (before, after) pair per axis. Values must
// not be negative.
func pairs(c *obj, key string, k int, def [][2]int) ([][2]int, error) {
	r := c.get(key)
	if isNull(r) {
		return def, nil
	}
	bad := c.errf("%s: want an integer, %d integers or %d pairs of non-negative integers, got %s", key, k, k, short(r))
	var v any
	if json.Unmarshal(r, &v) != nil {
		return nil, bad
	}
	num := func(v any) (int, bool) {
		f, ok := v.(float64)
		return int(f), ok && f == float64(int(f)) && f >= 0
	}
	out := make([][2]int, k)
	if n, ok := num(v); ok {
		for i := range out {
			out[i] = [2]int{n, n}
		}
		return out, nil
	}
	l, ok := v.([]any)
	if !ok || len(l) != k {
		return nil, bad
	}
	for i, e := range l {
		if n, ok := num(e); ok {
			out[i] = [2]int{n, n}
			continue
		}
		p, ok := e.([]any)
		if !ok || len(p) != 2 {
			return nil, bad
		}
		a, ok1 := num(p[0])
		b, ok2 := num(p[1])
		if !ok1 || !ok2 {
			return nil, bad
		}
		out[i] = [2]int{a, b}
	}
	return out, nil
}

// dataFormat reads a data_format argument: true for channels_first.
func dataFormat(c *obj) (bool, error) {
	df, err := c.str("data_format", "channels_last")
	if err != nil {
		return false, err
	}
	if df != "channels_last" && df != "channels_first" {
		return false, c.errf("data_format %q is not supported (channels_last, channels_first are)", df)
	}
	return df == "channels_first", nil
}

// broadcastIndex fills idx (prod(s) values) with, for each position of a
// sample of shape s in row-major order, the index of the value of an array
// of shape p that broadcasts onto it as numpy broadcasts (p aligned with
// the last axes of s, each of its sizes 1 or equal to the sample's).
func broadcastIndex(idx []int32, s, p []int) {
	r := len(s)
	// stride[d]: the step in p for a step along sample axis d (0 where p
	// has size 1 or no axis there).
	stride := make([]int, r)
	st := 1
	for d := len(p) - 1; d >= 0; d-- {
		sd := r - len(p) + d
		if sd >= 0 && p[d] != 1 {
			stride[sd] = st
		}
		st *= p[d]
	}
	pos := make([]int, r)
	cur := 0
	for i := range idx {
		idx[i] = int32(cur)
		for d := r - 1; d >= 0; d-- {
			pos[d]++
			cur += stride[d]
			if pos[d] < s[d] {
				break
			}
			cur -= stride[d] * pos[d]
			pos[d] = 0
		}
	}
}

// broadcastable checks that an array of shape p broadcasts onto samples of
// shape s (leading axes of size 1 beyond the sample's rank stand for the
// batch axis).
func broadcastable(s, p []int) error {
	for len(p) > len(s) && p[0] == 1 {
		p = p[1:]
	}
	if len(p) > len(s) {
		return fmt.Errorf("an array of shape %v does not broadcast onto samples of shape %s", p, shapeStr(s))
	}
	for d := range p {
		if sd := s[len(s)-len(p)+d]; p[d] != 1 && p[d] != sd {
			return fmt.Errorf("an array of shape %v does not broadcast onto samples of shape %s", p, shapeStr(s))
		}
	}
	return nil
}

// arrayArg reads an argument that holds an array as Keras serializes one:
// a number, a nested list of numbers, or {"class_name": "__numpy__",
// "config": {"value": ..., "dtype": ...}}. It returns the values
// (row-major) and the shape ([] for a number); ok is false when the key is
// absent or null.
func arrayArg(c *obj, key string) (vals []float32, shape []int, ok bool, err error) {
	r := c.get(key)
	if isNull(r) {
		return nil, nil, false, nil
	}
	var v any
	if err := json.Unmarshal(r, &v); err != nil {
		return nil, nil, false, c.errf("%s: want a number or an array, got %s", key, short(r))
	}
	if m, isMap := v.(map[string]any); isMap {
		cfg, _ := m["config"].(map[string]any)
		if m["class_name"] != "__numpy__" || cfg == nil || len(m) > 3 {
			return nil, nil, false, c.errf("%s %s is not supported (a number or an array is)", key, short(r))
		}
		if dt, _ := cfg["dtype"].(string); !slices.Contains([]string{"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8"}, dt) {
			return nil, nil, false, c.errf("%s: array dtype %q is not supported", key, cfg["dtype"])
		}
		v = cfg["value"]
	}
	var walk func(v any, depth int) error
	walk = func(v any, depth int) error {
		switch t := v.(type) {
		case float64:
			if depth != len(shape) {
				return fmt.Errorf("ragged")
			}
			vals = append(vals, float32(t))
			return nil
		case []any:
			if depth == len(shape) {
				if len(vals) > 0 {
					return fmt.Errorf("ragged")
				}
				shape = append(shape, len(t))
			} else if depth > len(shape) || shape[depth] != len(t) {
				return fmt.Errorf("ragged")
			}
			for _, e := range t {
				if err := walk(e, depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		return fmt.Errorf("not a number")
	}
	shape = []int{}
	if err := walk(v, 0); err != nil || len(vals) != prod(shape) || len(vals) == 0 {
		return nil, nil, false, c.errf("%s: want a number or a rectangular array of numbers, got %s", key, short(r))
	}
	return vals, shape, true, nil
}
