package gokernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// inputJSON is a Sequential with an InputLayer of the given sample shape
// and the given layers.
func inputJSON(shape []int, layers ...string) []byte {
	dims := []string{"null"}
	for _, d := range shape {
		dims = append(dims, fmt.Sprint(d))
	}
	ls := append([]string{`{"class_name":"InputLayer","config":{"batch_shape":[` + strings.Join(dims, ",") + `],"name":"in"}}`}, layers...)
	return []byte(`{"class_name":"Sequential","config":{"name":"t","layers":[` + strings.Join(ls, ",") + `]}}`)
}

// TestConvFastMatchesReference runs convolutions of many shapes (strides,
// dilations, paddings, groups, 1×1, chunks of samples) through the model
// and compares the forward and backward passes with convRef.
func TestConvFastMatchesReference(t *testing.T) {
	type tc struct {
		rank                  int
		in                    []int
		k, s, d               []int
		pad                   string
		filters, groups, rows int
	}
	tests := []tc{
		{2, []int{6, 7, 3}, []int{3, 3}, []int{1, 1}, []int{1, 1}, "valid", 4, 1, 3},
		{2, []int{6, 7, 3}, []int{3, 2}, []int{2, 1}, []int{1, 1}, "same", 5, 1, 2},
		{2, []int{7, 7, 2}, []int{3, 3}, []int{2, 2}, []int{1, 1}, "same", 3, 1, 2},
		{2, []int{8, 6, 4}, []int{2, 3}, []int{1, 1}, []int{2, 2}, "valid", 4, 2, 2},
		{2, []int{5, 5, 4}, []int{3, 3}, []int{1, 2}, []int{2, 1}, "same", 6, 2, 3},
		{2, []int{4, 5, 6}, []int{1, 1}, []int{1, 1}, []int{1, 1}, "valid", 4, 1, 3},
		{2, []int{4, 5, 6}, []int{1, 1}, []int{1, 1}, []int{1, 1}, "same", 6, 3, 2},
		{2, []int{5, 6, 2}, []int{1, 1}, []int{2, 2}, []int{1, 1}, "valid", 3, 1, 2},
		{1, []int{9, 3}, []int{3}, []int{1}, []int{1}, "causal", 4, 1, 3},
		{1, []int{9, 3}, []int{3}, []int{2}, []int{2}, "causal", 2, 1, 2},
		{1, []int{10, 4}, []int{4}, []int{3}, []int{1}, "same", 4, 2, 2},
		{1, []int{10, 4}, []int{2}, []int{1}, []int{3}, "valid", 3, 1, 2},
	}
	defer func(l, k int) { colLimit, colKeep = l, k }(colLimit, colKeep)
	for i, tt := range tests {
		name := fmt.Sprintf("%dD_%v_k%v_s%v_d%v_%s_f%d_g%d", tt.rank, tt.in, tt.k, tt.s, tt.d, tt.pad, tt.filters, tt.groups)
		// The patches kept from the forward pass; then built again in
		// chunks of one sample.
		for _, limit := range []int{colLimit, 1} {
			colLimit, colKeep = limit, limit
			t.Run(fmt.Sprintf("%s/limit%d", name, limit), func(t *testing.T) {
				cls := fmt.Sprintf("Conv%dD", tt.rank)
				ints := func(v []int) string { return strings.ReplaceAll(fmt.Sprint(v), " ", ",") }
				layer := fmt.Sprintf(`{"class_name":%q,"config":{"name":"c","filters":%d,"kernel_size":%s,"strides":%s,"dilation_rate":%s,"padding":%q,"groups":%d,"bias_initializer":"random_normal"}}`,
					cls, tt.filters, ints(tt.k), ints(tt.s), ints(tt.d), tt.pad, tt.groups)
				m := mustModel(t, inputJSON(tt.in, layer), WithSeed(int64(i)), WithThreads(2), withInputGrads())
				rng := rand.New(rand.NewPCG(uint64(i), 5))
				x := randFloats(rng, tt.rows*prod(tt.in), -1, 1)
				m.run([][]float32{x}, tt.rows, true)
				out := m.val[m.g.outputs[0]]
				dy := randFloats(rng, len(out), -1, 1)
				w, _ := m.calls[0].layer().(*conv).window(tt.in)
				if tt.pad == "causal" {
					w.padL = (tt.k[0] - 1) * tt.d[0]
				}
				y, dx, dk := convRef(x, tt.rows, w, tt.in[len(tt.in)-1], tt.filters, tt.groups, m.wts[0].data, m.wts[1].data, dy)
				compareFloats(t, "forward", out, y, 1e-5)
				m.backpropFrom([][]float32{dy}, tt.rows)
				compareFloats(t, "∂L/∂x", m.grad[m.g.inputs[0]][:len(x)], dx, 1e-4)
				compareFloats(t, "∂L/∂kernel", m.grads[0], dk, 1e-4)
			})
		}
	}
}

