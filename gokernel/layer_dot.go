package gokernel

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/gophas/gophas/gokernel/internal/gemm"
)

// dot is Keras' Dot: per sample, the dot product of two tensors of rank 1
// or 2 (without the batch axis) along one axis of each (axes, counting the
// batch axis; one integer for both):
//
//	y = X'·Y'    X' = the first with its contracted axis last (f1, k),
//	             Y' = the second with its contracted axis first (k, f2)
//
// of shape (f1, f2) without the axes of size... as Keras' batch_dot writes
// it: the first's other axis, then the second's, or (1) when neither has
// one. With normalize, each is first L2-normalized along its axis as
// Keras' normalize does: x·min(1/‖x‖, 1e7). The output carries no mask.
type dot struct {
	axes      [2]int // as Keras writes them (counting the batch axis; negative from the end)
	normalize bool
}

func parseDot(c *obj) (Layer, error) {
	l := &dot{}
	r := c.get("axes")
	var v any
	if err := json.Unmarshal(r, &v); err != nil {
		return nil, c.errf("axes: want an integer or a pair, got %s", short(r))
	}
	num := func(x any) (int, bool) {
		f, ok := x.(float64)
		return int(f), ok && f == math.Trunc(f)
	}
	switch t := v.(type) {
	case float64:
		a, ok := num(t)
		if !ok {
			return nil, c.errf("axes: want integers, got %s", short(r))
		}
		l.axes = [2]int{a, a}
	case []any:
		if len(t) != 2 {
			return nil, c.errf("axes: want two integers, got %s", short(r))
		}
		for i, x := range t {
			a, ok := num(x)
			if !ok {
				return nil, c.errf("axes: want integers, got %s", short(r))
			}
			l.axes[i] = a
		}
	default:
		return nil, c.errf("axes: want an integer or a pair, got %s", short(r))
	}
	var err error
	if l.normalize, err = c.boolean("normalize", false); err != nil {
		return nil, err
	}
	return l, nil
}

// view describes one input per sample as a matrix: rows×cols, and whether
// its contracted axis is the columns.
type dotView struct {
	rows, cols int
	lastAxis   bool
}

func (l *dot) views(in [][]int) ([2]dotView, error) {
	var vs [2]dotView
	for i, s := range in {
		r := len(s)
		if r < 1 || r > 2 {
			return vs, fmt.Errorf("Dot takes inputs of rank 2 or 3 (with the batch axis), got %s", shapesStr(in))
		}
		a := l.axes[i]
		if a < 0 {
			a += r + 1
		}
		if a < 1 || a > r {
			return vs, fmt.Errorf("axes %v are out of range for inputs %s", l.axes, shapesStr(in))
		}
		if r == 1 {
			vs[i] = dotView{rows: 1, cols: s[0], lastAxis: true}
		} else {
			vs[i] = dotView{rows: s[0], cols: s[1], lastAxis: a == 2}
		}
	}
	return vs, nil
}

// kdims returns the contracted size and the free sizes of the views.
func (v dotView) split() (k, free int) {
	if v.lastAxis {
		return v.cols, v.rows
	}
	return v.rows, v.cols
}

