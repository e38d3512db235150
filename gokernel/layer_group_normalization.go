package gokernel

import "math"

// groupNorm is Keras' GroupNormalization: the C channels of axis a
// (default the last) are split into G groups of K = C/G consecutive
// channels, and each sample is normalized per group over the group's
// channels and every other axis, M values per group (G = C with groups
// -1: instance normalization):
//
//	μ = Σ x / M,  σ² = Σ (x - μ)² / M,  r = 1/√(σ² + ε)
//	x̂ = (x - μ)·r,  y = γ_c x̂ + β_c
//
// with γ and β per channel. Backward, per group, with g = γ_c dy:
//
//	dx = r (g - Σg/M - x̂ Σ(g x̂)/M),  dγ_c += Σ dy x̂,  dβ_c += Σ dy
type groupNorm struct {
	groups              int // -1: one per channel
	axis                int
	epsilon             float64
	center, scale       bool
	betaInit, gammaInit initSpec
	betaReg, gammaReg   regSpec
}

func parseGroupNorm(c *obj) (Layer, error) {
	l := &groupNorm{}
	g, ok, err := c.integer("groups")
	if err != nil {
		return nil, err
	}
	if !ok {
		g = 32
	}
	if g < 1 && g != -1 {
		return nil, c.errf("groups %d: want a positive integer or -1", g)
	}
	l.groups = int(g)
	axes, list, err := axesArg(c, "axis", []int{-1})
	if err != nil {
		return nil, err
	}
	if list || len(axes) != 1 {
		return nil, c.errf("axis %v: want one integer", axes)
	}
	l.axis = axes[0]
	if l.epsilon, err = c.num("epsilon", 1e-3); err != nil {
		return nil, err
	}
	if l.epsilon < 0 {
		return nil, c.errf("epsilon %v must not be negative", l.epsilon)
	}
	if l.center, err = c.boolean("center", true); err != nil {
		return nil, err
	}
	if l.scale, err = c.boolean("scale", true); err != nil {
		return nil, err
	}
	if l.betaInit, l.gammaInit, l.betaReg, l.gammaReg, err = affineArgs(c); err != nil {
		return nil, err
	}
	return l, nil
}

// geometry returns the sample seen as (outer, C, inner) around the channel
// axis, and the number of groups.
func (l *groupNorm) geometry(s []int) (outer, ch, inner, groups int, err error) {
	a, err := sampleAxes([]int{l.axis}, len(s))
	if err != nil {
		return 0, 0, 0, 0, err
	}
	ch = s[a[0]]
	groups = l.groups
	if groups == -1 {
		groups = ch
	}
	if groups > ch || ch%groups != 0 {
		return 0, 0, 0, 0, errorf("%d groups do not divide the %d channels of axis %d", groups, ch, l.axis)
	}
	return prod(s[:a[0]]), ch, prod(s[a[0]+1:]), groups, nil
}

func (l *groupNorm) outputShapes(in [][]int) ([][]int, error) {
	s, err := oneInput(in)
	if err != nil {
		return nil, err
	}
	if _, _, _, _, err := l.geometry(s); err != nil {
		return nil, err
	}
	return [][]int{s}, nil
}

func (l *groupNorm) weights(in [][]int) []weightSpec {
	_, ch, _, _, _ := l.geometry(in[0])
	var ws []weightSpec
	if l.scale {
		ws = append(ws, weightSpec{name: "gamma", shape: []int{ch}, init: l.gammaInit, reg: l.gammaReg})
	}
	if l.center {
		ws = append(ws, weightSpec{name: "beta", shape: []int{ch}, init: l.betaInit, reg: l.betaReg})
	}
	return ws
}

type gnState struct {
	outer, ch, inner, groups int
	s, sx                    []float64 // per channel: Σ dy, Σ dy·(x - μ)
}