// compareFloats fails t at the first value not within tol (relative,
// absolute below 1).
func compareFloats(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values; want %d", what, len(got), len(want))
	}
	for i := range want {
		if !closeRel(got[i], want[i], tol) {
			t.Fatalf("%s[%d]: got %v; want %v (reference loop)", what, i, got[i], want[i])
		}
	}
}

// TestConvTransposeMatchesReference compares Conv2DTranspose's forward
// pass (col2im of a matrix product) with the plain scatter loop, and its
// backward pass with central differences.
func TestConvTransposeMatchesReference(t *testing.T) {
	tests := []struct {
		in         []int
		k, s, d    int
		pad, extra string
	}{
		{[]int{3, 4, 2}, 3, 1, 1, "valid", ""},
		{[]int{3, 4, 2}, 3, 2, 1, "same", ""},
		{[]int{4, 3, 3}, 4, 2, 1, "same", ""},
		{[]int{3, 3, 2}, 2, 3, 1, "valid", ""},
		{[]int{3, 3, 2}, 3, 2, 1, "valid", `,"output_padding":1`},
		{[]int{3, 3, 2}, 3, 2, 1, "same", `,"output_padding":[1,0]`},
		{[]int{3, 4, 2}, 2, 1, 2, "same", ""},
	}
	defer func(l int) { colLimit = l }(colLimit)
	for i, tt := range tests {
		for _, limit := range []int{colLimit, 1} {
			colLimit = limit
			t.Run(fmt.Sprintf("%v_k%d_s%d_d%d_%s%s/limit%d", tt.in, tt.k, tt.s, tt.d, tt.pad, tt.extra, limit), func(t *testing.T) {
				layer := fmt.Sprintf(`{"class_name":"Conv2DTranspose","config":{"name":"c","filters":3,"kernel_size":%d,"strides":%d,"dilation_rate":%d,"padding":%q,"use_bias":false%s}}`, tt.k, tt.s, tt.d, tt.pad, tt.extra)
				m := mustModel(t, inputJSON(tt.in, layer), WithSeed(int64(i)), WithThreads(1), withInputGrads())
				rng := rand.New(rand.NewPCG(uint64(i), 6))
				const rows = 2
				x := randFloats(rng, rows*prod(tt.in), -1, 1)
				m.run([][]float32{x}, rows, false)
				w, _ := m.calls[0].layer().(*convTranspose).window(tt.in)
				compareFloats(t, "forward", m.val[m.g.outputs[0]], convTransposeRef(x, rows, w, tt.in[2], 3, m.wts[0].data), 1e-5)
				gradCheck(t, m, [][]float32{x}, rows, uint64(i), 1e-2, 1e-3, 1e-2)
			})
		}
	}
}

