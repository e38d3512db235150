package gokernel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Schedule is a Keras 3 learning-rate schedule
// (keras.optimizers.schedules): the learning rate of each optimizer step.
// An optimizer whose learning_rate is a schedule calls Rate with the step
// of each Apply (see Optimizer.SetStep) before its update.
//
// The schedules compute in float32, operation by operation, as Keras does
// on a float32 initial_learning_rate (transcendental functions rounded
// from float64), so that Rate(step) equals Keras' schedule(step).
type Schedule interface {
	// Rate returns the learning rate of step (from 0, the first step).
	Rate(step int64) float32
	// ClassName is the schedule's Keras class name.
	ClassName() string
}

// Errors reported by NewSchedule start with this prefix.
const schedPrefix = "gokernel: schedule"

// scheduleKinds maps a Keras schedule class name to its parser.
var scheduleKinds = map[string]func(p *schedArgs) Schedule{
	"ExponentialDecay":       parseExponentialDecay,
	"PiecewiseConstantDecay": parsePiecewiseConstantDecay,
	"PolynomialDecay":        parsePolynomialDecay,
	"InverseTimeDecay":       parseInverseTimeDecay,
	"CosineDecay":            parseCosineDecay,
	"CosineDecayRestarts":    parseCosineDecayRestarts,
}

// ScheduleNames lists the supported schedules' Keras class names.
func ScheduleNames() []string {
	names := make([]string, 0, len(scheduleKinds))
	for n := range scheduleKinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// NewSchedule builds a learning-rate schedule from its Keras 3
// serialization, as an optimizer's learning_rate holds it:
//
//	{"module": "keras.optimizers.schedules", "class_name": "CosineDecay", "config": {...}, "registered_name": null}
//
// (module and registered_name optional). Arguments missing from config
// take the Keras defaults; an unknown schedule or argument, or a value
// Keras would refuse (decay_steps ≤ 0, boundaries and values of
// mismatched lengths), is an error naming it.
func NewSchedule(config []byte) (Schedule, error) {
	var ser struct {
		Module         *string                    `json:"module"`
		ClassName      string                     `json:"class_name"`
		Config         map[string]json.RawMessage `json:"config"`
		RegisteredName *string                    `json:"registered_name"`
	}
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ser); err != nil {
		return nil, fmt.Errorf("%s: parsing config: %w", schedPrefix, err)
	}
	if ser.Module != nil && *ser.Module != "keras.optimizers.schedules" {
		return nil, fmt.Errorf("%s: module %q is not supported, want \"keras.optimizers.schedules\"", schedPrefix, *ser.Module)
	}
	if ser.RegisteredName != nil && *ser.RegisteredName != ser.ClassName {
		return nil, fmt.Errorf("%s: registered_name %q is not supported (a custom schedule cannot run in Go)", schedPrefix, *ser.RegisteredName)
	}
	parse, ok := scheduleKinds[ser.ClassName]
	if !ok {
		return nil, fmt.Errorf("%s: unknown schedule %q (supported: %s)", schedPrefix, ser.ClassName, strings.Join(ScheduleNames(), ", "))
	}
	p := &schedArgs{class: ser.ClassName, args: ser.Config, used: map[string]bool{}}
	s := parse(p)
	p.str("name")
	if p.err != nil {
		return nil, p.err
	}
	var unknown []string
	for k := range p.args {
		if !p.used[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("%s %s: unsupported argument(s) %s", schedPrefix, ser.ClassName, strings.Join(unknown, ", "))
	}
	return s, nil
}

// schedArgs reads a schedule's config, remembering the first error and
// the keys read.
type schedArgs struct {
	class string
	args  map[string]json.RawMessage
	used  map[string]bool
	err   error
}

func (p *schedArgs) fail(format string, a ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("%s %s: "+format, append([]any{schedPrefix, p.class}, a...)...)
	}
}

