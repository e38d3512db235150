package ps

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
)

// rolesModel is a model with a tensor of each role: a trainable kernel, a
// BatchNormalization's moving variance (starting at 1, as Keras starts it)
// and a frozen kernel holding -0 (which x + 0 would turn into +0).
func rolesModel() ([]NamedTensor, []Role) {
	negZero := float32(math.Copysign(0, -1))
	return []NamedTensor{
		{Name: "dense/kernel", Shape: []int{3}, Data: []float32{0.5, -1, 2}},
		{Name: "bn/moving_variance", Shape: []int{3}, Data: []float32{1, 1, 1}},
		{Name: "base/kernel", Shape: []int{2}, Data: []float32{negZero, 0.25}},
	}, []Role{Trainable, Moving, Frozen}
}

// TestRolesMergeOverGRPC: two workers pull the same weights and push their
// deltas through a real server; whatever the mode and the delta scaling,
// the moving statistics end at the mean of the workers' values (a sum would
// put the variance, falling from 1 towards 0.05 on both workers, at -0.9),
// the trainable weights follow the mode's rule, and the frozen tensor, which
// the workers do not push, stays bit-identical.
func TestRolesMergeOverGRPC(t *testing.T) {
	values := [2][]float32{{0.05, 0.1, 0.2}, {0.05, 0.3, 1.6}} // each worker's moving variance after its epoch
	steps := [2][]float32{{1, 2, 3}, {3, 2, 1}}                // each worker's trained kernel minus the pulled one
	for _, tt := range []struct {
		name    string
		opts    []Option
		trained float32 // the factor of the sum of the trainable deltas
	}{
		{"synchronous", []Option{WithMode(Synchronous), WithWorkers(2)}, 0.5},
		{"asynchronous", []Option{WithMode(Asynchronous), WithWorkers(2)}, 1},
		{"asynchronous scaled", []Option{WithMode(Asynchronous), WithWorkers(2), WithScale(true)}, 0.5},
		{"hogwild", []Option{WithMode(Hogwild), WithWorkers(2)}, 1},
		{"hogwild scaled", []Option{WithMode(Hogwild), WithWorkers(2), WithScale(true)}, 0.5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ws, roles := rolesModel()
			p, err := NewParams(tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.SetWeightsRoles(ws, roles, false); err != nil {
				t.Fatal(err)
			}
			_, addr := serve(t, p)
			ctx := testCtx(t)
			// Both pull before either pushes, as the workers of an epoch do.
			clients := make([]*Client, 2)
			bases := make([][]NamedTensor, 2)
			var v uint64
			for w := range 2 {
				clients[w] = dial(t, addr, testToken)
				if _, err := clients[w].Register(ctx, []string{"w0", "w1"}[w], 0); err != nil {
					t.Fatal(err)
				}
				if bases[w], v, _, err = clients[w].Pull(ctx, 0); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for w, c := range clients {
				base := bases[w]
				wg.Add(1)
				go func() {
					defer wg.Done()
					delta := [][]float32{make([]float32, 3), make([]float32, 3)}
					for j := range 3 {
						delta[0][j] = steps[w][j]
						delta[1][j] = values[w][j] - base[1].Data[j]
					}
					shapes := []TensorInfo{{Name: base[0].Name, Shape: base[0].Shape}, {Name: base[1].Name, Shape: base[1].Shape}}
					if _, err := c.Push(ctx, v, Delta, shapes, delta); err != nil {
						errs[w] = err
						return
					}
					if p.Mode() == Synchronous {
						_, errs[w] = c.WaitRound(ctx, v)
					}
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			got, _ := p.Weights()
			for j := range 3 {
				wantMean := (values[0][j] + values[1][j]) / 2
				if m := got[1].Data[j]; math.Abs(float64(m-wantMean)) > 1e-6 {
					t.Errorf("moving variance[%d]: got %v; want the workers' mean %v (their sum of deltas gives %v)",
						j, m, wantMean, 1+(values[0][j]-1)+(values[1][j]-1))
				}
				want := ws[0].Data[j] + tt.trained*(steps[0][j]+steps[1][j])
				if k := got[0].Data[j]; math.Abs(float64(k-want)) > 1e-6 {
					t.Errorf("kernel[%d]: got %v; want %v", j, k, want)
				}
			}
			for j, v := range ws[2].Data {
				if g := got[2].Data[j]; math.Float32bits(g) != math.Float32bits(v) {
					t.Errorf("frozen kernel[%d]: got %v (bits %08x); want %v (bits %08x) unchanged", j, g, math.Float32bits(g), v, math.Float32bits(v))
				}
			}
		})
	}
}

// TestRolesPushesLeaveFrozenOut: a push must hold the tensors that are not
// frozen, in order; one that holds the frozen tensor too is refused naming
// why, and so is a gradient push while some tensor is not trainable.
// Without roles every tensor is trainable and pushed.
func TestRolesPushesLeaveFrozenOut(t *testing.T) {
	ws, roles := rolesModel()
	p, err := NewParams(WithOptimizer(&sgd{lr: 0.1}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SetWeightsRoles(ws, roles, false); err != nil {
		t.Fatal(err)
	}
	if got := p.PushShapes(); len(got) != 2 || got[0].Name != "dense/kernel" || got[1].Name != "bn/moving_variance" {
		t.Fatalf("PushShapes: got %v; want dense/kernel and bn/moving_variance", got)
	}
	_, addr := serve(t, p)
	ctx := testCtx(t)
	c := dial(t, addr, testToken, WithRetries(0))
	if _, err := c.Register(ctx, "w0", 0); err != nil {
		t.Fatal(err)
	}
	all := make([][]float32, 3)
	shapes := make([]TensorInfo, 3)
	for i, w := range ws {
		all[i], shapes[i] = make([]float32, len(w.Data)), TensorInfo{Name: w.Name, Shape: w.Shape}
	}
	_, err = c.Push(ctx, 1, Delta, shapes, all)
	if err == nil || !strings.Contains(err.Error(), "3 tensors, want 2") || !strings.Contains(err.Error(), "frozen ones, of layers with trainable false, are not pushed") {
		t.Errorf("a push holding the frozen tensor: got %v; want refused, naming the frozen tensors", err)
	}
	_, err = c.Push(ctx, 2, Gradient, shapes[:2], all[:2])
	if err == nil || !strings.Contains(err.Error(), "gradient pushes need every weight trainable") {
		t.Errorf("a gradient push with moving statistics: got %v; want refused", err)
	}
	if got, _ := p.Weights(); flatBits(got) != flatBits(ws) {
		t.Errorf("weights after refused pushes: got %v; want %v unchanged", got, ws)
	}
	if _, err := p.SetWeights(ws, false); err != nil {
		t.Fatal(err)
	}
	if got := p.Roles(); len(got) != 3 || got[0] != Trainable || got[1] != Trainable || got[2] != Trainable {
		t.Errorf("roles after SetWeights: got %v; want every tensor trainable", got)
	}
	if _, err := c.Push(ctx, 3, Delta, shapes, all); err != nil {
		t.Errorf("a push of every tensor without roles: %v", err)
	}
	if _, err := p.SetWeightsRoles(ws, []Role{Trainable, Frozen + 1, Moving}, false); err == nil {
		t.Error("SetWeightsRoles with an unknown role: no error")
	}
	if _, err := p.SetWeightsRoles(ws, roles[:2], false); err == nil {
		t.Error("SetWeightsRoles with 2 roles for 3 tensors: no error")
	}
}

// flatBits renders the bits of every value of ts.
func flatBits(ts []NamedTensor) string {
	var b strings.Builder
	for _, t := range ts {
		for _, v := range t.Data {
			fmt.Fprintf(&b, "%08x ", math.Float32bits(v))
		}
		b.WriteByte('|')
	}
	return b.String()
}