func (l *dot) outputShapes(in [][]int) ([][]int, error) {
	if len(in) != 2 {
		return nil, fmt.Errorf("Dot takes two input tensors, got %d", len(in))
	}
	vs, err := l.views(in)
	if err != nil {
		return nil, err
	}
	k0, _ := vs[0].split()
	k1, _ := vs[1].split()
	if k0 != k1 {
		return nil, fmt.Errorf("axes %v join sizes %d and %d of inputs %s", l.axes, k0, k1, shapesStr(in))
	}
	var out []int
	for i, s := range in {
		if len(s) == 2 {
			_, f := vs[i].split()
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		out = []int{1}
	}
	return [][]int{out}, nil
}

func (l *dot) weights([][]int) []weightSpec { return nil }

// dotState keeps the normalized inputs and their inverse norms.
type dotState struct {
	x   [2][]float32
	inv [2][]float32
	dx  []float32
}

// norms normalizes x (rows samples viewed as v) along its contracted axis
// into out, keeping each slice's factor in inv.
func (v dotView) normalize(x, out, inv []float32, rows int) {
	k, f := v.split()
	n := v.rows * v.cols
	for s := 0; s < rows; s++ {
		xs, os := x[s*n:(s+1)*n], out[s*n:(s+1)*n]
		for j := 0; j < f; j++ {
			at := func(e int) int { // element e of slice j
				if v.lastAxis {
					return j*v.cols + e
				}
				return e*v.cols + j
			}
			var sum float64
			for e := 0; e < k; e++ {
				sum += float64(xs[at(e)]) * float64(xs[at(e)])
			}
			r := math.Min(1/math.Sqrt(sum), 1e7)
			inv[s*f+j] = float32(r)
			for e := 0; e < k; e++ {
				os[at(e)] = float32(float64(xs[at(e)]) * r)
			}
		}
	}
}

// normBack turns dy (the gradient of the normalized y = x·r) into dx in
// place: dx = r·(dy - y·(y·dy)) where r is not clipped, else r·dy.
func (v dotView) normBack(y, inv, d []float32, rows int) {
	k, f := v.split()
	n := v.rows * v.cols
	for s := 0; s < rows; s++ {
		ys, ds := y[s*n:(s+1)*n], d[s*n:(s+1)*n]
		for j := 0; j < f; j++ {
			at := func(e int) int {
				if v.lastAxis {
					return j*v.cols + e
				}
				return e*v.cols + j
			}
			r := inv[s*f+j]
			var yd float64
			if r < 1e7 {
				for e := 0; e < k; e++ {
					yd += float64(ys[at(e)]) * float64(ds[at(e)])
				}
			}
			for e := 0; e < k; e++ {
				ds[at(e)] = r * (ds[at(e)] - float32(float64(ys[at(e)])*yd))
			}
		}
	}
}

func (l *dot) forward(c *call) {
	vs, _ := l.views(c.in)
	xs := [2][]float32{c.x[0], c.x[1]}
	if l.normalize {
		st, ok := c.state.(*dotState)
		if !ok {
			st = &dotState{}
			c.state = st
		}
		for i, v := range vs {
			_, f := v.split()
			st.x[i] = grow32(st.x[i], c.rows*v.rows*v.cols)
			st.inv[i] = grow32(st.inv[i], c.rows*f)
			v.normalize(c.x[i], st.x[i], st.inv[i], c.rows)
			xs[i] = st.x[i]
		}
	}
	k, f1 := vs[0].split()
	_, f2 := vs[1].split()
	n0, n1 := vs[0].rows*vs[0].cols, vs[1].rows*vs[1].cols
	for s := 0; s < c.rows; s++ {
		gemm.Sgemm(1, !vs[0].lastAxis, vs[1].lastAxis, f1, f2, k, 1, xs[0][s*n0:], vs[0].cols, xs[1][s*n1:], vs[1].cols, 0, c.y[0][s*f1*f2:], f2)
	}
}

func (l *dot) backward(c *call) {
	vs, _ := l.views(c.in)
	xs := [2][]float32{c.x[0], c.x[1]}
	var st *dotState
	if l.normalize {
		st = c.state.(*dotState)
		xs = st.x
	}
	k, f1 := vs[0].split()
	_, f2 := vs[1].split()
	n0, n1 := vs[0].rows*vs[0].cols, vs[1].rows*vs[1].cols
	dy := c.dy[0]
	a, b := vs[0], vs[1]
	for s := 0; s < c.rows; s++ {
		dz := dy[s*f1*f2:]
		x, y := xs[0][s*n0:], xs[1][s*n1:]
		if dx := c.dx[0]; dx != nil {
			d := dx[s*n0:]
			switch {
			case a.lastAxis && b.lastAxis: // X (f1×k), Y (f2×k): dX = dZ·Y
				gemm.Sgemm(1, false, false, f1, k, f2, 1, dz, f2, y, b.cols, 0, d, a.cols)
			case a.lastAxis: // Y (k×f2): dX = dZ·Yᵀ
				gemm.Sgemm(1, false, true, f1, k, f2, 1, dz, f2, y, b.cols, 0, d, a.cols)
			case b.lastAxis: // X (k×f1), Y (f2×k): dX = Yᵀ·dZᵀ
				gemm.Sgemm(1, true, true, k, f1, f2, 1, y, b.cols, dz, f2, 0, d, a.cols)
			default: // X (k×f1), Y (k×f2): dX = Y·dZᵀ
				gemm.Sgemm(1, false, true, k, f1, f2, 1, y, b.cols, dz, f2, 0, d, a.cols)
			}
		}
		if dx := c.dx[1]; dx != nil {
			d := dx[s*n1:]
			switch {
			case a.lastAxis && b.lastAxis: // dY = dZᵀ·X
				gemm.Sgemm(1, true, false, f2, k, f1, 1, dz, f2, x, a.cols, 0, d, b.cols)
			case a.lastAxis: // dY = Xᵀ·dZ
				gemm.Sgemm(1, true, false, k, f2, f1, 1, x, a.cols, dz, f2, 0, d, b.cols)
			case b.lastAxis: // X (k×f1): dY = dZᵀ·Xᵀ
				gemm.Sgemm(1, true, true, f2, k, f1, 1, dz, f2, x, a.cols, 0, d, b.cols)
			default: // dY = X·dZ
				gemm.Sgemm(1, false, false, k, f2, f1, 1, x, a.cols, dz, f2, 0, d, b.cols)
			}
		}
	}
	if l.normalize {
		for i, v := range vs {
			if c.dx[i] != nil {
				v.normBack(st.x[i], st.inv[i], c.dx[i], c.rows)
			}
		}
	}
}
