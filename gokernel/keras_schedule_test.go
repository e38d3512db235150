package gokernel

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

type scheduleFixture struct {
	Keras     string `json:"keras"`
	Schedules []struct {
		Name   string          `json:"name"`
		Config json.RawMessage `json:"config"`
		Steps  []int64         `json:"steps"`
		Rates  []float64       `json:"rates"`
	} `json:"schedules"`
	Optimizers []struct {
		Name    string          `json:"name"`
		Config  json.RawMessage `json:"config"`
		Params  []kerasTensor   `json:"params"`
		Grads   [][]kerasTensor `json:"grads"`
		After1  []kerasTensor   `json:"after1"`
		After10 []kerasTensor   `json:"after10"`
		Rates   []float64       `json:"rates"`
	} `json:"optimizers"`
}

// TestKerasScheduleParity compares every schedule's rate with Keras'
// schedule(step) (testdata/keras/schedules.json) at every step up to 120
// and at far ones, within 1e-7 (relative above 1).
func TestKerasScheduleParity(t *testing.T) {
	var fix scheduleFixture
	readKerasFixture(t, "schedules.json", &fix)
	if len(fix.Schedules) == 0 {
		t.Fatal("no schedules in schedules.json")
	}
	seen := map[string]bool{}
	for _, c := range fix.Schedules {
		t.Run(c.Name, func(t *testing.T) {
			s, err := NewSchedule(c.Config)
			if err != nil {
				t.Fatalf("NewSchedule(%s): %v", c.Config, err)
			}
			seen[s.ClassName()] = true
			bad := 0
			for i, step := range c.Steps {
				got, want := float64(s.Rate(step)), c.Rates[i]
				if math.Abs(got-want) > 1e-7*max(1, math.Abs(want)) {
					t.Errorf("step %d: rate %.9g; Keras %.9g (diff %.3g)", step, got, want, got-want)
					if bad++; bad > 5 {
						t.FailNow()
					}
				}
			}
		})
	}
	for _, n := range ScheduleNames() {
		if !seen[n] {
			t.Errorf("schedule %s has no case in schedules.json", n)
		}
	}
}

// TestKerasScheduledOptimizerParity runs optimizers whose learning_rate is a
// schedule: the rate before each step is Keras' (1e-7), and the parameters
// after 1 and 10 steps are Keras' (1e-5): the schedule is read at the
// optimizer's iterations, for the weight decay as for the update.
func TestKerasScheduledOptimizerParity(t *testing.T) {
	var fix scheduleFixture
	readKerasFixture(t, "schedules.json", &fix)
	if len(fix.Optimizers) == 0 {
		t.Fatal("no optimizers in schedules.json")
	}
	for _, c := range fix.Optimizers {
		t.Run(c.Name, func(t *testing.T) {
			opt, err := NewOptimizer(c.Config)
			if err != nil {
				t.Fatalf("NewOptimizer(%s): %v", c.Config, err)
			}
			params := copyData(c.Params)
			for step, g := range c.Grads {
				if got, want := float64(opt.LearningRate()), c.Rates[step]; math.Abs(got-want) > 1e-7 {
					t.Errorf("before step %d: learning rate %.9g; Keras %.9g", step+1, got, want)
				}
				if err := opt.Apply(params, copyData(g)); err != nil {
					t.Fatalf("step %d: %v", step+1, err)
				}
				switch step + 1 {
				case 1:
					compareTensors(t, "after 1 step", params, c.After1, 1e-5)
				case 10:
					compareTensors(t, "after 10 steps", params, c.After10, 1e-5)
				}
			}
		})
	}
}

