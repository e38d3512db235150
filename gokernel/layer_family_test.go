package gokernel

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// seqShapeJSON writes a Sequential's to_json text with an input of the
// given per-sample shape and the given layer configs.
func seqShapeJSON(shape []int, layers ...string) []byte {
	dims := "null"
	for _, d := range shape {
		dims += fmt.Sprintf(",%d", d)
	}
	ls := []string{`{"class_name":"InputLayer","config":{"batch_shape":[` + dims + `],"dtype":"float32","name":"input"}}`}
	ls = append(ls, layers...)
	return []byte(`{"module":"keras","class_name":"Sequential","config":{"name":"t","layers":[` + strings.Join(ls, ",") + `]}}`)
}

// lc writes one layer config: class, name and extra keys (",k":v...).
func lc(class, name, extra string) string {
	return fmt.Sprintf(`{"class_name":%q,"config":{"name":%q%s}}`, class, name, extra)
}

// TestMoreActivationDerivatives checks the derivative of each activation
// added beside the first ten against central differences, away from its
// corners, and the float32 loops against the float64 scalars.
func TestMoreActivationDerivatives(t *testing.T) {
	for a := actSiLU; a <= actSparseSigmoid; a++ {
		if a.rowWise() {
			continue
		}
		t.Run(a.String(), func(t *testing.T) {
			for _, z := range []float64{-7, -3.4, -1.3, -0.8, -0.3, 0.25, 0.7, 1.6, 2.5, 4, 6.5} {
				const h = 1e-6
				fd := (a.scalar(z+h) - a.scalar(z-h)) / (2 * h)
				if got := a.deriv(z, a.scalar(z)); !close(got, fd, 1e-7, 1e-6) {
					t.Errorf("f'(%v): got %v; want %v (central difference)", z, got, fd)
				}
				zz := []float32{float32(z)}
				out := make([]float32, 1)
				a.forward(zz, out, 1)
				if !close(float64(out[0]), a.scalar(z), 1e-6, 1e-6) {
					t.Errorf("forward(%v): got %v; want %v", z, out[0], a.scalar(z))
				}
				g := []float32{1.5}
				a.backward(zz, out, g, g, 1)
				if want := 1.5 * a.deriv(z, float64(out[0])); !close(float64(g[0]), want, 1e-6, 1e-5) {
					t.Errorf("backward(%v): got %v; want %v", z, g[0], want)
				}
			}
		})
	}
}

func TestMoreActivationValues(t *testing.T) {
	tests := []struct {
		a    activation
		z    float64
		want float64
	}{
		{actSiLU, 1, 1 / (1 + math.Exp(-1))},
		{actHardSigmoid, 1.5, 0.75},
		{actHardSigmoid, -4, 0},
		{actHardSiLU, 1.5, 1.125},
		{actMish, 1, math.Tanh(math.Log1p(math.E))},
		{actReLU6, 7, 6},
		{actSoftsign, -3, -0.75},
		{actExponential, 2, math.Exp(2)},
		{actHardTanh, -2, -1},
		{actLogSigmoid, 0, -math.Ln2},
		{actSoftShrink, -0.75, -0.25},
		{actHardShrink, 0.4, 0},
		{actSquareplus, 0, 1},
		{actSparsePlus, 0, 0.25},
		{actSparseSigmoid, 0.5, 0.75},
	}
	for _, tt := range tests {
		if got := tt.a.scalar(tt.z); !close(got, tt.want, 1e-12, 1e-9) {
			t.Errorf("%v(%v): got %v; want %v", tt.a, tt.z, got, tt.want)
		}
	}
	// log_softmax is log of softmax, row by row.
	z := []float32{1000, 1001, 999, -5, 0, 5}
	sm, lsm := make([]float32, 6), make([]float32, 6)
	softmaxRows(z, sm, 3)
	actLogSoftmax.forward(z, lsm, 3)
	for j := range z {
		if !close(float64(lsm[j]), math.Log(float64(sm[j])), 1e-6, 1e-6) {
			t.Errorf("log_softmax[%d]: got %v; want log %v", j, lsm[j], sm[j])
		}
	}
}

// TestActivationAliases: Keras' other names for silu and hard_silu.
func TestActivationAliases(t *testing.T) {
	for name, want := range map[string]activation{"swish": actSiLU, "hard_swish": actHardSiLU, "silu": actSiLU} {
		m := mustModel(t, seqJSON(3, "", "", dense("d", 2, name, "")))
		if got := m.g.layers[0].layer.(*denseLayer).act; got != want {
			t.Errorf("activation %q: got %v; want %v", name, got, want)
		}
	}
}

