package gokernel

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
)

// initSpec is a Keras weight initializer. The variance-scaling family draws
// with n = fan_in, fan_out or their mean (fan_in and fan_out of a Dense
// kernel (in, out) are in and out):
//
//	uniform            U(-√(3·scale/n), √(3·scale/n))
//	truncated_normal   N(0, σ²) redrawn outside ±2σ, σ = √(scale/n)/0.87962566103423978
//	untruncated_normal N(0, scale/n)
//
// glorot_uniform (the default) is (1, fan_avg, uniform), glorot_normal
// (1, fan_avg, truncated_normal), he_normal (2, fan_in, truncated_normal),
// he_uniform (2, fan_in, uniform), lecun_normal (1, fan_in,
// truncated_normal), lecun_uniform (1, fan_in, uniform). random_normal is
// N(mean 0, stddev 0.05), random_uniform U(-0.05, 0.05), truncated_normal
// N(0, 0.05²) redrawn outside ±2σ, zeros, ones, constant(value 0).
//
// Draws come from a Go PCG generator seeded by the model seed, the tensor's
// position and the initializer's own seed: reproducible, not the numbers
// Keras draws.
type initSpec struct {
	kind               string // "variance_scaling", "random_normal", "random_uniform", "truncated_normal", "constant"
	scale              float64
	mode, distribution string
	mean, stddev       float64
	minval, maxval     float64
	value              float64
	seed               int64
	hasSeed            bool
	kerasName          string
	gain               float64 // orthogonal
	// forgetBias, if not 0, is an LSTM's unit_forget_bias: values
	// [forgetBias, 2·forgetBias) (the forget gate's biases) are ones.
	forgetBias int
}

var initDefaults = map[string]initSpec{
	"glorot_uniform":   {kind: "variance_scaling", scale: 1, mode: "fan_avg", distribution: "uniform"},
	"glorot_normal":    {kind: "variance_scaling", scale: 1, mode: "fan_avg", distribution: "truncated_normal"},
	"he_normal":        {kind: "variance_scaling", scale: 2, mode: "fan_in", distribution: "truncated_normal"},
	"he_uniform":       {kind: "variance_scaling", scale: 2, mode: "fan_in", distribution: "uniform"},
	"lecun_normal":     {kind: "variance_scaling", scale: 1, mode: "fan_in", distribution: "truncated_normal"},
	"lecun_uniform":    {kind: "variance_scaling", scale: 1, mode: "fan_in", distribution: "uniform"},
	"variance_scaling": {kind: "variance_scaling", scale: 1, mode: "fan_in", distribution: "truncated_normal"},
	"random_normal":    {kind: "random_normal", stddev: 0.05},
	"random_uniform":   {kind: "random_uniform", minval: -0.05, maxval: 0.05},
	"truncated_normal": {kind: "truncated_normal", stddev: 0.05},
	"zeros":            {kind: "constant"},
	"ones":             {kind: "constant", value: 1},
	"constant":         {kind: "constant"},
	"orthogonal":       {kind: "orthogonal", gain: 1},
}