func (l *groupNorm) state(c *call) *gnState {
	if g, ok := c.state.(*gnState); ok {
		return g
	}
	o, ch, i, gr, _ := l.geometry(c.in[0])
	g := &gnState{outer: o, ch: ch, inner: i, groups: gr, s: make([]float64, ch), sx: make([]float64, ch)}
	c.state = g
	return g
}

func (l *groupNorm) params(w [][]float32) (gamma, beta []float32) {
	k := 0
	if l.scale {
		gamma = w[k]
		k++
	}
	if l.center {
		beta = w[k]
	}
	return gamma, beta
}

// A group's values are, for each of the outer positions o, the run of
// K·inner values from (o·C + g·K)·inner; channel kk of the group covers
// values kk·inner ... (kk+1)·inner-1 of each run.

// groupApply sets y = x·a_c + b_c over one group's runs, c the channel of
// each value.
func groupApply(x, y []float32, g *gnState, gr, k int, a, b []float32) {
	runLen := k * g.inner
	ag, bg := a[gr*k:(gr+1)*k], b[gr*k:(gr+1)*k]
	for o := 0; o < g.outer; o++ {
		at := (o*g.ch + gr*k) * g.inner
		xs, ys := x[at:at+runLen], y[at:at+runLen]
		if g.inner == 1 {
			for t, v := range xs {
				ys[t] = v*ag[t] + bg[t]
			}
			continue
		}
		for kk := 0; kk < k; kk++ {
			sc, sh := ag[kk], bg[kk]
			yk := ys[kk*g.inner : (kk+1)*g.inner]
			for i, v := range xs[kk*g.inner : (kk+1)*g.inner] {
				yk[i] = v*sc + sh
			}
		}
	}
}

func (l *groupNorm) forward(c *call) {
	g := l.state(c)
	k := g.ch / g.groups
	runLen, sample := k*g.inner, g.outer*g.ch*g.inner
	m := float64(g.outer * runLen)
	mean, inv := c.buf(0, c.rows*g.groups), c.buf(1, c.rows*g.groups)
	sc, sh := c.buf(2, g.ch), c.buf(3, g.ch)
	gamma, beta := l.params(c.w)
	x, y := c.x[0], c.y[0]
	for r := 0; r < c.rows; r++ {
		xr, yr := x[r*sample:(r+1)*sample], y[r*sample:(r+1)*sample]
		for gr := 0; gr < g.groups; gr++ {
			var s float64
			for o := 0; o < g.outer; o++ {
				at := (o*g.ch + gr*k) * g.inner
				for _, v := range xr[at : at+runLen] {
					s += float64(v)
				}
			}
			mu := s / m
			var v2 float64
			for o := 0; o < g.outer; o++ {
				at := (o*g.ch + gr*k) * g.inner
				for _, v := range xr[at : at+runLen] {
					d := float64(v) - mu
					v2 += d * d
				}
			}
			m32, r32 := float32(mu), float32(1/math.Sqrt(v2/m+l.epsilon))
			mean[r*g.groups+gr], inv[r*g.groups+gr] = m32, r32
			for ch := gr * k; ch < (gr+1)*k; ch++ {
				a := r32
				if gamma != nil {
					a *= gamma[ch]
				}
				sc[ch], sh[ch] = a, -m32*a
				if beta != nil {
					sh[ch] += beta[ch]
				}
			}
			groupApply(xr, yr, g, gr, k, sc, sh)
		}
	}
}

