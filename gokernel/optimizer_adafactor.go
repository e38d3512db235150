package gokernel

import (
	"fmt"
	"math"
)

// Adafactor is keras.optimizers.Adafactor (Shazeer & Stern, 2018), which
// keeps factored second moments for matrices. At step t = iterations+1,
// with learning rate η and gradient g of a parameter p:
//
//	η_t = min(η, 1/√t) if relative_step;  ρ = min(η_t, 1/√t)
//	α = max(ε₂, rms(p))·ρ;  β = 1 − t^decay;  G = g² + ε₁
//	rank ≥ 2 (the last two axes, R×C, factored; leading axes kept):
//	  r ← β·r + (1−β)·mean over C of G        (shape …×R)
//	  c ← β·c + (1−β)·mean over R of G        (shape …×C)
//	  v = (r/mean(r))·c                        (outer product per leading index)
//	rank < 2:  v ← β·v + (1−β)·G
//	u = g/√v;  û = u/max(1, rms(u)/clip_threshold)
//	p ← p − α·û
//
// where rms(x) = √mean(x²) over the whole parameter. It needs the
// parameters' shapes before the first step (SetShapes; a Model gives them).
// Defaults: learning_rate 0.001, beta_2_decay −0.8, epsilon_1 1e-30,
// epsilon_2 1e-3, clip_threshold 1, relative_step true, name "adafactor".
// State: "iteration", then "velocity/<i>"…, "row/<i>"…, "col/<i>"… (row
// and col empty for a parameter of rank < 2).
type Adafactor struct {
	base
	decay, eps1, eps2, clip float64
	relative                bool
	shapes                  [][]int
	v, r, c                 [][]float32
	colSum                  []float64 // scratch of one step
}

func newAdafactor(p *argParser) *Adafactor {
	o := &Adafactor{base: base{opt: p.base("adafactor", 0.001, nil)}}
	o.decay = p.float("beta_2_decay", -0.8)
	o.eps1 = p.float("epsilon_1", 1e-30)
	o.eps2 = p.float("epsilon_2", 1e-3)
	o.clip = p.float("clip_threshold", 1)
	o.relative = p.bool("relative_step", true)
	return o
}

// SetShapes gives the optimizer the shapes of the parameters it will
// update, in Apply's order; their sizes must match the parameters'.
func (o *Adafactor) SetShapes(shapes [][]int) error {
	if o.sizes != nil {
		for i, s := range shapes {
			if i < len(o.sizes) && prod(s) != o.sizes[i] {
				return fmt.Errorf("%s %s: shape %v of parameter %d has %d values; the state holds %d", optPrefix, o.opt.name, s, i, prod(s), o.sizes[i])
			}
		}
	}
	o.shapes = make([][]int, len(shapes))
	for i, s := range shapes {
		o.shapes[i] = append([]int(nil), s...)
	}
	return nil
}

// factors returns the leading size B, rows R and columns C of parameter
// i's last two axes; ok is false for a parameter of rank < 2.
func (o *Adafactor) factors(i int) (b, r, c int, ok bool) {
	s := o.shapes[i]
	if len(s) < 2 {
		return 0, 0, 0, false
	}
	return prod(s[:len(s)-2]), s[len(s)-2], s[len(s)-1], true
}

func (o *Adafactor) build(params [][]float32) {
	o.setSizes(params)
	o.v = zeros(params, 0)
	o.r, o.c = make([][]float32, len(params)), make([][]float32, len(params))
	for i := range params {
		if b, r, c, ok := o.factors(i); ok {
			o.r[i], o.c[i] = make([]float32, b*r), make([]float32, b*c)
		} else {
			o.r[i], o.c[i] = []float32{}, []float32{}
		}
	}
}

// Apply performs one Adafactor step; see Optimizer.
func (o *Adafactor) Apply(params, grads [][]float32) error {
	if o.shapes == nil {
		return fmt.Errorf("%s %s: the parameters' shapes are not known (Adafactor factors the last two axes of each; SetShapes gives them)", optPrefix, o.opt.name)
	}
	if len(o.shapes) != len(params) {
		return fmt.Errorf("%s %s: %d shapes for %d parameters", optPrefix, o.opt.name, len(o.shapes), len(params))
	}
	for i, s := range o.shapes {
		if prod(s) != len(params[i]) {
			return fmt.Errorf("%s %s: parameter %d has %d values but shape %v", optPrefix, o.opt.name, i, len(params[i]), s)
		}
	}
	build, err := o.check(params, grads)
	if err != nil {
		return err
	}
	if build {
		o.build(params)
	}
	grads = o.prepare(params, grads)
	t := float64(o.iterations + 1)
	lr := float64(o.opt.learningRate)
	if o.relative {
		lr = math.Min(lr, 1/math.Sqrt(t))
	}
	rho := math.Min(lr, 1/math.Sqrt(t))
	beta := 1 - math.Pow(t, o.decay)
	for i, p := range params {
		o.step(i, p, grads[i], rho, beta)
	}
	o.iterations++
	return nil
}