func (p *schedArgs) raw(key string) (json.RawMessage, bool) {
	p.used[key] = true
	v, ok := p.args[key]
	if !ok || string(bytes.TrimSpace(v)) == "null" {
		return nil, false
	}
	return v, true
}

// float reads a number; required ones fail when absent.
func (p *schedArgs) float(key string, def float64, required bool) float64 {
	v, ok := p.raw(key)
	if !ok {
		if required {
			p.fail("argument %s is required", key)
		}
		return def
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil {
		p.fail("argument %s: want a number, got %s", key, v)
		return def
	}
	return f
}

func (p *schedArgs) optFloat(key string) (float64, bool) {
	if _, ok := p.raw(key); !ok {
		return 0, false
	}
	return p.float(key, 0, false), true
}

func (p *schedArgs) floats(key string) []float64 {
	v, ok := p.raw(key)
	if !ok {
		p.fail("argument %s is required", key)
		return nil
	}
	var f []float64
	if err := json.Unmarshal(v, &f); err != nil {
		p.fail("argument %s: want a list of numbers, got %s", key, v)
	}
	return f
}

func (p *schedArgs) bool(key string) bool {
	v, ok := p.raw(key)
	if !ok {
		return false
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		p.fail("argument %s: want true or false, got %s", key, v)
	}
	return b
}

func (p *schedArgs) str(key string) {
	if v, ok := p.raw(key); ok {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			p.fail("argument %s: want a string, got %s", key, v)
		}
	}
}

// positive reads a required count of steps, which Keras wants > 0.
func (p *schedArgs) positive(key string) float32 {
	v := p.float(key, 1, true)
	if p.err == nil && !(v > 0) {
		p.fail("argument %s must be > 0, got %v", key, v)
	}
	return float32(v)
}

// The float32 operations of the schedules. Go evaluates float32 + − × ÷
// in single precision, as Keras' backends do (a product followed by a sum
// is converted to float32 explicitly, which keeps the compiler from fusing
// them); the functions below round the float64 result once.
func pow32(x, y float32) float32 { return float32(math.Pow(float64(x), float64(y))) }
func cos32(x float32) float32    { return float32(math.Cos(float64(x))) }
func log32(x float32) float32    { return float32(math.Log(float64(x))) }
func floor32(x float32) float32  { return float32(math.Floor(float64(x))) }
func ceil32(x float32) float32   { return float32(math.Ceil(float64(x))) }

// pi32 is math.pi as a float32, as Keras' ops.array(math.pi, dtype) makes it.
const pi32 = float32(math.Pi)

// ExponentialDecay is keras.optimizers.schedules.ExponentialDecay:
//
//	rate(step) = initial_learning_rate · decay_rate^(step / decay_steps)
//
// with the exponent floored when staircase is true.
type ExponentialDecay struct {
	Initial, DecaySteps, DecayRate float32
	Staircase                      bool
}

func parseExponentialDecay(p *schedArgs) Schedule {
	return &ExponentialDecay{Initial: float32(p.float("initial_learning_rate", 0, true)), DecaySteps: p.positive("decay_steps"),
		DecayRate: float32(p.float("decay_rate", 0, true)), Staircase: p.bool("staircase")}
}

// Rate implements Schedule.
func (s *ExponentialDecay) Rate(step int64) float32 {
	e := float32(step) / s.DecaySteps
	if s.Staircase {
		e = floor32(e)
	}
	return s.Initial * pow32(s.DecayRate, e)
}

// ClassName implements Schedule.
func (*ExponentialDecay) ClassName() string { return "ExponentialDecay" }

// PiecewiseConstantDecay is keras.optimizers.schedules.PiecewiseConstantDecay:
// values[0] while step ≤ boundaries[0], values[i] while boundaries[i-1] <
// step ≤ boundaries[i], values[last] after the last boundary. Boundaries
// compare as integer steps (Keras casts them to the step's integer type).
type PiecewiseConstantDecay struct {
	Boundaries []int64
	Values     []float32
}

