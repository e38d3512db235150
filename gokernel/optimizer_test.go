package gokernel

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestNewOptimizerNames(t *testing.T) {
	for _, tc := range []struct {
		config, name string
	}{
		{`"sgd"`, "sgd"},
		{`"SGD"`, "sgd"},
		{`"adam"`, "adam"},
		{`"adamw"`, "adam_w"},
		{`"rmsprop"`, "rm_sprop"},
		{`"adagrad"`, "adagrad"},
		{`"nadam"`, "nadam"},
		{`"Adamax"`, "adamax"},
		{`"adadelta"`, "adadelta"},
		{`"ftrl"`, "ftrl"},
		{`"lion"`, "lion"},
		{`"adafactor"`, "adafactor"},
		{`{"class_name":"Adam","config":{"name":"my_adam","learning_rate":0.01}}`, "my_adam"},
		{`{"module":"keras.optimizers","class_name":"SGD","config":{"momentum":0.9},"registered_name":null}`, "sgd"},
		{`{"class_name":"RMSprop","config":{"weight_decay":null,"clipnorm":null,"use_ema":false,"ema_momentum":0.99}}`, "rm_sprop"},
	} {
		o, err := NewOptimizer([]byte(tc.config))
		if err != nil {
			t.Errorf("NewOptimizer(%s): %v", tc.config, err)
			continue
		}
		if got := o.Name(); got != tc.name {
			t.Errorf("NewOptimizer(%s).Name() = %q; want %q", tc.config, got, tc.name)
		}
	}
}

func TestNewOptimizerErrors(t *testing.T) {
	for _, tc := range []struct {
		config, want string
	}{
		{`"lamb"`, `unknown optimizer "lamb"`},
		{`{"class_name":"Lion","config":{"beta_1":0}}`, "beta_1: must be in (0, 1]"},
		{`{"class_name":"Ftrl","config":{"learning_rate_power":0.5}}`, "learning_rate_power: must be <= 0"},
		{`{"class_name":"Ftrl","config":{"l1_regularization_strength":-1}}`, "regularization strengths must be >= 0"},
		{`{"class_name":"AdamW","config":{"weight_decay":null}}`, "weight_decay: must be a number for adam_w"},
		{`{"class_name":"Adam","config":{"use_ema":true}}`, "use_ema"},
		{`{"class_name":"Adam","config":{"learning_rate":{"class_name":"ExponentialDecay","config":{}}}}`, "learning_rate: schedule ExponentialDecay: argument initial_learning_rate is required"},
		{`{"class_name":"Adam","config":{"loss_scale_factor":128}}`, "loss_scale_factor"},
		{`{"class_name":"Adam","config":{"gradient_accumulation_steps":4}}`, "gradient_accumulation_steps"},
		{`{"class_name":"Adam","config":{"beta_3":0.5}}`, "unsupported argument(s) beta_3"},
		{`{"class_name":"SGD","config":{"clipnorm":1,"clipvalue":1}}`, "only one of clipnorm"},
		{`{"class_name":"SGD","config":{"momentum":1.5}}`, "momentum: must be in [0, 1]"},
		{`{"class_name":"SGD","config":{"nesterov":"yes"}}`, "nesterov: want true or false"},
		{`{"module":"my.optimizers","class_name":"SGD"}`, `module "my.optimizers"`},
		{`{"class_name":"SGD","extra":1}`, "parsing config"},
	} {
		_, err := NewOptimizer([]byte(tc.config))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "gokernel: ") {
			t.Errorf("NewOptimizer(%s): got error %v; want one containing %q", tc.config, err, tc.want)
		}
	}
}