// TestOptimizerStepDrivesSchedule checks SetStep: the schedule reads the
// step it sets, advancing by the stride per Apply, while the optimizer's
// own iterations (its State, Adam's bias correction) count its own steps;
// and a state restored without SetStep continues the schedule at its
// iteration.
func TestOptimizerStepDrivesSchedule(t *testing.T) {
	cfg := []byte(`{"class_name":"Adam","config":{"learning_rate":{"class_name":"ExponentialDecay","config":{"initial_learning_rate":0.1,"decay_steps":10,"decay_rate":0.5}}}}`)
	sched, err := NewSchedule([]byte(`{"class_name":"ExponentialDecay","config":{"initial_learning_rate":0.1,"decay_steps":10,"decay_rate":0.5}}`))
	if err != nil {
		t.Fatal(err)
	}
	params := [][]float32{{1, 2, 3}}
	grads := [][]float32{{0.1, -0.2, 0.3}}

	o, err := NewOptimizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Step(); got != 0 {
		t.Fatalf("Step() of a new optimizer = %d; want 0", got)
	}
	o.SetStep(41, 4) // worker 1 of 4, global step 40 at the epoch's start
	for k := range 3 {
		want := 41 + 4*int64(k)
		if got := o.Step(); got != want {
			t.Fatalf("before apply %d: Step() = %d; want %d", k+1, got, want)
		}
		if got, w := o.LearningRate(), sched.Rate(want); got != w {
			t.Fatalf("before apply %d: LearningRate() = %v; want schedule(%d) = %v", k+1, got, want, w)
		}
		if err := o.Apply(params, grads); err != nil {
			t.Fatal(err)
		}
	}
	st := o.State()
	if st[0].Name != "iteration" || st[0].Data[0] != 3 {
		t.Fatalf("State()[0] = %v; want iteration 3 (the optimizer's own steps)", st[0])
	}

	// A second optimizer restored from the state, not driven: the
	// schedule continues at its iteration, as in Keras.
	o2, err := NewOptimizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := o2.SetState(st); err != nil {
		t.Fatal(err)
	}
	if got := o2.Step(); got != 3 {
		t.Fatalf("restored Step() = %d; want 3", got)
	}
	if got, w := o2.LearningRate(), sched.Rate(3); got != w {
		t.Fatalf("restored LearningRate() = %v; want %v", got, w)
	}

	// Driven and undriven optimizers step alike from the same state when
	// the step is the same: the rate is all SetStep changes.
	a, _ := NewOptimizer(cfg)
	b, _ := NewOptimizer(cfg)
	pa := [][]float32{{1, 2, 3}}
	pb := [][]float32{{1, 2, 3}}
	b.SetStep(0, 1)
	for range 5 {
		if err := a.Apply(pa, grads); err != nil {
			t.Fatal(err)
		}
		if err := b.Apply(pb, grads); err != nil {
			t.Fatal(err)
		}
	}
	for j := range pa[0] {
		if pa[0][j] != pb[0][j] {
			t.Fatalf("SetStep(0, 1) changed the updates: %v vs %v", pa[0], pb[0])
		}
	}
}

func TestSetLearningRate(t *testing.T) {
	o, err := NewOptimizer([]byte(`{"class_name":"SGD","config":{"learning_rate":0.5}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := o.LearningRate(); got != 0.5 {
		t.Fatalf("LearningRate() = %v; want 0.5", got)
	}
	if err := o.SetLearningRate(0.25); err != nil {
		t.Fatal(err)
	}
	p := [][]float32{{1}}
	if err := o.Apply(p, [][]float32{{2}}); err != nil {
		t.Fatal(err)
	}
	if got, want := p[0][0], float32(1-0.25*2); got != want {
		t.Fatalf("after a step at rate 0.25: %v; want %v", got, want)
	}
	for _, bad := range []float32{-1, float32(math.NaN()), float32(math.Inf(1))} {
		if err := o.SetLearningRate(bad); err == nil || !strings.Contains(err.Error(), "learning rate") {
			t.Errorf("SetLearningRate(%v): err %v; want an error about the learning rate", bad, err)
		}
	}
	s, err := NewOptimizer([]byte(`{"class_name":"SGD","config":{"learning_rate":{"class_name":"CosineDecay","config":{"initial_learning_rate":0.1,"decay_steps":10}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetLearningRate(0.01); err == nil || !strings.Contains(err.Error(), "CosineDecay schedule") {
		t.Fatalf("SetLearningRate on a scheduled optimizer: err %v; want a refusal naming the schedule", err)
	}
}

func TestNewScheduleErrors(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`{"class_name":"Nope","config":{}}`, `unknown schedule "Nope"`},
		{`{"module":"my.schedules","class_name":"CosineDecay","config":{}}`, `module "my.schedules"`},
		{`{"class_name":"MySchedule","config":{},"registered_name":"Custom>MySchedule"}`, "registered_name"},
		{`{"class_name":"ExponentialDecay","config":{"initial_learning_rate":0.1,"decay_steps":0,"decay_rate":0.9}}`, "decay_steps must be > 0"},
		{`{"class_name":"ExponentialDecay","config":{"decay_steps":10,"decay_rate":0.9}}`, "initial_learning_rate is required"},
		{`{"class_name":"CosineDecay","config":{"initial_learning_rate":0.1,"decay_steps":10,"beta":1}}`, "unsupported argument(s) beta"},
		{`{"class_name":"PiecewiseConstantDecay","config":{"boundaries":[1,2],"values":[1,2]}}`, "one entry less than values"},
		{`{"class_name":"PiecewiseConstantDecay","config":{"boundaries":[5,2],"values":[1,2,3]}}`, "increase strictly"},
		{`{"class_name":"PolynomialDecay","config":{"initial_learning_rate":"a","decay_steps":10}}`, "initial_learning_rate: want a number"},
		{`{"class_name":"CosineDecay","config":{"initial_learning_rate":0.1,"decay_steps":10,"warmup_steps":-1}}`, "warmup_steps must be >= 0"},
	} {
		_, err := NewSchedule([]byte(tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "gokernel: schedule") {
			t.Errorf("NewSchedule(%s): err %v; want one containing %q", tc.config, err, tc.want)
		}
	}
}