func parsePiecewiseConstantDecay(p *schedArgs) Schedule {
	b, v := p.floats("boundaries"), p.floats("values")
	if p.err != nil {
		return nil
	}
	if len(b) != len(v)-1 {
		p.fail("boundaries (%d) must have one entry less than values (%d)", len(b), len(v))
		return nil
	}
	s := &PiecewiseConstantDecay{Boundaries: make([]int64, len(b)), Values: make([]float32, len(v))}
	for i, x := range b {
		s.Boundaries[i] = int64(x) // truncated, as a cast to an integer type does
		if i > 0 && s.Boundaries[i] <= s.Boundaries[i-1] {
			p.fail("boundaries must increase strictly, got %v", b)
		}
	}
	for i, x := range v {
		s.Values[i] = float32(x)
	}
	return s
}

// Rate implements Schedule.
func (s *PiecewiseConstantDecay) Rate(step int64) float32 {
	for i, b := range s.Boundaries {
		if step <= b {
			return s.Values[i]
		}
	}
	return s.Values[len(s.Values)-1]
}

// ClassName implements Schedule.
func (*PiecewiseConstantDecay) ClassName() string { return "PiecewiseConstantDecay" }

// PolynomialDecay is keras.optimizers.schedules.PolynomialDecay: with
// d = decay_steps,
//
//	cycle false: s = min(step, d)
//	cycle true:  d = d·ceil(step/d) (d itself at step 0)
//	rate(step) = (initial − end)·(1 − s/d)^power + end
//
// Defaults: end_learning_rate 1e-4, power 1, cycle false.
type PolynomialDecay struct {
	Initial, DecaySteps, End, Power float32
	Cycle                           bool
}

func parsePolynomialDecay(p *schedArgs) Schedule {
	return &PolynomialDecay{Initial: float32(p.float("initial_learning_rate", 0, true)), DecaySteps: p.positive("decay_steps"),
		End: float32(p.float("end_learning_rate", 0.0001, false)), Power: float32(p.float("power", 1, false)), Cycle: p.bool("cycle")}
}

// Rate implements Schedule.
func (s *PolynomialDecay) Rate(step int64) float32 {
	x, d := float32(step), s.DecaySteps
	if s.Cycle {
		if x != 0 {
			d *= ceil32(x / s.DecaySteps)
		}
	} else {
		x = min(x, d)
	}
	return float32((s.Initial-s.End)*pow32(1-x/d, s.Power)) + s.End
}

// ClassName implements Schedule.
func (*PolynomialDecay) ClassName() string { return "PolynomialDecay" }

// InverseTimeDecay is keras.optimizers.schedules.InverseTimeDecay:
//
//	rate(step) = initial_learning_rate / (1 + decay_rate · step/decay_steps)
//
// with step/decay_steps floored when staircase is true.
type InverseTimeDecay struct {
	Initial, DecaySteps, DecayRate float32
	Staircase                      bool
}

func parseInverseTimeDecay(p *schedArgs) Schedule {
	return &InverseTimeDecay{Initial: float32(p.float("initial_learning_rate", 0, true)), DecaySteps: p.positive("decay_steps"),
		DecayRate: float32(p.float("decay_rate", 0, true)), Staircase: p.bool("staircase")}
}

// Rate implements Schedule.
func (s *InverseTimeDecay) Rate(step int64) float32 {
	e := float32(step) / s.DecaySteps
	if s.Staircase {
		e = floor32(e)
	}
	return s.Initial / (1 + float32(s.DecayRate*e))
}

// ClassName implements Schedule.
func (*InverseTimeDecay) ClassName() string { return "InverseTimeDecay" }

// CosineDecay is keras.optimizers.schedules.CosineDecay, with an optional
// linear warmup. Without warmup_target:
//
//	s = min(step, decay_steps)
//	rate(step) = initial · ((1−α)·½(1 + cos(π·s/decay_steps)) + α)
//
// With warmup_target T over warmup_steps W: s = min(step, decay_steps+W);
// while s < W, rate = (T − initial)·s/W + initial; after, the decay above
// from T at step s − W.
type CosineDecay struct {
	Initial, DecaySteps, Alpha float32
	Warmup                     bool
	WarmupTarget, WarmupSteps  float32
	oneMinusAlpha              float32 // 1 − α in float64, rounded: Keras computes it in Python
}

