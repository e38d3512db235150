package gokernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// seqJSON builds a Keras 3 style Sequential to_json text with an InputLayer
// of width in, the given layer configs and, if loss is not "", a compile
// config with SGD.
func seqJSON(in int, loss string, metrics string, layers ...string) []byte {
	ls := []string{fmt.Sprintf(`{"class_name":"InputLayer","config":{"batch_shape":[null,%d],"dtype":"float32","name":"input"}}`, in)}
	ls = append(ls, layers...)
	model := `{"module":"keras","class_name":"Sequential","config":{"name":"t","layers":[` + strings.Join(ls, ",") + `]}}`
	if loss == "" {
		return []byte(model)
	}
	if metrics == "" {
		metrics = "[]"
	}
	return []byte(`{"model":` + model + `,"compile":{"optimizer":{"class_name":"SGD","config":{"learning_rate":0.1}},"loss":` + loss + `,"metrics":` + metrics + `}}`)
}

func dense(name string, units int, act string, extra string) string {
	return fmt.Sprintf(`{"class_name":"Dense","config":{"name":%q,"units":%d,"activation":%q%s}}`, name, units, act, extra)
}

func mustModel(t testing.TB, data []byte, opts ...Option) *Model {
	t.Helper()
	s, err := ParseSpec(data)
	if err != nil {
		t.Fatalf("ParseSpec: %v", err)
	}
	m, err := NewModel(s, opts...)
	if err != nil {
		t.Fatalf("NewModel: %v", err)
	}
	return m
}

func randFloats(rng *rand.Rand, n int, lo, hi float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return v
}

func close(got, want, abs, rel float64) bool {
	return math.Abs(got-want) <= abs+rel*math.Abs(want)
}

func TestActivationDerivatives(t *testing.T) {
	for a := actLinear; a <= actGELU; a++ {
		if a == actSoftmax {
			continue
		}
		t.Run(a.String(), func(t *testing.T) {
			for _, z := range []float64{-3, -1.2, -0.3, 0.25, 0.7, 2.5} {
				const h = 1e-6
				fd := (a.scalar(z+h) - a.scalar(z-h)) / (2 * h)
				if got := a.deriv(z, a.scalar(z)); !close(got, fd, 1e-7, 1e-6) {
					t.Errorf("f'(%v): got %v; want %v (central difference)", z, got, fd)
				}
				// The float32 loops agree with the float64 scalars.
				zz := []float32{float32(z)}
				out := make([]float32, 1)
				a.forward(zz, out, 1)
				if !close(float64(out[0]), a.scalar(float64(zz[0])), 1e-6, 1e-6) {
					t.Errorf("forward(%v): got %v; want %v", z, out[0], a.scalar(z))
				}
				g := []float32{1.5}
				a.backward(zz, out, g, g, 1)
				if want := 1.5 * a.deriv(float64(zz[0]), float64(out[0])); !close(float64(g[0]), want, 1e-6, 1e-5) {
					t.Errorf("backward(%v): got %v; want %v", z, g[0], want)
				}
			}
		})
	}
}

func TestActivationValues(t *testing.T) {
	tests := []struct {
		a    activation
		z    float64
		want float64
	}{
		{actLeakyReLU, -1, -0.2}, // Keras 3 negative_slope 0.2
		{actGELU, 1, 0.8413447460685429},
		{actGELU, -1, -0.15865525393145707},
		{actSELU, -1, -1.1113307378125625},
		{actELU, -1, math.Exp(-1) - 1},
		{actSoftplus, 50, 50},
		{actSigmoid, -800, 0},
	}
	for _, tt := range tests {
		if got := tt.a.scalar(tt.z); !close(got, tt.want, 1e-12, 1e-9) {
			t.Errorf("%v(%v): got %v; want %v", tt.a, tt.z, got, tt.want)
		}
	}
}