func TestOptimizerApplySizeErrors(t *testing.T) {
	o, err := NewOptimizer([]byte(`"adam"`))
	if err != nil {
		t.Fatal(err)
	}
	p := [][]float32{make([]float32, 3), make([]float32, 2)}
	for _, tc := range []struct {
		params, grads [][]float32
		want          string
	}{
		{p, [][]float32{make([]float32, 3)}, "2 parameters but 1 gradients"},
		{p, [][]float32{make([]float32, 3), make([]float32, 4)}, "parameter 1 has 2 values but its gradient has 4"},
	} {
		if err := o.Apply(tc.params, tc.grads); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Apply: got error %v; want one containing %q", err, tc.want)
		}
	}
	if err := o.Apply(p, [][]float32{make([]float32, 3), make([]float32, 2)}); err != nil {
		t.Fatal(err)
	}
	q := [][]float32{make([]float32, 3), make([]float32, 5)}
	if err := o.Apply(q, q); err == nil || !strings.Contains(err.Error(), "parameter 1 has 5 values but the state was built for 2") {
		t.Errorf("Apply after build with other sizes: got error %v", err)
	}
}

// TestOptimizerStateRoundTrip checks that an optimizer restored from State
// continues exactly as the original would.
func TestOptimizerStateRoundTrip(t *testing.T) {
	configs := []string{
		`"sgd"`,
		`{"class_name":"SGD","config":{"momentum":0.9,"nesterov":true}}`,
		`{"class_name":"Adam","config":{"amsgrad":true,"clipnorm":1}}`,
		`"adamw"`,
		`{"class_name":"RMSprop","config":{"momentum":0.5,"centered":true}}`,
		`"adagrad"`,
		`"nadam"`,
		`"adamax"`,
		`"adadelta"`,
		`{"class_name":"Ftrl","config":{"l1_regularization_strength":0.1,"beta":0.5}}`,
		`"lion"`,
		`"adafactor"`,
	}
	withShapes := func(o Optimizer) Optimizer {
		if s, ok := o.(interface{ SetShapes([][]int) error }); ok {
			if err := s.SetShapes([][]int{{1, 3}, {1}}); err != nil {
				t.Fatal(err)
			}
		}
		return o
	}
	grad := func(step int) [][]float32 {
		return [][]float32{{float32(step) - 1.5, 0.25, -2}, {0.5 * float32(step)}}
	}
	for _, cfg := range configs {
		a, _ := NewOptimizer([]byte(cfg))
		a = withShapes(a)
		pa := [][]float32{{1, 2, 3}, {-1}}
		for step := range 3 {
			if err := a.Apply(pa, grad(step)); err != nil {
				t.Fatal(err)
			}
		}
		b, _ := NewOptimizer([]byte(cfg))
		b = withShapes(b)
		if err := b.SetState(a.State()); err != nil {
			t.Fatalf("%s: SetState: %v", cfg, err)
		}
		pb := [][]float32{append([]float32(nil), pa[0]...), append([]float32(nil), pa[1]...)}
		for step := 3; step < 6; step++ {
			if err := a.Apply(pa, grad(step)); err != nil {
				t.Fatal(err)
			}
			if err := b.Apply(pb, grad(step)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range pa {
			for j := range pa[i] {
				if pa[i][j] != pb[i][j] {
					t.Errorf("%s: param %d[%d]: got %g after restore; want %g", cfg, i, j, pb[i][j], pa[i][j])
				}
			}
		}
		if it := b.State()[0]; it.Name != "iteration" || it.Data[0] != 6 {
			t.Errorf("%s: got iteration %v; want 6", cfg, it)
		}
	}
}

func TestOptimizerSetStateErrors(t *testing.T) {
	o, _ := NewOptimizer([]byte(`"adam"`))
	for _, tc := range []struct {
		state []NamedTensor
		want  string
	}{
		{nil, `one-value "iteration"`},
		{[]NamedTensor{{Name: "iteration", Data: []float32{1}}, {Name: "momentum/0", Data: []float32{1}}}, "not a multiple of 2"},
		{[]NamedTensor{{Name: "iteration", Data: []float32{1}}, {Name: "velocity/0", Data: []float32{1}}, {Name: "momentum/0", Data: []float32{1}}}, `is "velocity/0", want "momentum/0"`},
		{[]NamedTensor{{Name: "iteration", Data: []float32{1}}, {Name: "momentum/0", Data: []float32{1}}, {Name: "velocity/0", Data: []float32{1, 2}}}, "has 2 values, want 1"},
	} {
		if err := o.SetState(tc.state); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetState: got error %v; want one containing %q", err, tc.want)
		}
	}
}

func TestOptimizerApplyAllocatesNothing(t *testing.T) {
	for _, cfg := range []string{`{"class_name":"SGD","config":{"momentum":0.9}}`, `{"class_name":"Adam","config":{"global_clipnorm":1}}`, `"adamw"`, `{"class_name":"RMSprop","config":{"centered":true}}`, `"adagrad"`,
		`"nadam"`, `"adamax"`, `"adadelta"`, `"ftrl"`, `"lion"`, `"adafactor"`} {
		o, _ := NewOptimizer([]byte(cfg))
		if s, ok := o.(interface{ SetShapes([][]int) error }); ok {
			_ = s.SetShapes([][]int{{10, 10}, {10}})
		}
		p := [][]float32{make([]float32, 100), make([]float32, 10)}
		g := [][]float32{make([]float32, 100), make([]float32, 10)}
		_ = o.Apply(p, g)
		if n := testing.AllocsPerRun(10, func() { _ = o.Apply(p, g) }); n != 0 {
			t.Errorf("%s: Apply allocates %v times per step; want 0", cfg, n)
		}
	}
}

// TestOptimizerFlushesSubnormals checks that the state slots that decay
// under a zero gradient end at zero rather than lingering as subnormals,
// whose arithmetic is slow on Intel cores (TensorFlow flushes them too).
func TestOptimizerFlushesSubnormals(t *testing.T) {
	for _, cfg := range []string{
		`"adam"`, `{"class_name":"Adam","config":{"amsgrad":true}}`, `"adamw"`,
		`{"class_name":"SGD","config":{"momentum":0.9}}`, `{"class_name":"SGD","config":{"momentum":0.9,"nesterov":true}}`,
		`{"class_name":"RMSprop","config":{"momentum":0.5,"centered":true}}`,
	} {
		o, err := NewOptimizer([]byte(cfg))
		if err != nil {
			t.Fatal(err)
		}
		p := [][]float32{make([]float32, 37)}
		g := [][]float32{make([]float32, 37)}
		for j := range g[0] {
			g[0][j] = float32(j+1) * 1e-3
		}
		if err := o.Apply(p, g); err != nil {
			t.Fatal(err)
		}
		clear(g[0])
		var sub int
		for step := range 1500 {
			if err := o.Apply(p, g); err != nil {
				t.Fatal(err)
			}
			if step < 1400 {
				continue
			}
			for _, s := range o.State() {
				for _, v := range s.Data {
					if b := math.Float32bits(v); b&0x7f800000 == 0 && b&0x7fffff != 0 {
						sub++
					}
				}
			}
		}
		if sub > 0 {
			t.Errorf("%s: %d subnormal state values over steps 1400-1500 of zero gradients; want 0", cfg, sub)
		}
		var zero int
		for _, s := range o.State()[1:] {
			for _, v := range s.Data {
				if v == 0 {
					zero++
				}
			}
		}
		if zero == 0 {
			t.Errorf("%s: no state slot decayed to zero after 1500 steps of zero gradients", cfg)
		}
	}
}

func BenchmarkAdamApply_MLP784x128x128x10(b *testing.B) {
	sizes := []int{784 * 128, 128, 128 * 128, 128, 128 * 10, 10}
	p, g := make([][]float32, len(sizes)), make([][]float32, len(sizes))
	for i, n := range sizes {
		p[i], g[i] = make([]float32, n), make([]float32, n)
		for j := range g[i] {
			g[i][j] = float32(j%7) - 3
		}
	}
	o, _ := NewOptimizer([]byte(`"adam"`))
	for b.Loop() {
		_ = o.Apply(p, g)
	}
}

// baseOf gives tests the shared state of any optimizer.
func (b *base) baseOf() *base { return b }

func TestSplitSpans(t *testing.T) {
	for _, tc := range []struct {
		sizes    []int
		parts    int
		minTotal int
	}{
		{[]int{10, 5}, 4, minParallel},
		{[]int{100352, 128, 16384, 128, 1280, 10}, 2, minParallel},
		{[]int{100352, 128, 16384, 128, 1280, 10}, 2, 1},
		{[]int{100352, 128, 16384, 128, 1280, 10}, 3, 1},
		{[]int{40000, 0, 1}, 7, 1},
		{[]int{1 << 19, 1 << 19}, 2, minParallel},
	} {
		got := splitSpans(tc.sizes, tc.parts, tc.minTotal)
		covered := make([][]bool, len(tc.sizes))
		for i, n := range tc.sizes {
			covered[i] = make([]bool, n)
		}
		total := 0
		for _, n := range tc.sizes {
			total += n
		}
		for pi, p := range got {
			size := 0
			for _, s := range p {
				for j := s.lo; j < s.hi; j++ {
					if covered[s.i][j] {
						t.Fatalf("splitSpans(%v, %d): element %d of %d in two parts", tc.sizes, tc.parts, j, s.i)
					}
					covered[s.i][j] = true
				}
				size += s.hi - s.lo
			}
			if len(got) > 1 && (size < total/len(got)-1 || size > total/len(got)+1) {
				t.Errorf("splitSpans(%v, %d): part %d has %d values; want about %d", tc.sizes, tc.parts, pi, size, total/len(got))
			}
		}
		for i := range covered {
			for j, c := range covered[i] {
				if !c {
					t.Fatalf("splitSpans(%v, %d): element %d of %d in no part", tc.sizes, tc.parts, j, i)
				}
			}
		}
		want := tc.parts
		if total < tc.minTotal {
			want = 1
		}
		if len(got) != want {
			t.Errorf("splitSpans(%v, %d, %d): got %d parts for %d values; want %d", tc.sizes, tc.parts, tc.minTotal, len(got), total, want)
		}
	}
}

// TestOptimizerParallelMatchesSerial checks that splitting a step over
// goroutines gives bit-for-bit the serial result.
func TestOptimizerParallelMatchesSerial(t *testing.T) {
	sizes := []int{50000, 30, 20000}
	for _, cfg := range []string{`{"class_name":"SGD","config":{"momentum":0.9,"nesterov":true}}`, `{"class_name":"Adam","config":{"amsgrad":true}}`, `{"class_name":"RMSprop","config":{"momentum":0.5,"centered":true}}`, `"adagrad"`,
		`"nadam"`, `"adamax"`, `"adadelta"`, `{"class_name":"Ftrl","config":{"l1_regularization_strength":0.1}}`, `"lion"`} {
		var results [2][][]float32
		for k, parts := range []int{1, 3} {
			o, _ := NewOptimizer([]byte(cfg))
			p, g := make([][]float32, len(sizes)), make([][]float32, len(sizes))
			for i, n := range sizes {
				p[i], g[i] = make([]float32, n), make([]float32, n)
				for j := range n {
					p[i][j] = float32(j%13) / 7
				}
			}
			for step := range 4 {
				for i := range g {
					for j := range g[i] {
						g[i][j] = float32((j*(step+3))%11) - 5
					}
				}
				if err := o.Apply(p, g); err != nil {
					t.Fatal(err)
				}
				if step == 0 {
					b := o.(interface{ baseOf() *base }).baseOf()
					b.parts = splitSpans(sizes, parts, 1)
				}
			}
			results[k] = p
		}
		for i := range results[0] {
			for j := range results[0][i] {
				if results[0][i][j] != results[1][i][j] {
					t.Fatalf("%s: param %d[%d]: got %g split in 3; want %g (serial)", cfg, i, j, results[1][i][j], results[0][i][j])
				}
			}
		}
	}
}

func ExampleNewOptimizer() {
	opt, err := NewOptimizer([]byte(`{"class_name": "SGD", "config": {"learning_rate": 0.1, "momentum": 0.9}}`))
	if err != nil {
		panic(err)
	}
	params := [][]float32{{1, 2}}
	grads := [][]float32{{0.5, -1}}
	for range 2 {
		if err := opt.Apply(params, grads); err != nil {
			panic(err)
		}
	}
	fmt.Println(opt.Name(), params[0])
	for _, s := range opt.State() {
		fmt.Println(s.Name, s.Data)
	}
	// Output:
	// sgd [0.855 2.29]
	// iteration [2]
	// momentum/0 [-0.095 0.19]
}