func parseCosineDecay(p *schedArgs) Schedule {
	alpha := p.float("alpha", 0, false)
	s := &CosineDecay{Initial: float32(p.float("initial_learning_rate", 0, true)), DecaySteps: p.positive("decay_steps"),
		Alpha: float32(alpha), oneMinusAlpha: float32(1 - alpha)}
	if t, ok := p.optFloat("warmup_target"); ok {
		s.Warmup, s.WarmupTarget = true, float32(t)
	}
	s.WarmupSteps = float32(p.float("warmup_steps", 0, false))
	if s.WarmupSteps < 0 {
		p.fail("argument warmup_steps must be >= 0, got %v", s.WarmupSteps)
	}
	return s
}

// decay is the cosine decay from rate `from` at step x of DecaySteps.
func (s *CosineDecay) decay(x, from float32) float32 {
	c := 0.5 * (1 + cos32(pi32*(x/s.DecaySteps)))
	return from * (float32(s.oneMinusAlpha*c) + s.Alpha)
}

// Rate implements Schedule.
func (s *CosineDecay) Rate(step int64) float32 {
	x := float32(step)
	if !s.Warmup {
		return s.decay(min(x, s.DecaySteps), s.Initial)
	}
	x = min(x, s.DecaySteps+s.WarmupSteps)
	if x < s.WarmupSteps {
		return float32((s.WarmupTarget-s.Initial)*(x/s.WarmupSteps)) + s.Initial
	}
	return s.decay(x-s.WarmupSteps, s.WarmupTarget)
}

// ClassName implements Schedule.
func (*CosineDecay) ClassName() string { return "CosineDecay" }

// CosineDecayRestarts is keras.optimizers.schedules.CosineDecayRestarts
// (SGDR): with f = step/first_decay_steps, the restart i and the fraction
// of it done are
//
//	t_mul = 1:  i = floor(f),  f ← f − i
//	otherwise:  i = floor(log(1 − f(1 − t_mul)) / log(t_mul)),
//	            f ← (f − (1 − t_mulⁱ)/(1 − t_mul)) / t_mulⁱ
//	rate(step) = initial · ((1−α)·½·m_mulⁱ·(1 + cos(π·f)) + α)
//
// Defaults: t_mul 2, m_mul 1, alpha 0.
type CosineDecayRestarts struct {
	Initial, FirstDecaySteps, TMul, MMul, Alpha float32
}

func parseCosineDecayRestarts(p *schedArgs) Schedule {
	return &CosineDecayRestarts{Initial: float32(p.float("initial_learning_rate", 0, true)), FirstDecaySteps: p.positive("first_decay_steps"),
		TMul: float32(p.float("t_mul", 2, false)), MMul: float32(p.float("m_mul", 1, false)), Alpha: float32(p.float("alpha", 0, false))}
}

// Rate implements Schedule.
func (s *CosineDecayRestarts) Rate(step int64) float32 {
	f := float32(step) / s.FirstDecaySteps
	var i float32
	if s.TMul == 1 {
		i = floor32(f)
		f -= i
	} else {
		i = floor32(log32(1-float32(f*(1-s.TMul))) / log32(s.TMul))
		sum := (1 - pow32(s.TMul, i)) / (1 - s.TMul)
		f = (f - sum) / pow32(s.TMul, i)
	}
	c := 0.5 * pow32(s.MMul, i) * (1 + cos32(pi32*f))
	return s.Initial * (float32((1-s.Alpha)*c) + s.Alpha)
}

// ClassName implements Schedule.
func (*CosineDecayRestarts) ClassName() string { return "CosineDecayRestarts" }
