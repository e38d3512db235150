package ps

import (
	"context"
	"errors"
	"math"
	"slices"
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
		if _, err := p.Register(n); err != nil {
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
	if _, err := p.Register("a"); err != nil {
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