func (o *Adafactor) step(i int, p, g []float32, rho, beta float64) {
	alpha := math.Max(o.eps2, rms32(p)) * rho
	v := o.v[i]
	if b, R, C, ok := o.factors(i); ok {
		r, c := o.r[i], o.c[i]
		if cap(o.colSum) < C {
			o.colSum = make([]float64, C)
		}
		colSum := o.colSum[:C]
		for bi := 0; bi < b; bi++ {
			clear(colSum)
			var rowMean float64
			for ri := 0; ri < R; ri++ {
				var s float64
				for ci, gv := range g[(bi*R+ri)*C : (bi*R+ri+1)*C] {
					G := float64(gv)*float64(gv) + o.eps1
					s += G
					colSum[ci] += G
				}
				k := bi*R + ri
				r[k] = float32(beta*float64(r[k]) + (1-beta)*s/float64(C))
				rowMean += float64(r[k])
			}
			rowMean /= float64(R)
			for ci := range C {
				k := bi*C + ci
				c[k] = float32(beta*float64(c[k]) + (1-beta)*colSum[ci]/float64(R))
			}
			for ri := 0; ri < R; ri++ {
				f := float64(r[bi*R+ri]) / rowMean
				for ci := range C {
					v[(bi*R+ri)*C+ci] = float32(f * float64(c[bi*C+ci]))
				}
			}
		}
	} else {
		for j, gv := range g {
			G := float64(gv)*float64(gv) + o.eps1
			v[j] = float32(beta*float64(v[j]) + (1-beta)*G)
		}
	}
	var su float64
	for j, gv := range g {
		u := float64(gv) / math.Sqrt(float64(v[j]))
		su += u * u
	}
	rmsU := math.Sqrt(su / float64(len(g)))
	scale := alpha / math.Max(1, rmsU/o.clip)
	for j, gv := range g {
		p[j] -= float32(scale * float64(gv) / math.Sqrt(float64(v[j])))
	}
}

// rms32 is √(mean of x²).
func rms32(x []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	return math.Sqrt(sumSquares(x) / float64(len(x)))
}

// State returns "iteration", "velocity/<i>"…, "row/<i>"…, "col/<i>"….
func (o *Adafactor) State() []NamedTensor {
	s := append([]NamedTensor{o.iterationState()}, slotState("velocity", o.v)...)
	return append(append(s, slotState("row", o.r)...), slotState("col", o.c)...)
}

// SetState replaces the state; see State for the entries. The shapes must
// be set first.
func (o *Adafactor) SetState(state []NamedTensor) error {
	if len(state) == 0 || state[0].Name != "iteration" || len(state[0].Data) != 1 {
		return fmt.Errorf("%s %s: state must start with a one-value \"iteration\" entry", optPrefix, o.opt.name)
	}
	rest := state[1:]
	if len(rest) == 0 && o.sizes == nil {
		o.iterations = int64(state[0].Data[0])
		return nil
	}
	if o.shapes == nil {
		return fmt.Errorf("%s %s: the parameters' shapes are not known (SetShapes first)", optPrefix, o.opt.name)
	}
	np := len(o.shapes)
	if len(rest) != 3*np {
		return fmt.Errorf("%s %s: state has %d entries after \"iteration\", want %d (velocity, row and col of %d parameters)", optPrefix, o.opt.name, len(rest), 3*np, np)
	}
	params := make([][]float32, np)
	for i, s := range o.shapes {
		params[i] = make([]float32, prod(s))
	}
	saved := o.iterations
	o.build(params)
	o.iterations = saved
	for k, kind := range []string{"velocity", "row", "col"} {
		dst := [][][]float32{o.v, o.r, o.c}[k]
		for i := range np {
			e := rest[k*np+i]
			if want := fmt.Sprintf("%s/%d", kind, i); e.Name != want {
				return fmt.Errorf("%s %s: state entry %d is %q, want %q", optPrefix, o.opt.name, 1+k*np+i, e.Name, want)
			}
			if len(e.Data) != len(dst[i]) {
				return fmt.Errorf("%s %s: state entry %q has %d values, want %d", optPrefix, o.opt.name, e.Name, len(e.Data), len(dst[i]))
			}
			copy(dst[i], e.Data)
		}
	}
	o.iterations = int64(state[0].Data[0])
	return nil
}

// giveShapes tells an optimizer that needs them (Adafactor) the shapes of
// the trainable weights, in the order of m.params.
func (m *Model) giveShapes() error {
	s, ok := m.opt.(interface{ SetShapes([][]int) error })
	if !ok {
		return nil
	}
	var shapes [][]int
	for _, w := range m.wts {
		if w.trainable {
			shapes = append(shapes, w.spec.shape)
		}
	}
	return s.SetShapes(shapes)
}