// convZooJSON is a small model of every convolution and pooling kind.
func convZooJSON() []byte {
	return []byte(`{"model":` + string(inputJSON([]int{12, 12, 2},
		`{"class_name":"Conv2D","config":{"name":"c1","filters":4,"kernel_size":3,"padding":"same","activation":"relu"}}`,
		`{"class_name":"MaxPooling2D","config":{"name":"p1","pool_size":2}}`,
		`{"class_name":"DepthwiseConv2D","config":{"name":"dw","kernel_size":3,"depth_multiplier":2}}`,
		`{"class_name":"SeparableConv2D","config":{"name":"sep","filters":4,"kernel_size":2,"padding":"same"}}`,
		`{"class_name":"Conv2DTranspose","config":{"name":"up","filters":3,"kernel_size":2,"strides":2}}`,
		`{"class_name":"AveragePooling2D","config":{"name":"p2","pool_size":2}}`,
		`{"class_name":"GlobalMaxPooling2D","config":{"name":"g"}}`,
		`{"class_name":"Dense","config":{"name":"o","units":3,"activation":"softmax"}}`)) +
		`,"compile":{"optimizer":"adam","loss":"categorical_crossentropy","metrics":["accuracy"]}}`)
}

// TestConvStepAllocs: a training step of a small convnet (convolutions,
// pooling, depthwise, separable, transposed) allocates nothing once its
// buffers exist.
func TestConvStepAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	data := convZooJSON()
	for _, threads := range []int{1, 2} {
		m := mustModel(t, data, WithThreads(threads))
		rng := rand.New(rand.NewPCG(1, 1))
		x := randFloats(rng, 64*12*12*2, -1, 1)
		y := make([]float32, 64*3)
		for r := 0; r < 64; r++ {
			y[r*3+r%3] = 1
		}
		step := func() {
			m.step(x, y, 64)
			if err := m.opt.Apply(m.params, m.grads); err != nil {
				t.Fatal(err)
			}
		}
		step()
		if n := testing.AllocsPerRun(10, step); n != 0 {
			t.Errorf("%d threads: allocations per step: got %v; want 0", threads, n)
		}
	}
}

// TestThreadsAgreeConv: the loops split over goroutines give the same
// outputs and gradients as on one.
func TestThreadsAgreeConv(t *testing.T) {
	for _, tt := range []struct {
		name        string
		data        []byte
		in, classes int
	}{{"mnist convnet", mnistConvnetJSON(), 784, 10}, {"conv zoo", convZooJSON(), 12 * 12 * 2, 3}} {
		rng := rand.New(rand.NewPCG(3, 3))
		const rows = 48
		x := randFloats(rng, rows*tt.in, 0, 1)
		y := make([]float32, rows*tt.classes)
		for r := 0; r < rows; r++ {
			y[r*tt.classes+r%tt.classes] = 1
		}
		var grads [][][]float32
		for _, threads := range []int{1, 2} {
			m := mustModel(t, tt.data, WithThreads(threads))
			m.step(x, y, rows)
			grads = append(grads, m.grads)
		}
		for i := range grads[0] {
			compareFloats(t, fmt.Sprintf("%s: gradient %d with 2 threads", tt.name, i), grads[1][i], grads[0][i], 1e-5)
		}
	}
}

