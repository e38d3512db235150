package ps

import (
	"context"
	"errors"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophas/gophas/gokernel"
)

func model2() []NamedTensor {
	return []NamedTensor{
		{Name: "dense/kernel", Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
		{Name: "dense/bias", Shape: []int{2}, Data: []float32{0, 0}},
	}
}

func newParams(t testing.TB, ws []NamedTensor, opts ...Option) *Params {
	t.Helper()
	p, err := NewParams(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetWeights(ws, false); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRegister(t testing.TB, p *Params, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := p.Register(n, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func flat(ts []NamedTensor) []float32 {
	var out []float32
	for _, t := range ts {
		out = append(out, t.Data...)
	}
	return out
}

func TestSynchronousAveragesExactly(t *testing.T) {
	p := newParams(t, model2(), WithMode(Synchronous))
	mustRegister(t, p, "a", "b", "c")
	pushes := map[string][][]float32{
		"a": {{1, 2, 3, 4}, {1, 1}},
		"b": {{3, 4, 5, 6}, {2, 2}},
		"c": {{5, 6, 7, 8}, {3, -9}},
	}
	var wg sync.WaitGroup
	for _, n := range []string{"a", "b", "c"} {
		if _, err := p.Push(n, 1, Delta, pushes[n]); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if v, err := p.WaitRound(context.Background(), 1); err != nil || v != 2 {
				t.Errorf("WaitRound(1) for %s = %d, %v; want 2, nil", n, v, err)
			}
		})
	}
	wg.Wait()
	ws, v := p.Weights()
	if got, want := flat(ws), []float32{1 + 3, 2 + 4, 3 + 5, 4 + 6, 2, -2}; !slices.Equal(got, want) || v != 2 {
		t.Errorf("weights after round 1 = %v (version %d); want %v (version 2)", got, v, want)
	}
}

func TestSynchronousWaitsForExpectedWorkers(t *testing.T) {
	p := newParams(t, model2(), WithMode(Synchronous), WithWorkers(2), WithRoundTimeout(50*time.Millisecond))
	mustRegister(t, p, "a")
	if _, err := p.Push("a", 1, Delta, [][]float32{{1, 1, 1, 1}, {1, 1}}); err != nil {
		t.Fatal(err)
	}
	if got := p.Version(); got != 1 {
		t.Fatalf("version after one of two expected workers pushed = %d; want 1", got)
	}
	_, err := p.WaitRound(context.Background(), 1)
	if !errors.Is(err, ErrRoundTimeout) || !strings.Contains(err.Error(), "1 never registered") {
		t.Errorf("WaitRound = %v; want ErrRoundTimeout saying one worker never registered", err)
	}
}

func TestSynchronousRoundTimesOutNamingMissing(t *testing.T) {
	p := newParams(t, model2(), WithMode(Synchronous), WithRoundTimeout(100*time.Millisecond))
	mustRegister(t, p, "w0", "w1", "w2")
	for _, n := range []string{"w1"} {
		if _, err := p.Push(n, 1, Delta, [][]float32{{1, 1, 1, 1}, {1, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	_, err := p.WaitRound(context.Background(), 1)
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("WaitRound took %v; want about 100ms", el)
	}
	if !errors.Is(err, ErrRoundTimeout) {
		t.Fatalf("WaitRound = %v; want ErrRoundTimeout", err)
	}
	if got := err.Error(); !strings.Contains(got, "[w0, w2]") {
		t.Errorf("error %q; want it to name missing workers [w0, w2]", got)
	}
	// A worker that finishes releases the round.
	if err := p.Done("w0"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Push("w2", 1, Delta, [][]float32{{3, 3, 3, 3}, {3, 3}}); err != nil {
		t.Fatal(err)
	}
	ws, v := p.Weights()
	if got, want := flat(ws), []float32{3, 4, 5, 6, 2, 2}; !slices.Equal(got, want) || v != 2 {
		t.Errorf("weights = %v (version %d); want %v (version 2)", got, v, want)
	}
}

func TestAsynchronousLosesNoUpdate(t *testing.T) {
	const workers, pushes = 32, 40
	for _, scale := range []bool{false, true} {
		p := newParams(t, []NamedTensor{{Name: "w", Shape: []int{3}, Data: make([]float32, 3)}}, WithMode(Asynchronous), WithWorkers(workers), WithScale(scale))
		var wg sync.WaitGroup
		for i := range workers {
			name := string(rune('A' + i))
			mustRegister(t, p, name)
			wg.Go(func() {
				for s := range pushes {
					if _, err := p.Push(name, uint64(s+1), Delta, [][]float32{{1, float32(i), 32}}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		ws, v := p.Weights()
		want := []float32{workers * pushes, pushes * workers * (workers - 1) / 2, 32 * workers * pushes}
		if scale {
			for i := range want {
				want[i] /= workers
			}
		}
		if got := flat(ws); !slices.Equal(got, want) || v != 1+workers*pushes {
			t.Errorf("scale %v: weights = %v version %d; want %v version %d", scale, got, v, want, 1+workers*pushes)
		}
	}
}

func TestHogwildAppliesWithoutLock(t *testing.T) {
	p := newParams(t, []NamedTensor{{Name: "w", Shape: []int{1000}, Data: make([]float32, 1000)}}, WithMode(Hogwild))
	var wg sync.WaitGroup
	for i := range 8 {
		name := string(rune('a' + i))
		mustRegister(t, p, name)
		wg.Go(func() {
			u := [][]float32{make([]float32, 1000)}
			for j := range u[0] {
				u[0][j] = 1
			}
			for s := range 20 {
				if _, err := p.Push(name, uint64(s), Delta, u); err != nil {
					t.Error(err)
				}
				if _, err := p.Snapshot(Dense, NoCompression); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	ws, v := p.Weights()
	if v != 1+8*20 {
		t.Errorf("version = %d; want %d", v, 1+8*20)
	}
	for _, x := range ws[0].Data {
		if x < 1 || x > 160 {
			t.Fatalf("weight %v; want within [1, 160]", x)
		}
	}
}

func TestDuplicatePushIgnored(t *testing.T) {
	for _, mode := range []Mode{Synchronous, Asynchronous, Hogwild} {
		t.Run(string(mode), func(t *testing.T) {
			p := newParams(t, model2(), WithMode(mode))
			mustRegister(t, p, "a")
			u := [][]float32{{1, 1, 1, 1}, {1, 1}}
			if r, err := p.Push("a", 1, Delta, u); err != nil || r.Duplicate {
				t.Fatalf("first push = %+v, %v; want applied", r, err)
			}
			// The retried task registers again and repeats step 1.
			mustRegister(t, p, "a")
			r, err := p.Push("a", 1, Delta, u)
			if err != nil || !r.Duplicate {
				t.Fatalf("repeated push = %+v, %v; want duplicate", r, err)
			}
			ws, _ := p.Weights()
			if got, want := flat(ws), []float32{2, 3, 4, 5, 1, 1}; !slices.Equal(got, want) {
				t.Errorf("weights = %v; want %v (applied once)", got, want)
			}
			st := p.Stats().Workers[0]
			if st.Applied != 1 || st.Duplicate != 1 || st.Registers != 2 {
				t.Errorf("stats = %+v; want 1 applied, 1 duplicate, 2 registers", st)
			}
		})
	}
}

func TestRefusedPushLeavesWeights(t *testing.T) {
	tests := []struct {
		name   string
		update [][]float32
		want   error
		nonfin uint64
	}{
		{"nan", [][]float32{{1, float32(math.NaN()), 1, 1}, {1, 1}}, ErrNonFinite, 1},
		{"inf", [][]float32{{1, 1, 1, 1}, {float32(math.Inf(-1)), 1}}, ErrNonFinite, 1},
		{"too few tensors", [][]float32{{1, 1, 1, 1}}, ErrShape, 0},
		{"too many tensors", [][]float32{{1, 1, 1, 1}, {1, 1}, {1}}, ErrShape, 0},
		{"short tensor", [][]float32{{1, 1, 1}, {1, 1}}, ErrShape, 0},
	}
	for _, mode := range []Mode{Synchronous, Asynchronous, Hogwild} {
		for _, tt := range tests {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				p := newParams(t, model2(), WithMode(mode))
				mustRegister(t, p, "a")
				_, err := p.Push("a", 1, Delta, tt.update)
				if !errors.Is(err, tt.want) {
					t.Errorf("Push = %v; want %v", err, tt.want)
				}
				ws, v := p.Weights()
				if got, want := flat(ws), flat(model2()); !slices.Equal(got, want) || v != 1 {
					t.Errorf("weights = %v version %d; want untouched %v version 1", got, v, want)
				}
				st := p.Stats().Workers[0]
				if st.Refused != 1 || st.NonFinite != tt.nonfin || st.Applied != 0 {
					t.Errorf("stats = %+v; want 1 refused, %d non-finite, 0 applied", st, tt.nonfin)
				}
			})
		}
	}
}

// sgd is a stateful test optimizer: params -= lr*grads, counting steps.
type sgd struct {
	lr    float32
	steps float32
}

func (o *sgd) Apply(params, grads [][]float32) error {
	for i := range params {
		for j := range params[i] {
			params[i][j] -= o.lr * grads[i][j]
		}
	}
	o.steps++
	return nil
}
func (o *sgd) State() []NamedTensor {
	return []NamedTensor{{Name: "steps", Shape: []int{1}, Data: []float32{o.steps}}}
}
func (o *sgd) SetState(s []NamedTensor) error { o.steps = s[0].Data[0]; return nil }

func TestGradientPushUsesServerOptimizer(t *testing.T) {
	o := &sgd{lr: 0.5}
	p := newParams(t, model2(), WithMode(Synchronous), WithOptimizer(o))
	mustRegister(t, p, "a", "b")
	if _, err := p.Push("a", 1, Gradient, [][]float32{{2, 2, 2, 2}, {2, 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Push("b", 1, Gradient, [][]float32{{4, 4, 4, 4}, {4, 4}}); err != nil {
		t.Fatal(err)
	}
	ws, _ := p.Weights()
	if got, want := flat(ws), []float32{-0.5, 0.5, 1.5, 2.5, -1.5, -1.5}; !slices.Equal(got, want) || o.steps != 1 {
		t.Errorf("weights = %v, optimizer steps %v; want %v, 1 step (averaged gradient)", got, o.steps, want)
	}
	q := newParams(t, model2())
	mustRegister(t, q, "a")
	if _, err := q.Push("a", 1, Gradient, [][]float32{{1, 1, 1, 1}, {1, 1}}); !errors.Is(err, ErrNoOptimizer) {
		t.Errorf("gradient push without optimizer = %v; want ErrNoOptimizer", err)
	}
}

func TestPushRules(t *testing.T) {
	p, _ := NewParams(WithMode(Synchronous))
	if _, err := p.Register("a", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Push("a", 1, Delta, nil); !errors.Is(err, ErrNoWeights) {
		t.Errorf("push before weights = %v; want ErrNoWeights", err)
	}
	if v, _ := p.SetWeights(model2(), true); v != 1 {
		t.Errorf("SetWeights(ifAbsent) on empty = version %d; want 1", v)
	}
	if v, _ := p.SetWeights([]NamedTensor{{Name: "x", Shape: []int{1}, Data: []float32{9}}}, true); v != 1 {
		t.Errorf("second SetWeights(ifAbsent) = version %d; want 1 (kept)", v)
	}
	if _, err := p.Push("b", 1, Delta, [][]float32{{1, 1, 1, 1}, {1, 1}}); !errors.Is(err, ErrUnknownWorker) {
		t.Errorf("push from unregistered = %v; want ErrUnknownWorker", err)
	}
	if _, err := p.Push("a", 7, Delta, [][]float32{{1, 1, 1, 1}, {1, 1}}); !errors.Is(err, ErrRoundNotOpen) {
		t.Errorf("push for a future round = %v; want ErrRoundNotOpen", err)
	}
	if _, err := NewParams(WithMode("eventual")); err == nil {
		t.Error("NewParams(mode eventual) succeeded; want error")
	}
}

// gokernel's optimizers are what a server keeps for gradient pushes.
var _ Optimizer = gokernel.Optimizer(nil)

// model3 has other shapes than model2: what a driver's load may install
// in the middle of a fit.
func model3() []NamedTensor {
	return []NamedTensor{
		{Name: "a/kernel", Shape: []int{3}, Data: []float32{1, 1, 1}},
		{Name: "a/bias", Shape: []int{1}, Data: []float32{0}},
		{Name: "b/kernel", Shape: []int{2}, Data: []float32{0, 0}},
	}
}

// TestSetWeightsDuringPushes replaces the weights with others of another
// shape while workers push updates shaped for the first ones, in every mode:
// a push is applied whole to weights of its shape or refused with ErrShape,
// and nothing panics (it used to: the shape was checked against one set of
// weights and the values added to the next).
func TestSetWeightsDuringPushes(t *testing.T) {
	for _, mode := range []Mode{Synchronous, Asynchronous, Hogwild} {
		t.Run(string(mode), func(t *testing.T) {
			p := newParams(t, model2(), WithMode(mode), WithRoundTimeout(time.Minute))
			workers := []string{"a", "b", "c", "d"}
			mustRegister(t, p, workers...)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var applied, refused sync.Map
			for _, n := range workers {
				wg.Go(func() {
					u := [][]float32{{1, 1, 1, 1}, {1, 1}}
					for step := uint64(1); ; step++ {
						select {
						case <-stop:
							return
						default:
						}
						s := step
						if mode == Synchronous {
							s = p.Version()
						}
						r, err := p.Push(n, s, Delta, u)
						switch {
						case err == nil && !r.Duplicate:
							applied.Store(n+strconv.FormatUint(step, 10), true)
						case errors.Is(err, ErrShape):
							refused.Store(n+strconv.FormatUint(step, 10), true)
						case err != nil && !errors.Is(err, ErrRoundNotOpen):
							t.Errorf("push %s/%d: %v", n, step, err)
							return
						}
					}
				})
			}
			n := func(m *sync.Map) (k int) { m.Range(func(any, any) bool { k++; return true }); return k }
			start := time.Now()
			for i := 0; ; i++ {
				ws := model3()
				if i%2 == 1 {
					ws = model2()
				}
				if _, err := p.SetWeights(ws, false); err != nil {
					t.Fatal(err)
				}
				runtime.Gosched()
				if i%2 == 1 && (time.Since(start) > 3*time.Second || time.Since(start) > 300*time.Millisecond && n(&applied) > 0 && n(&refused) > 0) {
					break
				}
			}
			close(stop)
			wg.Wait()
			ws, _ := p.Weights()
			if got, want := len(ws), len(model2()); got != want {
				t.Fatalf("%d tensors after the last SetWeights(model2); want %d", got, want)
			}
			for _, x := range flat(ws) {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("weights %v hold NaN or Inf", flat(ws))
				}
			}
			t.Logf("%d pushes applied, %d refused for their shape", n(&applied), n(&refused))
			if n(&refused) == 0 || n(&applied) == 0 {
				t.Error("no push was applied, or none refused for its shape: the test did not race SetWeights with pushes")
			}
		})
	}
}

// TestPushOverflowRefused: two finite pushes of MaxFloat32 would make the
// weights +Inf; the second is refused with a message naming the tensor and
// index, the weights keep the first, and the refusal counts as non-finite.
func TestPushOverflowRefused(t *testing.T) {
	big := float32(math.MaxFloat32)
	for _, mode := range []Mode{Asynchronous, Hogwild} {
		t.Run(string(mode), func(t *testing.T) {
			p := newParams(t, model2(), WithMode(mode))
			mustRegister(t, p, "a")
			u := [][]float32{{0, 0, 0, 0}, {0, big}}
			if _, err := p.Push("a", 1, Delta, u); err != nil {
				t.Fatal(err)
			}
			_, err := p.Push("a", 2, Delta, u)
			if !errors.Is(err, ErrOverflow) || !strings.Contains(err.Error(), `tensor 1 "dense/bias" index 1`) {
				t.Fatalf("second push of MaxFloat32 = %v; want ErrOverflow naming tensor 1 \"dense/bias\" index 1", err)
			}
			ws, v := p.Weights()
			if got, want := flat(ws), []float32{1, 2, 3, 4, 0, big}; !slices.Equal(got, want) || v != 2 {
				t.Errorf("weights = %v version %d; want %v version 2 (the first push only)", got, v, want)
			}
			if st := p.Stats().Workers[0]; st.Applied != 1 || st.Refused != 1 || st.NonFinite != 1 {
				t.Errorf("stats = %+v; want 1 applied, 1 refused, 1 non-finite", st)
			}
			// The worker goes on: a later sensible push is applied.
			if _, err := p.Push("a", 3, Delta, [][]float32{{1, 0, 0, 0}, {0, -big}}); err != nil {
				t.Errorf("push after the refused one: %v", err)
			}
		})
	}
	t.Run("synchronous sum", func(t *testing.T) {
		p := newParams(t, model2(), WithMode(Synchronous))
		mustRegister(t, p, "a", "b", "c")
		u := [][]float32{{0, 0, 0, 0}, {big, 0}}
		if _, err := p.Push("a", 1, Delta, u); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Push("b", 1, Delta, u); !errors.Is(err, ErrOverflow) {
			t.Fatalf("second MaxFloat32 into the round's sum = %v; want ErrOverflow", err)
		}
		// b may push again (not a duplicate: it was refused), c closes the round.
		if _, err := p.Push("b", 1, Delta, [][]float32{{0, 0, 0, 0}, {0, 0}}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Push("c", 1, Delta, [][]float32{{0, 0, 0, 0}, {0, 0}}); err != nil {
			t.Fatal(err)
		}
		ws, v := p.Weights()
		if got, want := flat(ws), []float32{1, 2, 3, 4, big / 3, 0}; !slices.Equal(got, want) || v != 2 {
			t.Errorf("weights = %v version %d; want %v version 2", got, v, want)
		}
	})
	t.Run("synchronous average", func(t *testing.T) {
		ws := model2()
		ws[1].Data[0] = big
		p := newParams(t, ws, WithMode(Synchronous))
		mustRegister(t, p, "a", "b")
		half := [][]float32{{0, 0, 0, 0}, {big / 2, 0}}
		if _, err := p.Push("a", 1, Delta, half); err != nil {
			t.Fatal(err)
		}
		_, err := p.Push("b", 1, Delta, half)
		if !errors.Is(err, ErrOverflow) {
			t.Fatalf("push closing a round whose average overflows = %v; want ErrOverflow", err)
		}
		if _, err := p.WaitRound(testCtx(t), 1); !errors.Is(err, ErrOverflow) || !strings.Contains(err.Error(), "round 1") {
			t.Errorf("WaitRound(1) = %v; want ErrOverflow naming round 1", err)
		}
		got, v := p.Weights()
		if !slices.Equal(flat(got), flat(ws)) || v != 2 {
			t.Errorf("weights = %v version %d; want untouched %v, version 2 (the round closed)", flat(got), v, flat(ws))
		}
	})
	t.Run("gradient", func(t *testing.T) {
		o := &sgd{lr: 2}
		p := newParams(t, model2(), WithOptimizer(o))
		mustRegister(t, p, "a")
		_, err := p.Push("a", 1, Gradient, [][]float32{{0, 0, 0, -big}, {0, 0}})
		if !errors.Is(err, ErrOverflow) || !strings.Contains(err.Error(), "optimizer's state are unchanged") {
			t.Fatalf("gradient whose step overflows = %v; want ErrOverflow", err)
		}
		ws, _ := p.Weights()
		if !slices.Equal(flat(ws), flat(model2())) || o.steps != 0 {
			t.Errorf("weights = %v, optimizer steps %v; want untouched %v and 0 steps", flat(ws), o.steps, flat(model2()))
		}
	})
}

// TestPushStepAndKindChecked: a step beyond MaxStep would leave a worker no
// later step (every later push a silent duplicate) and is refused; so is an
// unknown kind; the worker's next push is applied.
func TestPushStepAndKindChecked(t *testing.T) {
	for _, mode := range []Mode{Synchronous, Asynchronous, Hogwild} {
		t.Run(string(mode), func(t *testing.T) {
			p := newParams(t, model2(), WithMode(mode))
			mustRegister(t, p, "a")
			u := [][]float32{{1, 1, 1, 1}, {1, 1}}
			if _, err := p.Push("a", math.MaxUint64, Delta, u); !errors.Is(err, ErrStep) {
				t.Errorf("push at step 2^64-1 = %v; want ErrStep", err)
			}
			if _, err := p.Push("a", 1, Kind(7), u); !errors.Is(err, ErrKind) || !strings.Contains(err.Error(), "7") {
				t.Errorf("push of kind 7 = %v; want ErrKind naming 7", err)
			}
			if r, err := p.Push("a", 1, Delta, u); err != nil || r.Duplicate {
				t.Errorf("push at step 1 after the refusals = %+v, %v; want applied", r, err)
			}
			if st := p.Stats().Workers[0]; st.Refused != 2 || st.Applied != 1 {
				t.Errorf("stats = %+v; want 2 refused, 1 applied", st)
			}
		})
	}
}

// TestSynchronousEpochBarrier: once the driver opens epoch 2, a round does
// not close while a worker of epoch 1 (done, and not yet registered for
// epoch 2) is missing; the timeout names it; registrations for another
// epoch are refused; a second registration in an epoch is a rejoin.
func TestSynchronousEpochBarrier(t *testing.T) {
	p := newParams(t, model2(), WithMode(Synchronous), WithWorkers(2), WithRoundTimeout(200*time.Millisecond))
	delta := [][]float32{{1, 1, 1, 1}, {1, 1}}
	round, err := p.OpenEpoch(1)
	if err != nil || round != 1 {
		t.Fatalf("OpenEpoch(1) = %d, %v; want round 1", round, err)
	}
	for _, n := range []string{"a", "b"} {
		info, err := p.Register(n, 1)
		if err != nil || info.Epoch != 1 || info.Rejoin {
			t.Fatalf("Register(%s, 1) = %+v, %v; want epoch 1, no rejoin", n, info, err)
		}
		if _, err := p.Push(n, round, Delta, delta); err != nil {
			t.Fatal(err)
		}
		if err := p.Done(n); err != nil {
			t.Fatal(err)
		}
	}
	if v := p.Version(); v != 2 {
		t.Fatalf("version after epoch 1 = %d; want 2", v)
	}
	if _, err := p.OpenEpoch(0); !errors.Is(err, ErrWrongEpoch) {
		t.Errorf("OpenEpoch(0) after epoch 1: %v; want ErrWrongEpoch", err)
	}
	if round, err = p.OpenEpoch(2); err != nil || round != 2 {
		t.Fatalf("OpenEpoch(2) = %d, %v; want round 2", round, err)
	}
	if _, err := p.Register("a", 1); !errors.Is(err, ErrWrongEpoch) || !strings.Contains(err.Error(), "worker a registers for epoch 1 but the driver has opened epoch 2") {
		t.Errorf("Register(a, 1) in epoch 2: %v; want ErrWrongEpoch naming the worker and both epochs", err)
	}
	if _, err := p.Register("a", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Push("a", round, Delta, delta); err != nil {
		t.Fatal(err)
	}
	if v := p.Version(); v != 2 {
		t.Fatalf("version after a alone pushed in epoch 2 = %d; want 2: b has not started the epoch", v)
	}
	_, err = p.WaitRound(context.Background(), round)
	if !errors.Is(err, ErrRoundTimeout) || !strings.Contains(err.Error(), "missing workers [b (has not started epoch 2)]") {
		t.Errorf("WaitRound = %v; want ErrRoundTimeout naming b, which has not started epoch 2", err)
	}
	info, err := p.Register("b", 2)
	if err != nil || info.Rejoin || info.Version != 2 {
		t.Fatalf("Register(b, 2) = %+v, %v; want version 2, no rejoin", info, err)
	}
	if info, err := p.Register("b", 2); err != nil || !info.Rejoin {
		t.Errorf("second Register(b, 2) = %+v, %v; want a rejoin", info, err)
	}
	if _, err := p.Push("b", round, Delta, delta); err != nil {
		t.Fatal(err)
	}
	if v := p.Version(); v != 3 {
		t.Errorf("version after both pushed in epoch 2 = %d; want 3", v)
	}
	st := p.Stats()
	if st.Epoch != 2 || st.WorkersExpected != 2 || st.Workers[0].Epoch != 2 || st.Workers[1].Registers != 3 {
		t.Errorf("stats %+v; want epoch 2, 2 expected, a at epoch 2, b registered 3 times", st)
	}
}