// TestFamilyRefusals: arguments the kernel does not implement are refused
// by name, and impossible ones explained.
func TestFamilyRefusals(t *testing.T) {
	tests := []struct {
		name  string
		shape []int
		layer string
		want  []string
	}{
		{"bn renorm", []int{4}, lc("BatchNormalization", "bn", `,"renorm":true`), []string{`"bn"`, "renorm"}},
		{"bn synchronized", []int{4}, lc("BatchNormalization", "bn", `,"synchronized":true`), []string{"synchronized"}},
		{"bn constraint", []int{4}, lc("BatchNormalization", "bn", `,"gamma_constraint":{"class_name":"NonNeg","config":{}}`), []string{"gamma_constraint"}},
		{"bn batch axis", []int{4}, lc("BatchNormalization", "bn", `,"axis":0`), []string{"batch axis"}},
		{"bn axis list", []int{4}, lc("BatchNormalization", "bn", `,"axis":[1]`), []string{"axis"}},
		{"bn unknown key", []int{4}, lc("BatchNormalization", "bn", `,"fused":true`), []string{"fused"}},
		{"ln gap", []int{2, 3, 4}, lc("LayerNormalization", "ln", `,"axis":[1,3]`), []string{"contiguous"}},
		{"ln out of range", []int{2, 3}, lc("LayerNormalization", "ln", `,"axis":3`), []string{"out of range"}},
		{"ln beta constraint", []int{3}, lc("LayerNormalization", "ln", `,"beta_constraint":{"class_name":"NonNeg","config":{}}`), []string{"beta_constraint"}},
		{"gn groups", []int{6}, lc("GroupNormalization", "gn", `,"groups":4`), []string{"4 groups", "6 channels"}},
		{"reshape two free", []int{6}, lc("Reshape", "r", `,"target_shape":[-1,-1]`), []string{"-1"}},
		{"reshape size", []int{6}, lc("Reshape", "r", `,"target_shape":[4,2]`), []string{"6 values", "[4 2]"}},
		{"permute", []int{2, 3}, lc("Permute", "p", `,"dims":[1,3]`), []string{"permutation"}},
		{"permute rank", []int{2, 3}, lc("Permute", "p", `,"dims":[1,2,3]`), []string{"3 axes"}},
		{"repeat rank", []int{2, 3}, lc("RepeatVector", "rv", `,"n":2`), []string{"vector"}},
		{"crop too much", []int{4, 2}, lc("Cropping1D", "c", `,"cropping":[2,2]`), []string{"leaves nothing"}},
		{"pad rank", []int{4}, lc("ZeroPadding2D", "z", `,"padding":1`), []string{"rank 3"}},
		{"upsampling bicubic", []int{2, 2, 1}, lc("UpSampling2D", "u", `,"interpolation":"bicubic"`), []string{"bicubic", "nearest, bilinear"}},
		{"prelu constraint", []int{3}, lc("PReLU", "p", `,"alpha_constraint":{"class_name":"NonNeg","config":{}}`), []string{"alpha_constraint"}},
		{"prelu shared batch", []int{3}, lc("PReLU", "p", `,"shared_axes":[0]`), []string{"shared_axes"}},
		{"relu negative", []int{3}, lc("ReLU", "r", `,"threshold":-1`), []string{"threshold"}},
		{"softmax gap", []int{2, 3, 4}, lc("Softmax", "s", `,"axis":[1,3]`), []string{"contiguous"}},
		{"rescaling shape", []int{2, 3}, lc("Rescaling", "r", `,"scale":[1,2]`), []string{"scale", "broadcast"}},
		{"rescaling object", []int{3}, lc("Rescaling", "r", `,"scale":{"class_name":"Foo","config":{}}`), []string{"scale"}},
		{"normalization half", []int{3}, lc("Normalization", "n", `,"mean":[1,2,3]`), []string{"mean and variance"}},
		{"normalization shape", []int{3}, lc("Normalization", "n", `,"mean":[1,2],"variance":[1,2]`), []string{"does not fit"}},
		{"spatial rank", []int{3}, lc("SpatialDropout1D", "s", `,"rate":0.5`), []string{"rank 2"}},
		{"activity negative", []int{3}, lc("ActivityRegularization", "a", `,"l1":-1`), []string{"l1"}},
		{"gaussian rate", []int{3}, lc("GaussianDropout", "g", `,"rate":1`), []string{"rate"}},
		{"activation glu", []int{4}, lc("Activation", "a", `,"activation":"glu"`), []string{`"glu"`, "not supported"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec(seqShapeJSON(tt.shape, tt.layer))
			if err == nil {
				t.Fatalf("got no error; want one mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "gokernel: ") {
				t.Errorf("error %q does not start with the package name", err)
			}
		})
	}
}

// TestNoiseLayersTraining checks the random layers' training behaviour,
// which Keras fixtures cannot (its draws are not Gophas'): the
// distribution of what they do, and identity in inference.
func TestNoiseLayersTraining(t *testing.T) {
	const rows = 64
	shape := []int{4, 4, 10}
	n := rows * prod(shape)
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	run := func(layer string, training bool) []float32 {
		m := mustModel(t, seqShapeJSON(shape, layer), WithSeed(3))
		return m.forward(ones, rows, training)
	}
	t.Run("SpatialDropout2D", func(t *testing.T) {
		y := run(lc("SpatialDropout2D", "s", `,"rate":0.25`), true)
		dropped := 0
		for r := 0; r < rows; r++ {
			for c := 0; c < 10; c++ {
				first := y[r*160+c]
				for p := 0; p < 16; p++ {
					if v := y[r*160+p*10+c]; v != first {
						t.Fatalf("row %d channel %d: value %v at position %d, %v at 0; want one value per feature map", r, c, v, p, first)
					}
				}
				switch first {
				case 0:
					dropped++
				case float32(1 / 0.75):
				default:
					t.Fatalf("kept value %v; want %v", first, float32(1/0.75))
				}
			}
		}
		if dropped < 110 || dropped > 210 {
			t.Errorf("dropped maps: got %d of 640; want about 160", dropped)
		}
	})
	t.Run("GaussianNoise", func(t *testing.T) {
		y := run(lc("GaussianNoise", "g", `,"stddev":0.5`), true)
		mean, sd := meanStd(y, -1)
		if math.Abs(mean) > 0.03 || math.Abs(sd-0.5) > 0.03 {
			t.Errorf("noise: mean %v, stddev %v; want 0, 0.5", mean, sd)
		}
	})
	t.Run("GaussianDropout", func(t *testing.T) {
		y := run(lc("GaussianDropout", "g", `,"rate":0.2`), true)
		mean, sd := meanStd(y, 0)
		if want := math.Sqrt(0.2 / 0.8); math.Abs(mean-1) > 0.03 || math.Abs(sd-want) > 0.03 {
			t.Errorf("multiplier: mean %v, stddev %v; want 1, %v", mean, sd, want)
		}
	})
	for _, l := range []string{lc("SpatialDropout2D", "s", `,"rate":0.5`), lc("GaussianNoise", "g", `,"stddev":0.5`), lc("GaussianDropout", "g", `,"rate":0.5`)} {
		for i, v := range run(l, false) {
			if v != 1 {
				t.Fatalf("%s in inference: value %d is %v; want the input 1", l, i, v)
			}
		}
	}
}

// meanStd returns the mean and standard deviation of v + shift.
func meanStd(v []float32, shift float64) (mean, sd float64) {
	for _, x := range v {
		mean += float64(x) + shift
	}
	mean /= float64(len(v))
	for _, x := range v {
		d := float64(x) + shift - mean
		sd += d * d
	}
	return mean, math.Sqrt(sd / float64(len(v)))
}

// familyChain is a model of most layer kinds of this family, each in a
// setting that does real work.
func familyChain() []byte {
	return seqShapeJSON([]int{4, 4, 3},
		lc("Rescaling", "rs", `,"scale":[0.5,2,1],"offset":0.1`),
		lc("Normalization", "nz", `,"axis":-1,"mean":null,"variance":null`),
		lc("ZeroPadding2D", "zp", `,"padding":[[1,0],[0,1]]`),
		lc("Cropping2D", "cr", `,"cropping":[[0,1],[1,0]]`),
		lc("UpSampling2D", "up", `,"size":[2,1],"interpolation":"bilinear"`),
		lc("BatchNormalization", "bn", `,"momentum":0.9`),
		lc("PReLU", "pr", `,"shared_axes":[1,2]`),
		lc("SpatialDropout2D", "sd", `,"rate":0.2`),
		lc("GroupNormalization", "gn", `,"groups":3`),
		lc("Permute", "pm", `,"dims":[2,1,3]`),
		lc("Reshape", "re", `,"target_shape":[-1,6]`),
		lc("LayerNormalization", "ln", `,"axis":[1,2]`),
		lc("Dense", "d", `,"units":4,"activation":"mish"`),
		lc("GaussianNoise", "gno", `,"stddev":0.1`),
		lc("GaussianDropout", "gdr", `,"rate":0.1`),
		lc("UnitNormalization", "un", ``),
		lc("RMSNormalization", "rms", ``),
		lc("ReLU", "relu", `,"max_value":2,"negative_slope":0.1,"threshold":0.1`),
		lc("LeakyReLU", "lr", ``),
		lc("ELU", "elu", ``),
		lc("ActivityRegularization", "ar", `,"l1":0.01,"l2":0.01`),
		lc("Softmax", "sm", `,"axis":1`),
		lc("Flatten", "fl", ``),
		lc("RepeatVector", "rv", `,"n":2`),
		lc("Dense", "out", `,"units":2`),
	)
}

// TestFamilyChainGradients checks the backward pass of the whole chain
// (training mode, random layers replayed) against central differences.
func TestFamilyChainGradients(t *testing.T) {
	m := mustModel(t, familyChain(), WithSeed(2), WithThreads(1), withInputGrads())
	rng := rand.New(rand.NewPCG(8, 9))
	w := m.Weights()
	for i := range w {
		if strings.HasPrefix(w[i].Name, "nz/variance") || strings.HasPrefix(w[i].Name, "bn/moving_variance") {
			for j := range w[i].Data {
				w[i].Data[j] = 0.5 + rng.Float32()
			}
		} else if !strings.HasPrefix(w[i].Name, "d/") && !strings.HasPrefix(w[i].Name, "out/") {
			for j := range w[i].Data {
				w[i].Data[j] += 0.3 * (rng.Float32() - 0.5)
			}
		}
	}
	if err := m.SetWeights(w); err != nil {
		t.Fatal(err)
	}
	const rows = 3
	x := randFloats(rng, rows*48, -1, 1)
	gradCheck(t, m, [][]float32{x}, rows, 4, 1e-3, 2e-3, 2e-2)
}

// TestFamilyStepAllocs: once the buffers exist, a training step and an
// inference pass of the chain allocate nothing.
func TestFamilyStepAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	spec, err := ParseSpec(familyChain())
	if err != nil {
		t.Fatal(err)
	}
	spec, err = spec.WithCompile([]byte(`{"class_name":"Adam","config":{"learning_rate":0.01}}`), "mse", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewModel(spec, WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const rows = 8
	x, y := randFloats(rng, rows*48, -1, 1), randFloats(rng, rows*4, -1, 1)
	step := func() {
		m.step(x, y, rows)
		if err := m.opt.Apply(m.params, m.grads); err != nil {
			t.Fatal(err)
		}
	}
	infer := func() { m.forward(x, rows, false) }
	step()
	infer()
	if n := testing.AllocsPerRun(5, step); n != 0 {
		t.Errorf("a training step allocates %v times; want 0", n)
	}
	if n := testing.AllocsPerRun(5, infer); n != 0 {
		t.Errorf("an inference pass allocates %v times; want 0", n)
	}
}

// TestNormalizationWeightsRoundTrip: an adapted Normalization's weights,
// its scalar count included, and BatchNormalization's moving statistics
// go through a safetensors file and back.
func TestNormalizationWeightsRoundTrip(t *testing.T) {
	m := mustModel(t, familyChain(), WithSeed(5))
	w := m.Weights()
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, w); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSafetensors(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	m2 := mustModel(t, familyChain(), WithSeed(6))
	if err := m2.SetWeights(back); err != nil {
		t.Fatal(err)
	}
	got := m2.Weights()
	names := map[string]bool{}
	for i := range w {
		names[w[i].Name] = true
		if fmt.Sprint(got[i].Data) != fmt.Sprint(w[i].Data) || fmt.Sprint(got[i].Shape) != fmt.Sprint(w[i].Shape) {
			t.Errorf("%s: got %v %v; want %v %v", w[i].Name, got[i].Shape, got[i].Data, w[i].Shape, w[i].Data)
		}
	}
	for _, n := range []string{"nz/mean", "nz/variance", "nz/count", "bn/moving_mean", "bn/moving_variance", "pr/alpha", "rms/scale"} {
		if !names[n] {
			t.Errorf("no weight %s among %v", n, names)
		}
	}
}