// TestConvSpecErrors: arguments the convolutions and poolings do not take
// are refused by name, with what is supported.
func TestConvSpecErrors(t *testing.T) {
	conv := func(cls, extra string) string {
		return `{"class_name":"` + cls + `","config":{"name":"c","filters":4,"kernel_size":3` + extra + `}}`
	}
	img := []int{6, 6, 2}
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{"causal 2-D", inputJSON(img, conv("Conv2D", `,"padding":"causal"`)), []string{`"c"`, `padding "causal"`, "valid, same are"}},
		{"channels first", inputJSON(img, conv("Conv2D", `,"data_format":"channels_first"`)), []string{"channels_first", "channels_last is"}},
		{"groups", inputJSON(img, conv("Conv2D", `,"groups":3`)), []string{"groups 3", "filters 4"}},
		{"groups channels", inputJSON([]int{6, 6, 3}, conv("Conv2D", `,"groups":2`)), []string{"3 input channels", "2 groups"}},
		{"kernel size", inputJSON(img, conv("Conv2D", `,"kernel_size":[3]`)), []string{"kernel_size", "list of 2"}},
		{"rank", inputJSON([]int{6}, conv("Conv2D", "")), []string{"2 spatial axes"}},
		{"too big", inputJSON([]int{2, 6, 2}, conv("Conv2D", "")), []string{"does not fit"}},
		{"constraint", inputJSON(img, conv("Conv2D", `,"kernel_constraint":{"class_name":"NonNeg","config":{}}`)), []string{"kernel_constraint"}},
		{"activity", inputJSON(img, conv("Conv2D", `,"activity_regularizer":"l2"`)), []string{"activity_regularizer"}},
		{"unknown key", inputJSON(img, conv("Conv2D", `,"foo":1`)), []string{"foo"}},
		{"output padding", inputJSON(img, conv("Conv2DTranspose", `,"strides":2,"output_padding":2`)), []string{"output_padding", "less than strides"}},
		{"depthwise constraint", inputJSON(img, `{"class_name":"DepthwiseConv2D","config":{"name":"c","kernel_size":3,"depthwise_constraint":{"class_name":"NonNeg","config":{}}}}`), []string{"depthwise_constraint"}},
		{"pool padding", inputJSON(img, `{"class_name":"MaxPooling2D","config":{"name":"p","pool_size":2,"padding":"full"}}`), []string{`"p"`, `padding "full"`}},
		{"global pool rank", inputJSON([]int{6, 2}, `{"class_name":"GlobalAveragePooling2D","config":{"name":"g"}}`), []string{`"g"`, "2 spatial axes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec(tt.data)
			if err == nil {
				t.Fatalf("got no error; want one mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got error %q; want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestMaxPool2x2MatchesGeneralLoop: the 2×2 fast path gives the general
// loop's maxima and, with many ties, its argmaxes (the gradient's target),
// on even and odd sizes, twice over the same buffers.
func TestMaxPool2x2MatchesGeneralLoop(t *testing.T) {
	defer func() { poolFast = true }()
	// Channel counts of the vectorised path (multiples of 8) and of the
	// plain one.
	for _, in := range [][]int{{7, 6, 5}, {6, 7, 3}, {5, 5, 2}, {7, 6, 8}, {6, 5, 32}, {4, 4, 24}} {
		rng := rand.New(rand.NewPCG(4, 4))
		const rows = 3
		x := make([]float32, rows*prod(in))
		for i := range x {
			x[i] = float32(rng.IntN(3)) // ties everywhere
		}
		layer := `{"class_name":"MaxPooling2D","config":{"name":"p","pool_size":2}}`
		var outs, grads [][]float32
		for _, fast := range []bool{true, false} {
			poolFast = fast
			m := mustModel(t, inputJSON(in, layer), withInputGrads())
			for pass := 1; pass <= 2; pass++ {
				m.run([][]float32{x}, rows, true)
				out := append([]float32(nil), m.val[m.g.outputs[0]]...)
				dy := make([]float32, len(out))
				for i := range dy {
					dy[i] = float32(pass * (i + 1))
				}
				if pass == 2 {
					// Garbage where the gradient goes: every value must be set.
					for i := range m.grad[m.g.inputs[0]] {
						m.grad[m.g.inputs[0]][i] = float32(math.NaN())
					}
				}
				m.backpropFrom([][]float32{dy}, rows)
				if pass == 2 {
					outs = append(outs, out)
					grads = append(grads, append([]float32(nil), m.grad[m.g.inputs[0]][:len(x)]...))
				}
			}
		}
		compareFloats(t, fmt.Sprintf("%v: maxima", in), outs[0], outs[1], 0)
		compareFloats(t, fmt.Sprintf("%v: ∂L/∂x", in), grads[0], grads[1], 0)
	}
}