func TestSoftmax(t *testing.T) {
	z := []float32{1000, 1001, 999, -5, 0, 5}
	out := make([]float32, 6)
	softmaxRows(z, out, 3)
	e := []float64{math.Exp(-1), 1, math.Exp(-2)}
	s := e[0] + e[1] + e[2]
	for j := 0; j < 3; j++ {
		if !close(float64(out[j]), e[j]/s, 1e-7, 1e-6) {
			t.Errorf("softmax row 0 [%d]: got %v; want %v", j, out[j], e[j]/s)
		}
	}
	// The backward pass against central differences of L = Σ c_j a_j.
	rng := rand.New(rand.NewPCG(1, 2))
	z = randFloats(rng, 6, -2, 2)
	c := randFloats(rng, 6, -1, 1)
	loss := func(z []float32) float64 {
		o := make([]float32, len(z))
		softmaxRows(z, o, 3)
		var l float64
		for j := range o {
			l += float64(c[j]) * float64(o[j])
		}
		return l
	}
	softmaxRows(z, out, 3)
	g := append([]float32(nil), c...)
	actSoftmax.backward(z, out, g, g, 3)
	for j := range z {
		fd := centralDiff(z, j, 1e-2, loss)
		if !close(float64(g[j]), fd, 1e-4, 1e-2) {
			t.Errorf("softmax ∂L/∂z[%d]: got %v; want %v", j, g[j], fd)
		}
	}
}

// centralDiff is (f(v+h e_j) - f(v-h e_j)) / (the float32 step actually
// taken), restoring v[j].
func centralDiff(v []float32, j int, h float32, f func([]float32) float64) float64 {
	old := v[j]
	v[j] = old + h
	up, fu := v[j], f(v)
	v[j] = old - h
	down, fd := v[j], f(v)
	v[j] = old
	return (fu - fd) / (float64(up) - float64(down))
}

func TestLossGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, m = 3, 4
	oneHot := make([]float32, rows*m)
	labels := make([]float32, rows)
	for r := 0; r < rows; r++ {
		labels[r] = float32(r % m)
		oneHot[r*m+r%m] = 1
	}
	bin := []float32{1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1}
	tests := []struct {
		name   string
		loss   lossSpec
		lo, hi float64
		y      []float32
	}{
		{"cce", lossSpec{kind: lossCCE}, 0.05, 1, oneHot},
		{"cce/logits", lossSpec{kind: lossCCE, fromLogits: true}, -3, 3, oneHot},
		{"sparse", lossSpec{kind: lossSparseCCE}, 0.05, 1, labels},
		{"sparse/logits", lossSpec{kind: lossSparseCCE, fromLogits: true}, -3, 3, labels},
		{"bce", lossSpec{kind: lossBCE}, 0.05, 0.95, bin},
		{"bce/logits", lossSpec{kind: lossBCE, fromLogits: true}, -4, 4, bin},
		{"mse", lossSpec{kind: lossMSE}, -2, 2, randFloats(rng, rows*m, -1, 1)},
		{"mae", lossSpec{kind: lossMAE}, -2, 2, randFloats(rng, rows*m, -1, 1)},
		{"huber", lossSpec{kind: lossHuber, delta: 1}, -3, 3, randFloats(rng, rows*m, -1, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := randFloats(rng, rows*m, tt.lo, tt.hi)
			g := make([]float32, rows*m)
			tt.loss.lossSum(p, tt.y, rows, m, g, 1)
			f := func(p []float32) float64 { return tt.loss.lossSum(p, tt.y, rows, m, nil, 0) }
			for j := range p {
				fd := centralDiff(p, j, 1e-3, f)
				if !close(float64(g[j]), fd, 2e-3, 1e-2) {
					t.Errorf("∂L/∂p[%d] at p=%v: got %v; want %v (central difference)", j, p[j], g[j], fd)
				}
			}
		})
	}
}