// snake turns a Keras class name like "GlorotUniform" into "glorot_uniform".
func snake(class string) string {
	var b strings.Builder
	for i, r := range class {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func parseInit(c *obj, key, def string) (initSpec, error) {
	raw := c.get(key)
	name := def
	var cfg *obj
	if !isNull(raw) {
		if err := json.Unmarshal(raw, &name); err != nil {
			o, err := newObj(c.where+": "+key, raw)
			if err != nil {
				return initSpec{}, err
			}
			cls, err := o.str("class_name", "")
			if err != nil {
				return initSpec{}, err
			}
			o.ignore("module", "registered_name")
			if cfg, err = newObj(c.where+": "+key+" "+cls, o.get("config")); err != nil {
				return initSpec{}, err
			}
			if err := o.done(); err != nil {
				return initSpec{}, err
			}
			name = snake(cls)
		}
	}
	s, ok := initDefaults[name]
	if !ok {
		return initSpec{}, c.errf("%s %q is not supported", key, name)
	}
	s.kerasName = name
	if cfg == nil {
		return s, nil
	}
	var err error
	if s.seed, s.hasSeed, err = cfg.integer("seed"); err != nil {
		return s, err
	}
	for _, k := range []string{"input_axes", "output_axes"} {
		if err := cfg.mustBe(k); err != nil {
			return s, err
		}
	}
	num := func(k string, p *float64) {
		if err == nil {
			*p, err = cfg.num(k, *p)
		}
	}
	switch s.kind {
	case "variance_scaling":
		if name == "variance_scaling" {
			num("scale", &s.scale)
			if err == nil {
				s.mode, err = cfg.str("mode", s.mode)
			}
			if err == nil {
				s.distribution, err = cfg.str("distribution", s.distribution)
			}
			if err == nil && s.mode != "fan_in" && s.mode != "fan_out" && s.mode != "fan_avg" {
				err = cfg.errf("mode %q is not supported", s.mode)
			}
			if err == nil && s.distribution == "normal" {
				s.distribution = "truncated_normal"
			}
			if err == nil && s.distribution != "uniform" && s.distribution != "truncated_normal" && s.distribution != "untruncated_normal" {
				err = cfg.errf("distribution %q is not supported", s.distribution)
			}
		}
	case "random_normal", "truncated_normal":
		num("mean", &s.mean)
		num("stddev", &s.stddev)
	case "random_uniform":
		num("minval", &s.minval)
		num("maxval", &s.maxval)
	case "constant":
		if name == "constant" {
			num("value", &s.value)
		}
	case "orthogonal":
		num("gain", &s.gain)
	}
	if err != nil {
		return s, err
	}
	return s, cfg.done()
}

// fill draws the initial values of a tensor with the given fans.
func (s initSpec) fill(data []float32, fanIn, fanOut int, rng *rand.Rand) {
	s.fillKind(data, fanIn, fanOut, rng)
	if u := s.forgetBias; u > 0 {
		for i := u; i < 2*u && i < len(data); i++ {
			data[i] = 1
		}
	}
}

func (s initSpec) fillKind(data []float32, fanIn, fanOut int, rng *rand.Rand) {
	truncated := func(mean, sd float64) float32 {
		for {
			v := rng.NormFloat64()
			if math.Abs(v) <= 2 {
				return float32(mean + sd*v)
			}
		}
	}
	switch s.kind {
	case "constant":
		for i := range data {
			data[i] = float32(s.value)
		}
	case "random_normal":
		for i := range data {
			data[i] = float32(s.mean + s.stddev*rng.NormFloat64())
		}
	case "truncated_normal":
		for i := range data {
			data[i] = truncated(s.mean, s.stddev)
		}
	case "random_uniform":
		for i := range data {
			data[i] = float32(s.minval + (s.maxval-s.minval)*rng.Float64())
		}
	case "variance_scaling":
		n := float64(fanIn)
		switch s.mode {
		case "fan_out":
			n = float64(fanOut)
		case "fan_avg":
			n = float64(fanIn+fanOut) / 2
		}
		n = math.Max(1, n)
		switch s.distribution {
		case "uniform":
			limit := math.Sqrt(3 * s.scale / n)
			for i := range data {
				data[i] = float32(limit * (2*rng.Float64() - 1))
			}
		case "truncated_normal":
			sd := math.Sqrt(s.scale/n) / 0.87962566103423978
			for i := range data {
				data[i] = truncated(0, sd)
			}
		case "untruncated_normal":
			sd := math.Sqrt(s.scale / n)
			for i := range data {
				data[i] = float32(sd * rng.NormFloat64())
			}
		}
	case "orthogonal":
		orthogonal(data, fanIn, s.gain, rng)
	default:
		panic("gokernel: unknown initializer kind " + s.kind)
	}
}

// regSpec is a Keras weight regularizer: it adds
//
//	l1·Σ|w| + l2·Σw²
//
// to the loss, and l1·sign(w) + 2·l2·w to the gradient.
type regSpec struct {
	l1, l2 float64
}

func (r regSpec) zero() bool { return r.l1 == 0 && r.l2 == 0 }

func parseReg(c *obj, key string) (regSpec, error) {
	raw := c.get(key)
	if isNull(raw) {
		return regSpec{}, nil
	}
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		switch name {
		case "l1":
			return regSpec{l1: 0.01}, nil
		case "l2":
			return regSpec{l2: 0.01}, nil
		case "l1_l2", "l1l2":
			return regSpec{}, nil
		}
		return regSpec{}, c.errf("%s %q is not supported (L1, L2, L1L2 are)", key, name)
	}
	o, err := newObj(c.where+": "+key, raw)
	if err != nil {
		return regSpec{}, err
	}
	cls, err := o.str("class_name", "")
	if err != nil {
		return regSpec{}, err
	}
	o.ignore("module", "registered_name")
	cfg, err := newObj(c.where+": "+key+" "+cls, o.get("config"))
	if err != nil {
		return regSpec{}, err
	}
	if err := o.done(); err != nil {
		return regSpec{}, err
	}
	var r regSpec
	switch cls {
	case "L1":
		r.l1, err = cfg.num("l1", 0.01)
	case "L2":
		r.l2, err = cfg.num("l2", 0.01)
	case "L1L2":
		if r.l1, err = cfg.num("l1", 0); err == nil {
			r.l2, err = cfg.num("l2", 0)
		}
	default:
		return r, c.errf("%s %s is not supported (L1, L2, L1L2 are)", key, cls)
	}
	if err != nil {
		return r, err
	}
	return r, cfg.done()
}

// penalty is l1·Σ|w| + l2·Σw².
func (r regSpec) penalty(w []float32) float64 {
	var a, b float64
	for _, v := range w {
		a += math.Abs(float64(v))
		b += float64(v) * float64(v)
	}
	return r.l1*a + r.l2*b
}

// addGrad adds l1·sign(w) + 2·l2·w to g.
func (r regSpec) addGrad(w, g []float32) {
	l1, l2 := float32(r.l1), float32(2*r.l2)
	for i, v := range w {
		d := l2 * v
		if v > 0 {
			d += l1
		} else if v < 0 {
			d -= l1
		}
		g[i] += d
	}
}

// orthogonal fills data, viewed as a rows×(len/rows) matrix (rows =
// fan_in: the product of every axis but the last), with gain·Q as Keras'
// Orthogonal does: Q from the QR decomposition of a standard normal
// matrix of shape (max, min) of the two, its columns' signs those of R's
// diagonal, transposed when rows < columns. The decomposition is modified
// Gram-Schmidt in float64.
func orthogonal(data []float32, rows int, gain float64, rng *rand.Rand) {
	if rows < 1 || len(data)%rows != 0 {
		rows = len(data)
	}
	cols := len(data) / rows
	n, k := max(rows, cols), min(rows, cols) // a is n×k
	a := make([]float64, n*k)
	for i := range a {
		a[i] = rng.NormFloat64()
	}
	for j := 0; j < k; j++ {
		for p := 0; p < j; p++ {
			var dot float64
			for i := 0; i < n; i++ {
				dot += a[i*k+p] * a[i*k+j]
			}
			for i := 0; i < n; i++ {
				a[i*k+j] -= dot * a[i*k+p]
			}
		}
		var norm float64
		for i := 0; i < n; i++ {
			norm += a[i*k+j] * a[i*k+j]
		}
		norm = math.Sqrt(norm)
		if norm == 0 {
			norm = 1
		}
		// R's diagonal is norm > 0: the sign correction keeps Q's column.
		for i := 0; i < n; i++ {
			a[i*k+j] /= norm
		}
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			v := a[i*k+j] // rows ≥ cols: Q itself
			if rows < cols {
				v = a[j*k+i] // Qᵀ
			}
			data[i*cols+j] = float32(gain * v)
		}
	}
}