func (l *groupNorm) backward(c *call) {
	g := l.state(c)
	k := g.ch / g.groups
	runLen, sample := k*g.inner, g.outer*g.ch*g.inner
	m := float64(g.outer * runLen)
	mean, inv := c.buf(0, c.rows*g.groups), c.buf(1, c.rows*g.groups)
	a, b := c.buf(2, g.ch), c.buf(3, g.ch)
	gamma, _ := l.params(c.w)
	var dgamma, dbeta []float32
	j := 0
	if l.scale {
		dgamma = c.dw[j]
		j++
	}
	if l.center {
		dbeta = c.dw[j]
	}
	x, dy, dx := c.x[0], c.dy[0], c.dx[0]
	for r := 0; r < c.rows; r++ {
		xr, dyr := x[r*sample:(r+1)*sample], dy[r*sample:(r+1)*sample]
		clear(g.s)
		clear(g.sx)
		for gr := 0; gr < g.groups; gr++ {
			mu := mean[r*g.groups+gr]
			s, sx := g.s[gr*k:(gr+1)*k], g.sx[gr*k:(gr+1)*k]
			for o := 0; o < g.outer; o++ {
				at := (o*g.ch + gr*k) * g.inner
				xs, ds := xr[at:at+runLen], dyr[at:at+runLen]
				if g.inner == 1 {
					for t, v := range xs {
						d := float64(ds[t])
						s[t] += d
						sx[t] += d * float64(v-mu)
					}
					continue
				}
				for kk := 0; kk < k; kk++ {
					var a, b float64
					dk := ds[kk*g.inner : (kk+1)*g.inner]
					for i, v := range xs[kk*g.inner : (kk+1)*g.inner] {
						d := float64(dk[i])
						a += d
						b += d * float64(v-mu)
					}
					s[kk] += a
					sx[kk] += b
				}
			}
		}
		for gr := 0; gr < g.groups; gr++ {
			mu, rr := mean[r*g.groups+gr], float64(inv[r*g.groups+gr])
			// sg = Σ γ dy, sgx = Σ γ dy x̂ over the group.
			var sg, sgx float64
			for ch := gr * k; ch < (gr+1)*k; ch++ {
				s, sx := g.s[ch], g.sx[ch]*rr
				if dgamma != nil {
					dgamma[ch] += float32(sx)
				}
				if dbeta != nil {
					dbeta[ch] += float32(s)
				}
				if gamma != nil {
					s *= float64(gamma[ch])
					sx *= float64(gamma[ch])
				}
				sg += s
				sgx += sx
			}
			if dx == nil {
				continue
			}
			// dx = r γ_c dy - r Σg/M - r² (x - μ) Σ(g x̂)/M
			//    = a_c·dy + b + d·(x - μ).
			d := -rr * rr * sgx / m
			bc := -rr * sg / m
			for ch := gr * k; ch < (gr+1)*k; ch++ {
				ac := rr
				if gamma != nil {
					ac *= float64(gamma[ch])
				}
				a[ch], b[ch] = float32(ac), float32(bc)
			}
			groupAffine2(dyr, xr, dx[r*sample:(r+1)*sample], g, gr, k, a, b, float32(d), mu)
		}
	}
}

// groupAffine2 sets dx = dy·a_c + b_c + d·(x - μ) over one group's runs.
func groupAffine2(dy, x, dx []float32, g *gnState, gr, k int, a, b []float32, d, mu float32) {
	runLen := k * g.inner
	ag, bg := a[gr*k:(gr+1)*k], b[gr*k:(gr+1)*k]
	for o := 0; o < g.outer; o++ {
		at := (o*g.ch + gr*k) * g.inner
		ds, xs, dxs := dy[at:at+runLen], x[at:at+runLen], dx[at:at+runLen]
		if g.inner == 1 {
			for t, v := range ds {
				dxs[t] = v*ag[t] + bg[t] + d*(xs[t]-mu)
			}
			continue
		}
		for kk := 0; kk < k; kk++ {
			sc, sh := ag[kk], bg[kk]
			lo, hi := kk*g.inner, (kk+1)*g.inner
			for i, v := range ds[lo:hi] {
				dxs[lo+i] = v*sc + sh + d*(xs[lo+i]-mu)
			}
		}
	}
}

// outputMasks: GroupNormalization passes its input's mask on (Keras' supports_masking).
func (l *groupNorm) outputMasks([]bool) []int { return passMask(1) }