func TestLossValues(t *testing.T) {
	tests := []struct {
		name string
		loss lossSpec
		p, y []float32
		want float64
	}{
		// Keras normalizes the probabilities to sum 1 before the log.
		{"cce normalized", lossSpec{kind: lossCCE}, []float32{0.2, 0.3, 0.5, 1}, []float32{0, 0, 1, 0}, -math.Log(0.5 / 2)},
		{"cce clipped", lossSpec{kind: lossCCE}, []float32{0, 1}, []float32{1, 0}, -math.Log(epsilon)},
		{"sparse", lossSpec{kind: lossSparseCCE}, []float32{0.1, 0.9}, []float32{1}, -math.Log(float64(float32(0.9)) / float64(float32(0.1)+float32(0.9)))},
		{"cce logits", lossSpec{kind: lossCCE, fromLogits: true}, []float32{0, 0}, []float32{1, 0}, math.Log(2)},
		{"bce clipped", lossSpec{kind: lossBCE}, []float32{1, 0}, []float32{0, 0}, -0.5 * (math.Log(epsilon) + math.Log(1))},
		{"bce logits", lossSpec{kind: lossBCE, fromLogits: true}, []float32{0}, []float32{1}, math.Log(2)},
		{"huber", lossSpec{kind: lossHuber, delta: 1}, []float32{0.5, 3}, []float32{0, 0}, (0.125 + 2.5) / 2},
		{"mse", lossSpec{kind: lossMSE}, []float32{1, 3}, []float32{0, 0}, 5},
		{"mae", lossSpec{kind: lossMAE}, []float32{1, -3}, []float32{0, 0}, 2},
	}
	for _, tt := range tests {
		m := len(tt.p)
		if tt.loss.kind == lossSparseCCE {
			// one row, labels in y
		}
		got := tt.loss.lossSum(tt.p, tt.y, 1, m, nil, 0)
		if !close(got, tt.want, 1e-6, 1e-6) {
			t.Errorf("%s: got %v; want %v", tt.name, got, tt.want)
		}
	}
}

// gradCheck runs m forward on xs (rows rows per input) in training mode,
// backward from random output gradients c, and compares every trainable
// weight's gradient, and each input's if m computes them
// (withInputGrads), with central differences of L = Σ c·output computed
// by the model itself, its random layers repeating their first draws.
func gradCheck(t *testing.T, m *Model, xs [][]float32, rows int, seed uint64, h float32, abs, rel float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 77))
	m.run(xs, rows, true)
	var cs [][]float32
	for _, o := range m.g.outputs {
		cs = append(cs, randFloats(rng, rows*prod(m.g.tensors[o].shape), -1, 1))
	}
	dys := make([][]float32, len(cs))
	for i, c := range cs {
		dys[i] = append([]float32(nil), c...)
	}
	m.backpropFrom(dys, rows)
	m.replay = true
	defer func() { m.replay = false }()
	loss := func([]float32) float64 {
		m.run(xs, rows, true)
		l := m.addedLoss() // ActivityRegularization's penalty, whose gradient backward adds
		for i, o := range m.g.outputs {
			for j, v := range m.val[o][:len(cs[i])] {
				l += float64(cs[i][j]) * float64(v)
			}
		}
		return l
	}
	fails, kinks, total := 0, 0, 0
	check := func(what string, got []float32, p []float32) {
		for j := range p {
			total++
			fd := centralDiff(p, j, h, loss)
			g := float64(got[j])
			if !close(g, fd, abs, rel) {
				// A kink (relu, max, a tie) within the step makes the
				// central difference meaningless: one ten times smaller
				// that disagrees with it shows one.
				if fd2 := centralDiff(p, j, h/10, loss); !close(fd2, fd, abs, rel) {
					kinks++
					continue
				}
			}
			if !close(g, fd, abs, rel) {
				t.Errorf("∂L/∂%s[%d]: got %v; want %v (central difference)", what, j, g, fd)
				if fails++; fails > 10 {
					t.FailNow()
				}
			}
		}
	}
	var grads [][]float32
	for _, g := range m.grads {
		grads = append(grads, append([]float32(nil), g...))
	}
	var dxs [][]float32
	if m.cfg.inputGrads {
		for _, in := range m.g.inputs {
			if m.g.tensors[in].ids {
				dxs = append(dxs, nil) // ids have no gradient
				continue
			}
			dxs = append(dxs, append([]float32(nil), m.grad[in][:rows*prod(m.g.tensors[in].shape)]...))
		}
	}
	k := 0
	for _, w := range m.wts {
		if !w.trainable {
			continue
		}
		check(w.name, grads[k], w.data)
		k++
	}
	for i, dx := range dxs {
		if dx != nil {
			check(fmt.Sprintf("input %d", i), dx, xs[i])
		}
	}
	if kinks > 0 {
		t.Logf("%d of %d central differences skipped at kinks", kinks, total)
	}
	if kinks > total/10 {
		t.Errorf("%d of %d central differences crossed a kink; want at most a tenth checked that way", kinks, total)
	}
}

// TestLayerGradients checks the backward pass of a chain of every
// activation, with Dropout, Flatten and an Activation layer, against
// central differences.
func TestLayerGradients(t *testing.T) {
	for a := actLinear; a <= actGELU; a++ {
		t.Run(a.String(), func(t *testing.T) {
			data := seqJSON(5, "", "",
				`{"class_name":"Flatten","config":{"name":"f"}}`,
				dense("d1", 4, a.String(), `,"bias_initializer":"random_normal"`),
				`{"class_name":"Dropout","config":{"name":"drop","rate":0.3}}`,
				dense("d2", 3, "linear", `,"use_bias":false`),
				fmt.Sprintf(`{"class_name":"Activation","config":{"name":"act","activation":%q}}`, a.String()),
				dense("d3", 2, "tanh", ""))
			m := mustModel(t, data, WithSeed(int64(a)), WithThreads(1), withInputGrads())
			rng := rand.New(rand.NewPCG(uint64(a), 9))
			const rows = 3
			x := randFloats(rng, rows*5, -1.5, 1.5)
			gradCheck(t, m, [][]float32{x}, rows, uint64(a), 1e-2, 1e-3, 1e-2)
		})
	}
}

// TestModelGradients checks Gradients (loss, regularization, batch mean)
// against central differences of the loss computed by the model itself.
func TestModelGradients(t *testing.T) {
	reg := `,"kernel_regularizer":{"class_name":"L1L2","config":{"l1":0.01,"l2":0.02}},"bias_regularizer":{"class_name":"L2","config":{"l2":0.05}},"bias_initializer":"random_uniform"`
	tests := []struct {
		name, loss string
		act        string
		out        int
		y          func(rng *rand.Rand, rows int) []float32
	}{
		{"cce", `"categorical_crossentropy"`, "softmax", 3, func(rng *rand.Rand, rows int) []float32 {
			y := make([]float32, rows*3)
			for r := 0; r < rows; r++ {
				y[r*3+rng.IntN(3)] = 1
			}
			return y
		}},
		{"sparse", `"sparse_categorical_crossentropy"`, "softmax", 3, func(rng *rand.Rand, rows int) []float32 {
			y := make([]float32, rows)
			for r := range y {
				y[r] = float32(rng.IntN(3))
			}
			return y
		}},
		{"bce", `"binary_crossentropy"`, "sigmoid", 1, func(rng *rand.Rand, rows int) []float32 {
			y := make([]float32, rows)
			for r := range y {
				y[r] = float32(rng.IntN(2))
			}
			return y
		}},
		{"bce/logits", `{"class_name":"BinaryCrossentropy","config":{"from_logits":true}}`, "linear", 1, func(rng *rand.Rand, rows int) []float32 {
			y := make([]float32, rows)
			for r := range y {
				y[r] = float32(rng.IntN(2))
			}
			return y
		}},
		{"mse", `"mse"`, "linear", 2, func(rng *rand.Rand, rows int) []float32 { return randFloats(rng, rows*2, -1, 1) }},
		{"huber", `"huber"`, "linear", 2, func(rng *rand.Rand, rows int) []float32 { return randFloats(rng, rows*2, -3, 3) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustModel(t, seqJSON(4, tt.loss, "", dense("h", 5, "tanh", reg), dense("o", tt.out, tt.act, reg)), WithThreads(1))
			rng := rand.New(rand.NewPCG(5, 6))
			const rows = 4
			x := randFloats(rng, rows*4, -1, 1)
			y := tt.y(rng, rows)
			m.step(x, y, rows)
			loss := func([]float32) float64 {
				m.run([][]float32{x}, rows, true)
				return m.lossSums([][]float32{y}, rows, false)/rows + m.regularize(false)
			}
			for i, p := range m.params {
				for j := range p {
					if math.Abs(float64(p[j])) < 2e-2 {
						continue // the L1 kink at 0 lies within the step
					}
					fd := centralDiff(p, j, 1e-2, loss)
					if got := float64(m.grads[i][j]); !close(got, fd, 2e-3, 2e-2) {
						t.Errorf("∂L/∂%s[%d]: got %v; want %v (central difference)", m.wts[i].name, j, got, fd)
					}
				}
			}
		})
	}
}

func TestDropout(t *testing.T) {
	m := mustModel(t, seqJSON(1000, "", "", `{"class_name":"Dropout","config":{"name":"d","rate":0.25,"seed":3}}`))
	x := make([]float32, 2000)
	for i := range x {
		x[i] = 1
	}
	out := m.forward(x, 2, true)
	zeros, sum := 0, 0.0
	for _, v := range out {
		if v == 0 {
			zeros++
		} else if v != float32(1/0.75) {
			t.Fatalf("kept value: got %v; want %v", v, float32(1/0.75))
		}
		sum += float64(v)
	}
	if zeros < 400 || zeros > 600 {
		t.Errorf("dropped: got %d of 2000; want about 500", zeros)
	}
	out = m.forward(x, 2, false)
	for _, v := range out {
		if v != 1 {
			t.Fatalf("inference: got %v; want the input 1", v)
		}
	}
}

// TestDrawMask: each value is dropped with probability rate (within five
// standard deviations over 100,001 values, an odd count so the last value
// takes a draw of its own) and kept ones are scaled by 1/(1-rate).
func TestDrawMask(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, rate := range []float64{0.01, 0.1, 0.5, 0.9, 0.999} {
		mask := make([]float32, 100_001)
		for i := range mask {
			mask[i] = -1 // every value is set
		}
		drawMask(mask, rate, rng)
		dropped := 0
		for i, v := range mask {
			switch v {
			case 0:
				dropped++
			case float32(1 / (1 - rate)):
			default:
				t.Fatalf("rate %v: mask[%d] = %v; want 0 or %v", rate, i, v, float32(1/(1-rate)))
			}
		}
		n := float64(len(mask))
		if sd := math.Sqrt(n * rate * (1 - rate)); math.Abs(float64(dropped)-n*rate) > 5*sd {
			t.Errorf("rate %v: dropped %d of %d; want %.0f ± %.0f", rate, dropped, len(mask), n*rate, 5*sd)
		}
	}
}

// TestDropoutNoiseShape: with noise_shape [null, 1, 4] one mask value per
// sample and channel is broadcast over the steps; with [1, 6, 1] one per
// step, shared by every sample. The backward pass uses the same masks.
func TestDropoutNoiseShape(t *testing.T) {
	for _, tt := range []struct {
		noise string
		same  func(r, s, ch int) [3]int // the mask position of a value
	}{
		{"[null,1,4]", func(r, s, ch int) [3]int { return [3]int{r, 0, ch} }},
		{"[1,6,1]", func(r, s, ch int) [3]int { return [3]int{0, s, 0} }},
	} {
		t.Run(tt.noise, func(t *testing.T) {
			m := mustModel(t, inputJSON([]int{6, 4}, `{"class_name":"Dropout","config":{"name":"d","rate":0.5,"noise_shape":`+tt.noise+`}}`), withInputGrads())
			const rows = 50
			x := make([]float32, rows*24)
			for i := range x {
				x[i] = 1
			}
			m.run([][]float32{x}, rows, true)
			out := m.val[m.g.outputs[0]]
			seen := map[[3]int]float32{}
			zeros := 0
			for r := 0; r < rows; r++ {
				for s := 0; s < 6; s++ {
					for ch := 0; ch < 4; ch++ {
						v := out[(r*6+s)*4+ch]
						if v != 0 && v != 2 {
							t.Fatalf("value %v; want 0 or 2", v)
						}
						if v == 0 {
							zeros++
						}
						k := tt.same(r, s, ch)
						if w, ok := seen[k]; ok && w != v {
							t.Fatalf("row %d step %d channel %d: got %v; want %v as the rest of its mask position %v", r, s, ch, v, w, k)
						}
						seen[k] = v
					}
				}
			}
			if zeros == 0 || zeros == len(out) {
				t.Errorf("%d of %d dropped; want some", zeros, len(out))
			}
			dy := make([]float32, len(out))
			for i := range dy {
				dy[i] = 1
			}
			m.backpropFrom([][]float32{dy}, rows)
			compareFloats(t, "∂L/∂x", m.grad[m.g.inputs[0]][:len(out)], out, 0)
		})
	}
}
