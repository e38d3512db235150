package gokernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// The tests of the sequence machinery beyond the Keras fixtures: the mask
// rules one by one, integer inputs, sparse gradients, the recurrent and
// attention layers against plain loops, allocations.

// kin is an input of a model written by kjson: name, per-sample shape and
// dtype ("" for float32).
type kin struct {
	name  string
	shape []int
	dtype string
}

// kl is one call of a layer written by kjson: class, name, extra config
// (",key":value...), its input tensors ("layer" or "layer:k" for output k)
// and extra call kwargs (",key":value..., with tensors written as
// @name).
type kl struct {
	class, name, config string
	in                  []string
	kwargs              string
	module              string // "" for keras.layers
}

func kref(s string) string {
	name, k := s, 0
	if i := strings.IndexByte(s, ':'); i >= 0 {
		name = s[:i]
		fmt.Sscan(s[i+1:], &k)
	}
	return fmt.Sprintf(`{"class_name":"__keras_tensor__","config":{"keras_history":["%s",0,%d]}}`, name, k)
}

// kjson writes the to_json text of a Functional model, with a compile
// config if compile is not "".
func kjson(inputs []kin, layers []kl, outputs []string, compile string) []byte {
	var ls, ins, outs []string
	for _, in := range inputs {
		dt := in.dtype
		if dt == "" {
			dt = "float32"
		}
		shape := "null"
		for _, d := range in.shape {
			shape += fmt.Sprintf(",%d", d)
		}
		ls = append(ls, fmt.Sprintf(`{"class_name":"InputLayer","name":%q,"config":{"batch_shape":[%s],"dtype":%q,"name":%q},"inbound_nodes":[]}`, in.name, shape, dt, in.name))
		ins = append(ins, fmt.Sprintf(`["%s",0,0]`, in.name))
	}
	for _, l := range layers {
		var args []string
		for _, t := range l.in {
			args = append(args, kref(t))
		}
		arg := strings.Join(args, ",")
		if l.class != "MultiHeadAttention" && l.module == "" && len(args) > 1 {
			arg = "[" + arg + "]"
		}
		kw := l.kwargs
		for strings.Contains(kw, "@") {
			i := strings.IndexByte(kw, '@')
			j := i + 1
			for j < len(kw) && (kw[j] == '_' || kw[j] == ':' || kw[j] >= 'a' && kw[j] <= 'z' || kw[j] >= '0' && kw[j] <= '9') {
				j++
			}
			kw = kw[:i] + kref(kw[i+1:j]) + kw[j:]
		}
		module := l.module
		if module == "" {
			module = "keras.layers"
		}
		ls = append(ls, fmt.Sprintf(`{"module":%q,"class_name":%q,"name":%q,"config":{"name":%q%s},"inbound_nodes":[{"args":[%s],"kwargs":{%s}}]}`,
			module, l.class, l.name, l.name, l.config, arg, strings.TrimPrefix(kw, ",")))
	}
	for _, o := range outputs {
		name, k := o, 0
		if i := strings.IndexByte(o, ':'); i >= 0 {
			name = o[:i]
			fmt.Sscan(o[i+1:], &k)
		}
		outs = append(outs, fmt.Sprintf(`["%s",0,%d]`, name, k))
	}
	model := `{"class_name":"Functional","config":{"name":"m","layers":[` + strings.Join(ls, ",") + `],"input_layers":[` + strings.Join(ins, ",") + `],"output_layers":[` + strings.Join(outs, ",") + `]}}`
	if compile == "" {
		return []byte(model)
	}
	return []byte(`{"model":` + model + `,"compile":` + compile + `}`)
}

var tokens5 = []kin{{name: "tok", shape: []int{5}, dtype: "int32"}}

// tokenIDs are two rows of five ids with padding zeros.
var tokenIDs = []int32{3, 1, 0, 0, 0, 2, 0, 4, 4, 0}

func emb(mask bool) kl {
	return kl{class: "Embedding", name: "emb", config: fmt.Sprintf(`,"input_dim":6,"output_dim":3,"mask_zero":%v,"embeddings_initializer":"random_normal"`, mask), in: []string{"tok"}}
}

// outMasks runs m on rows of the given ids and floats and returns each
// output's mask (nil for none).
func outMasks(t *testing.T, m *Model, xs [][]float32, ids [][]int32, rows int) [][]bool {
	t.Helper()
	m.runIDs(xs, ids, rows, false)
	var out [][]bool
	for _, id := range m.g.outMask {
		if id < 0 {
			out = append(out, nil)
			continue
		}
		out = append(out, append([]bool(nil), m.maskVal[id][:rows*prod(m.g.masks[id].shape)]...))
	}
	return out
}

// TestMaskRules checks each rule of Keras 3's mask propagation: which
// layers compute a mask, pass it on, drop it or combine masks, and what
// MultiHeadAttention's removal of its inputs' masks does.
func TestMaskRules(t *testing.T) {
	idMask := []bool{true, true, false, false, false, true, false, true, true, false}
	seqIn := []kin{{name: "seq", shape: []int{4, 2}}}
	tests := []struct {
		name   string
		inputs []kin
		layers []kl
		outs   []string
		want   [][]bool // per output; nil: no mask
	}{
		{"Embedding mask_zero computes id != 0", tokens5, []kl{emb(true)}, []string{"emb"}, [][]bool{idMask}},
		{"Embedding without mask_zero computes none", tokens5, []kl{emb(false)}, []string{"emb"}, [][]bool{nil}},
		{"Masking computes any(x != mask_value)", seqIn, []kl{{class: "Masking", name: "mk", config: `,"mask_value":0.5`, in: []string{"seq"}}}, []string{"mk"},
			[][]bool{{false, true, true, false, true, true, true, false}}},
		{"Dense, Dropout, Activation, LayerNormalization, TimeDistributed pass it on", tokens5, []kl{emb(true),
			{class: "Dense", name: "d", config: `,"units":2`, in: []string{"emb"}},
			{class: "Dropout", name: "dr", config: `,"rate":0.5`, in: []string{"d"}},
			{class: "Activation", name: "a", config: `,"activation":"relu"`, in: []string{"dr"}},
			{class: "LayerNormalization", name: "ln", in: []string{"a"}},
			{class: "TimeDistributed", name: "td", config: `,"layer":{"class_name":"Dense","config":{"name":"inner","units":2}}`, in: []string{"ln"}}},
			[]string{"td"}, [][]bool{idMask}},
		{"Flatten and a convolution drop it", tokens5, []kl{emb(true),
			{class: "Flatten", name: "f", in: []string{"emb"}},
			{class: "Conv1D", name: "cv", config: `,"filters":2,"kernel_size":2`, in: []string{"emb"}}},
			[]string{"f", "cv"}, [][]bool{nil, nil}},
		{"a merge ORs masks when every input is masked", tokens5, []kl{emb(true),
			{class: "Embedding", name: "e2", config: `,"input_dim":6,"output_dim":3,"mask_zero":true`, in: []string{"tok"}},
			{class: "Add", name: "add", in: []string{"emb", "e2"}}}, []string{"add"}, [][]bool{idMask}},
		{"a merge with an unmasked input has none", tokens5, []kl{emb(true),
			{class: "Embedding", name: "e2", config: `,"input_dim":6,"output_dim":3`, in: []string{"tok"}},
			{class: "Multiply", name: "mul", in: []string{"emb", "e2"}}}, []string{"mul"}, [][]bool{nil}},
		{"Concatenate on the features with an unmasked input: all data", tokens5, []kl{emb(true),
			{class: "Embedding", name: "e2", config: `,"input_dim":6,"output_dim":2`, in: []string{"tok"}},
			{class: "Concatenate", name: "cat", in: []string{"emb", "e2"}}}, []string{"cat"},
			[][]bool{{true, true, true, true, true, true, true, true, true, true}}},
		{"Concatenate on the steps keeps each part's mask", tokens5, []kl{emb(true),
			{class: "Embedding", name: "e2", config: `,"input_dim":6,"output_dim":3`, in: []string{"tok"}},
			{class: "Concatenate", name: "cat", config: `,"axis":1`, in: []string{"emb", "e2"}}}, []string{"cat"},
			[][]bool{{true, true, false, false, false, true, true, true, true, true, true, false, true, true, false, true, true, true, true, true}}},
		{"an RNN passes it to its sequence, not to its last output or states", tokens5, []kl{emb(true),
			{class: "LSTM", name: "seqs", config: `,"units":2,"return_sequences":true,"return_state":true`, in: []string{"emb"}},
			{class: "GRU", name: "last", config: `,"units":2`, in: []string{"emb"}}},
			[]string{"seqs", "seqs:1", "seqs:2", "last"}, [][]bool{idMask, nil, nil, nil}},
		{"Bidirectional passes it to each sequence output", tokens5, []kl{emb(true),
			{class: "Bidirectional", name: "bi", config: `,"merge_mode":null,"layer":{"class_name":"SimpleRNN","config":{"name":"r","units":2,"return_sequences":true}}`, in: []string{"emb"}}},
			[]string{"bi", "bi:1"}, [][]bool{idMask, idMask}},
		{"GlobalAveragePooling1D and Dot consume it and give none", tokens5, []kl{emb(true),
			{class: "GlobalAveragePooling1D", name: "gap", in: []string{"emb"}},
			{class: "Dot", name: "dot", config: `,"axes":2`, in: []string{"emb", "emb"}}},
			[]string{"gap", "dot"}, [][]bool{nil, nil}},
		{"Attention passes the query's", tokens5, []kl{emb(true),
			{class: "Embedding", name: "e2", config: `,"input_dim":6,"output_dim":3`, in: []string{"tok"}},
			{class: "Attention", name: "att", in: []string{"emb", "e2"}}},
			[]string{"att"}, [][]bool{idMask}},
		{"MultiHeadAttention passes the query's", tokens5, []kl{emb(true),
			{class: "Embedding", name: "e2", config: `,"input_dim":6,"output_dim":3`, in: []string{"tok"}},
			{class: "MultiHeadAttention", name: "mha", config: `,"num_heads":1,"key_dim":2`, in: []string{"emb", "e2"}},
			{class: "MultiHeadAttention", name: "mha2", config: `,"num_heads":1,"key_dim":2`, in: []string{"e2", "e2"}}},
			[]string{"mha", "mha2"}, [][]bool{idMask, nil}},
		{"Keras' order decides who sees a mask MultiHeadAttention removes", tokens5, []kl{emb(true),
			{class: "Embedding", name: "e2", config: `,"input_dim":6,"output_dim":3`, in: []string{"tok"}},
			{class: "Attention", name: "att", in: []string{"emb", "e2"}},
			{class: "MultiHeadAttention", name: "mha", config: `,"num_heads":1,"key_dim":2`, in: []string{"e2", "emb"}}},
			// Keras runs mha before att (both at depth 0; mha was given its
			// depth first), so att gets no mask.
			[]string{"att", "mha"}, [][]bool{nil, nil}},
		{"MultiHeadAttention removes its inputs' masks for the calls after it", tokens5, []kl{emb(true),
			{class: "MultiHeadAttention", name: "mha", config: `,"num_heads":1,"key_dim":2`, in: []string{"emb", "emb"}},
			{class: "Add", name: "res", in: []string{"emb", "mha"}},
			{class: "Dense", name: "after", config: `,"units":2`, in: []string{"emb"}}},
			[]string{"mha", "res", "after"}, [][]bool{idMask, nil, nil}},
		{"a mask Keras recorded in a call is the mask as the model was built", tokens5, []kl{emb(true),
			{class: "NotEqual", name: "ne", in: []string{"tok"}, module: "keras.src.ops.numpy"},
			{class: "MultiHeadAttention", name: "mha", config: `,"num_heads":1,"key_dim":2`, in: []string{"emb", "emb"}},
			{class: "Add", name: "res", in: []string{"emb", "mha"}},
			{class: "LogicalOr", name: "or", in: []string{"ne", "ne"}, module: "keras.src.ops.numpy"},
			{class: "LSTM", name: "lstm", config: `,"units":2,"return_sequences":true`, in: []string{"res"}, kwargs: `"mask":@or`}},
			[]string{"res", "lstm"}, [][]bool{nil, idMask}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustModel(t, kjson(tt.inputs, tt.layers, tt.outs, ""), WithThreads(1))
			var xs [][]float32
			var ids [][]int32
			for _, in := range tt.inputs {
				if in.dtype != "" {
					xs, ids = append(xs, nil), append(ids, tokenIDs)
				} else {
					xs, ids = append(xs, []float32{0.5, 0.5, 1, 2, 0.5, 3, 0.5, 0.5, 0, 1, 1, 1, 2, 2, 0.5, 0.5}), append(ids, nil)
				}
			}
			got := outMasks(t, m, xs, ids, 2)
			for i, w := range tt.want {
				if fmt.Sprint(got[i]) != fmt.Sprint(w) {
					t.Errorf("output %s: mask %v; want %v", tt.outs[i], got[i], w)
				}
			}
		})
	}
}

// TestMaskedConsumers checks the layers that read masks against direct
// computations: GlobalAveragePooling1D averages the unmasked steps, an
// RNN keeps its state over masked steps, a masked output's loss is the
// mean over its unmasked positions and gives them no gradient.
func TestMaskedConsumers(t *testing.T) {
	t.Run("GlobalAveragePooling1D", func(t *testing.T) {
		m := mustModel(t, kjson(tokens5, []kl{emb(true), {class: "GlobalAveragePooling1D", name: "gap", in: []string{"emb"}}}, []string{"gap"}, ""))
		m.runIDs([][]float32{nil}, [][]int32{tokenIDs}, 2, false)
		E := m.wts[0].data
		for r, rowIDs := range [][]int32{tokenIDs[:5], tokenIDs[5:]} {
			for c := 0; c < 3; c++ {
				var sum float64
				n := 0
				for _, id := range rowIDs {
					if id != 0 {
						sum += float64(E[int(id)*3+c])
						n++
					}
				}
				if got := m.val[m.g.outputs[0]][r*3+c]; !close(float64(got), sum/float64(n), 1e-7, 1e-6) {
					t.Errorf("row %d channel %d: got %v; want %v (the mean of the unmasked steps)", r, c, got, sum/float64(n))
				}
			}
		}
	})
	t.Run("RNN keeps its state", func(t *testing.T) {
		// The same rows with their masked steps removed give the same
		// final state.
		data := kjson(tokens5, []kl{emb(true), {class: "GRU", name: "g", config: `,"units":3,"bias_initializer":"random_normal"`, in: []string{"emb"}}}, []string{"g"}, "")
		m := mustModel(t, data, WithSeed(3))
		m.runIDs([][]float32{nil}, [][]int32{tokenIDs}, 2, false)
		masked := append([]float32(nil), m.val[m.g.outputs[0]][:6]...)
		packed := []int32{3, 1, 0, 0, 0, 2, 4, 4, 0, 0}
		m.runIDs([][]float32{nil}, [][]int32{packed}, 2, false)
		for i, v := range m.val[m.g.outputs[0]][:6] {
			if !close(float64(v), float64(masked[i]), 1e-6, 1e-5) {
				t.Fatalf("final states: got %v with the masked steps inside; want %v as without them", masked, m.val[m.g.outputs[0]][:6])
			}
		}
	})
	t.Run("loss", func(t *testing.T) {
		data := kjson(tokens5, []kl{emb(true), {class: "Dense", name: "p", config: `,"units":3,"activation":"softmax"`, in: []string{"emb"}}},
			[]string{"p"}, `{"optimizer":"sgd","loss":"sparse_categorical_crossentropy","metrics":["accuracy"]}`)
		m := mustModel(t, data, WithSeed(5))
		labels := []float32{0, 1, 2, 0, 1, 2, 0, 1, 2, 0}
		loss := m.stepIDs([][]float32{nil}, [][]int32{tokenIDs}, [][]float32{labels}, 2) / 2
		p := m.val[m.g.outputs[0]]
		var want float64
		n := 0
		for i, id := range tokenIDs {
			if id != 0 {
				want -= math.Log(float64(p[i*3+int(labels[i])]))
				n++
			}
		}
		want /= float64(n)
		if !close(loss, want, 1e-6, 1e-5) {
			t.Errorf("loss: got %v; want %v (the mean over the %d unmasked positions)", loss, want, n)
		}
		g := m.grad[m.g.outputs[0]]
		for i, id := range tokenIDs {
			for c := 0; c < 3; c++ {
				if (g[i*3+c] != 0) != (id != 0) {
					t.Fatalf("output gradient at position %d (id %d): %v; want zero exactly at masked positions", i, id, g[i*3:i*3+3])
				}
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, cls := range []string{"Softmax", "BatchNormalization"} {
			_, err := ParseSpec(kjson(tokens5, []kl{emb(true), {class: cls, name: "s", in: []string{"emb"}}}, []string{"s"}, ""))
			if err == nil || !strings.Contains(err.Error(), "masked input") || !strings.Contains(err.Error(), cls) {
				t.Errorf("%s on a masked input: got %v; want an error naming it and the mask", cls, err)
			}
		}
	})
}

// stepIDs is stepAll with integer inputs.
func (m *Model) stepIDs(xs [][]float32, ids [][]int32, ys [][]float32, rows int) float64 {
	m.reserveGrads(rows)
	m.runIDs(xs, ids, rows, true)
	loss := m.lossSums(ys, rows, true)
	m.backprop(rows)
	return loss + float64(rows)*(m.regularize(true)+m.addedLoss())
}

// TestIntegerInputs: ids reach Embedding as int32 (no float32 round trip:
// ids above 2^24 stay exact), floats are truncated as Keras casts them, a
// float layer reading an integer input gets the ids as floats, and ids
// outside [0, input_dim) are an error naming the input, row, position and
// value.
func TestIntegerInputs(t *testing.T) {
	const big = 1<<24 + 1 // not a float32
	data := kjson([]kin{{name: "tok", shape: []int{3}, dtype: "int64"}}, []kl{
		{class: "Embedding", name: "emb", config: fmt.Sprintf(`,"input_dim":%d,"output_dim":1,"embeddings_initializer":"zeros"`, big+1), in: []string{"tok"}},
		{class: "Dense", name: "d", config: `,"units":1,"use_bias":false,"kernel_initializer":"ones"`, in: []string{"tok"}},
	}, []string{"emb", "d"}, "")
	m := mustModel(t, data, WithThreads(1))
	m.wts[0].data[big] = 7 // row 2^24+1 only
	ids := []int32{big, 0, 1}
	m.runIDs([][]float32{nil}, [][]int32{ids}, 1, false)
	if got := m.val[m.g.outputs[0]]; got[0] != 7 || got[1] != 0 {
		t.Errorf("Embedding of id %d: got %v; want row %d (7), exactly", big, got, big)
	}
	if got, want := m.val[m.g.outputs[1]][0], float32(big)+1; got != want {
		t.Errorf("Dense on the ids: got %v; want their float sum %v", got, want)
	}
	// Floats truncate toward zero.
	m.run([][]float32{{2.9, 0.2, -0.5}}, 1, false)
	E := m.wts[0].data
	if got := m.val[m.g.outputs[0]]; got[0] != E[2] {
		t.Errorf("Embedding of 2.9: got %v; want row 2", got)
	}
	for _, tt := range []struct {
		ids  []int32
		want []string
	}{
		{[]int32{0, 1, 2, 3, big + 1, 0}, []string{`input "tok" row 1 position 1`, fmt.Sprintf("id %d", big+1), fmt.Sprintf("[0, %d)", big+1), `"emb"`}},
		{[]int32{-1, 0, 0}, []string{"row 0 position 0", "id -1"}},
	} {
		err := m.checkIDs(0, tt.ids, nil, len(tt.ids)/3)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("checkIDs(%v): got %v; want an error mentioning %q", tt.ids, err, w)
			}
		}
	}
	// The tensor methods check float ids too.
	m2 := mustModel(t, kjson(tokens5, []kl{emb(false), {class: "Flatten", name: "f", in: []string{"emb"}}}, []string{"f"}, ""))
	_, err := m2.Predict(tensor.New(tensor.WithShape(2, 5), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 1, 1, 6, 1, 1})))
	if err == nil || !strings.Contains(err.Error(), "row 1 position 2") || !strings.Contains(err.Error(), "id 6") {
		t.Errorf("Predict with id 6 of 6: got %v; want an error naming row 1 position 2 and id 6", err)
	}
	if err := m2.checkIDs(0, nil, []float32{5.9, 0, 0, 0, 0}, 1); err != nil {
		t.Errorf("checkIDs(5.9) of 6: got %v; want none (it truncates to 5)", err)
	}
}

// TestSparseGradients: an Embedding's gradient is listed as the rows the
// batch used (ascending, each once, the same values as the dense
// gradient, which is zero elsewhere); with a regularizer it is dense and
// not listed.
func TestSparseGradients(t *testing.T) {
	for _, reg := range []bool{false, true} {
		cfg := `,"input_dim":9,"output_dim":2,"embeddings_initializer":"random_normal"`
		if reg {
			cfg += `,"embeddings_regularizer":"l2"`
		}
		data := kjson(tokens5, []kl{
			{class: "Embedding", name: "e", config: cfg, in: []string{"tok"}},
			{class: "Flatten", name: "f", in: []string{"e"}},
			{class: "Dense", name: "d", config: `,"units":1`, in: []string{"f"}},
		}, []string{"d"}, `{"optimizer":"sgd","loss":"mse"}`)
		m := mustModel(t, data, WithSeed(1))
		ids := []int32{7, 1, 7, 0, 3, 3, 3, 8, 1, 1}
		m.stepIDs([][]float32{nil}, [][]int32{ids}, [][]float32{{1, -1}}, 2)
		sg := m.SparseGradients()
		if reg {
			if len(sg) != 0 {
				t.Errorf("with a regularizer: got %d sparse gradients; want none (dense)", len(sg))
			}
			continue
		}
		if len(sg) != 1 || sg[0].Weight != 0 || sg[0].Width != 2 {
			t.Fatalf("SparseGradients: got %+v; want one, of weight 0, width 2", sg)
		}
		if want := []int32{0, 1, 3, 7, 8}; !slices.Equal(sg[0].Rows, want) {
			t.Errorf("rows: got %v; want %v", sg[0].Rows, want)
		}
		dense := m.grads[0]
		for k, r := range sg[0].Rows {
			if !slices.Equal(sg[0].Values[k*2:k*2+2], dense[r*2:r*2+2]) {
				t.Errorf("row %d: got %v; want %v (the dense gradient)", r, sg[0].Values[k*2:k*2+2], dense[r*2:r*2+2])
			}
		}
		for r := 0; r < 9; r++ {
			if !slices.Contains(sg[0].Rows, int32(r)) && (dense[2*r] != 0 || dense[2*r+1] != 0) {
				t.Errorf("row %d is not listed but its gradient is %v", r, dense[2*r:2*r+2])
			}
		}
		// A second step lists its own rows only.
		m.stepIDs([][]float32{nil}, [][]int32{{2, 2, 2, 2, 2, 2, 2, 2, 2, 2}}, [][]float32{{1, -1}}, 2)
		if sg := m.SparseGradients(); len(sg) != 1 || !slices.Equal(sg[0].Rows, []int32{2}) {
			t.Errorf("second step: got %+v; want row 2 only", sg)
		}
	}
}

// TestOrthogonal: Keras' Orthogonal initializer gives orthonormal rows or
// columns (whichever are fewer), times its gain.
func TestOrthogonal(t *testing.T) {
	for _, sh := range [][2]int{{4, 16}, {16, 4}, {5, 5}} {
		rows, cols := sh[0], sh[1]
		data := make([]float32, rows*cols)
		orthogonal(data, rows, 2, rand.New(rand.NewPCG(1, 2)))
		k, n := min(rows, cols), max(rows, cols)
		at := func(v, i int) float64 { // vector v (of the k), entry i
			if rows >= cols {
				return float64(data[i*cols+v])
			}
			return float64(data[v*cols+i])
		}
		for a := 0; a < k; a++ {
			for b := 0; b < k; b++ {
				var dot float64
				for i := 0; i < n; i++ {
					dot += at(a, i) * at(b, i)
				}
				want := 0.0
				if a == b {
					want = 4 // gain²
				}
				if math.Abs(dot-want) > 1e-5 {
					t.Fatalf("%dx%d: vectors %d·%d = %v; want %v", rows, cols, a, b, dot, want)
				}
			}
		}
	}
}

// rnnRef is a plain per-sample, per-step loop of an RNN layer's forward
// pass (return_sequences, optionally go_backwards and a mask), in float64:
// the reference the time-major, GEMM-based rnn is tested against.
func rnnRef(kind string, resetAfter, back bool, x []float32, mask []bool, B, T, F, u int, W, U, bias []float32) []float64 {
	G := map[string]int{"simple": 1, "lstm": 4, "gru": 3}[kind]
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	out := make([]float64, B*T*u)
	for b := 0; b < B; b++ {
		h, c := make([]float64, u), make([]float64, u)
		for s := 0; s < T; s++ {
			t := s
			if back {
				t = T - 1 - s
			}
			xt := x[(b*T+t)*F : (b*T+t+1)*F]
			zx, zh := make([]float64, G*u), make([]float64, G*u)
			for j := 0; j < G*u; j++ {
				for f := 0; f < F; f++ {
					zx[j] += float64(xt[f]) * float64(W[f*G*u+j])
				}
				for k := 0; k < u; k++ {
					zh[j] += h[k] * float64(U[k*G*u+j])
				}
				if bias != nil {
					zx[j] += float64(bias[j])
					if kind == "gru" && resetAfter {
						zh[j] += float64(bias[G*u+j])
					}
				}
			}
			nh, nc := make([]float64, u), make([]float64, u)
			for j := 0; j < u; j++ {
				switch kind {
				case "simple":
					nh[j] = math.Tanh(zx[j] + zh[j])
				case "lstm":
					i, f := sig(zx[j]+zh[j]), sig(zx[u+j]+zh[u+j])
					g, o := math.Tanh(zx[2*u+j]+zh[2*u+j]), sig(zx[3*u+j]+zh[3*u+j])
					nc[j] = f*c[j] + i*g
					nh[j] = o * math.Tanh(nc[j])
				case "gru":
					z, r := sig(zx[j]+zh[j]), sig(zx[u+j]+zh[u+j])
					var hh float64
					if resetAfter {
						hh = math.Tanh(zx[2*u+j] + r*zh[2*u+j])
					} else {
						var rh float64
						for k := 0; k < u; k++ {
							rk := sig(zx[u+k] + zh[u+k])
							rh += rk * h[k] * float64(U[k*G*u+2*u+j])
						}
						hh = math.Tanh(zx[2*u+j] + rh)
					}
					nh[j] = z*h[j] + (1-z)*hh
				}
			}
			if mask == nil || mask[b*T+t] {
				h, c = nh, nc
			}
			copy(out[(b*T+s)*u:(b*T+s+1)*u], h)
		}
	}
	return out
}

// TestRNNAgainstLoops checks the recurrent layers (threads 2, sizes the
// fixtures do not reach) against rnnRef, with and without a mask.
func TestRNNAgainstLoops(t *testing.T) {
	// The second size splits the cells' elementwise work over the threads.
	for _, size := range [][4]int{{7, 6, 5, 9}, {48, 5, 6, 40}} {
		testRNNAgainstLoops(t, size[0], size[1], size[2], size[3])
	}
}

func testRNNAgainstLoops(t *testing.T, B, T, F, u int) {
	for _, tt := range []struct {
		class, kind, extra string
		resetAfter         bool
	}{
		{"SimpleRNN", "simple", "", false},
		{"LSTM", "lstm", `,"unit_forget_bias":false`, false},
		{"GRU", "gru", "", true},
		{"GRU", "gru", `,"reset_after":false`, false},
	} {
		for _, back := range []bool{false, true} {
			for _, masked := range []bool{false, true} {
				name := fmt.Sprintf("%s%s B=%d back=%v mask=%v", tt.class, tt.extra, B, back, masked)
				t.Run(name, func(t *testing.T) {
					layers := []kl{{class: "Masking", name: "mk", in: []string{"x"}},
						{class: tt.class, name: "r", config: fmt.Sprintf(`,"units":%d,"return_sequences":true,"go_backwards":%v,"bias_initializer":"random_normal"%s`, u, back, tt.extra), in: []string{"mk"}}}
					if !masked {
						layers[1].in = []string{"x"}
					}
					m := mustModel(t, kjson([]kin{{name: "x", shape: []int{T, F}}}, layers, []string{"r"}, ""), WithSeed(2), WithThreads(2))
					rng := rand.New(rand.NewPCG(4, 5))
					x := randFloats(rng, B*T*F, -1, 1)
					var mask []bool
					if masked {
						mask = make([]bool, B*T)
						for i := range mask {
							mask[i] = rng.IntN(3) > 0
							if !mask[i] {
								clear(x[i*F : (i+1)*F])
							}
						}
					}
					m.run([][]float32{x}, B, false)
					w := m.Weights()
					want := rnnRef(tt.kind, tt.resetAfter, back, x, mask, B, T, F, u, w[0].Data, w[1].Data, w[2].Data)
					got := m.val[m.g.outputs[0]]
					for i, v := range want {
						if !close(float64(got[i]), v, 1e-5, 1e-4) {
							t.Fatalf("output %d: got %v; want %v (plain loop)", i, got[i], v)
						}
					}
				})
			}
		}
	}
}

// mhaRef is a plain loop of MultiHeadAttention's forward pass on a
// self-attention call (query = value = key) with an optional pair mask.
func mhaRef(x []float32, ok func(b, i, j int) bool, B, T, D, H, kd int, w [][]float32) []float64 {
	proj := func(W, bias []float32, b, t, h, k int) float64 {
		v := float64(bias[h*kd+k])
		for d := 0; d < D; d++ {
			v += float64(x[(b*T+t)*D+d]) * float64(W[d*H*kd+h*kd+k])
		}
		return v
	}
	out := make([]float64, B*T*D)
	for b := 0; b < B; b++ {
		for i := 0; i < T; i++ {
			o := make([]float64, H*kd)
			for h := 0; h < H; h++ {
				s := make([]float64, T)
				mx := math.Inf(-1)
				any := false
				for j := 0; j < T; j++ {
					if !ok(b, i, j) {
						continue
					}
					any = true
					for k := 0; k < kd; k++ {
						s[j] += proj(w[0], w[1], b, i, h, k) * proj(w[2], w[3], b, j, h, k)
					}
					s[j] /= math.Sqrt(float64(kd))
					mx = math.Max(mx, s[j])
				}
				var sum float64
				p := make([]float64, T)
				for j := 0; j < T; j++ {
					switch {
					case !any:
						p[j] = 1 // a row with every pair masked: uniform
					case ok(b, i, j):
						p[j] = math.Exp(s[j] - mx)
					}
					sum += p[j]
				}
				for j := 0; j < T; j++ {
					for k := 0; k < kd; k++ {
						o[h*kd+k] += p[j] / sum * proj(w[4], w[5], b, j, h, k)
					}
				}
			}
			for d := 0; d < D; d++ {
				v := float64(w[7][d])
				for hk, ov := range o {
					v += ov * float64(w[6][hk*D+d])
				}
				out[(b*T+i)*D+d] = v
			}
		}
	}
	return out
}

// TestMultiHeadAttentionAgainstLoops checks MultiHeadAttention (threads
// 2) against mhaRef, plain, causal and with a padding mask.
func TestMultiHeadAttentionAgainstLoops(t *testing.T) {
	const B, T, D, H, kd = 8, 12, 6, 3, 4 // the pairs split over the threads
	rng := rand.New(rand.NewPCG(8, 9))
	x := randFloats(rng, B*T*D, -1, 1)
	keep := make([]bool, B*T)
	for i := range keep {
		keep[i] = i%T < T-i/T // row b keeps its first T-b steps
		if !keep[i] {
			clear(x[i*D : (i+1)*D])
		}
	}
	for _, tt := range []struct {
		name   string
		layers []kl
		ok     func(b, i, j int) bool
	}{
		{"plain", nil, func(b, i, j int) bool { return true }},
		{"causal", nil, func(b, i, j int) bool { return j <= i }},
		{"masked", []kl{{class: "Masking", name: "mk", in: []string{"x"}}}, func(b, i, j int) bool { return keep[b*T+i] && keep[b*T+j] }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := "x"
			if tt.layers != nil {
				src = "mk"
			}
			kw := ""
			if tt.name == "causal" {
				kw = `"use_causal_mask":true`
			}
			layers := append(tt.layers, kl{class: "MultiHeadAttention", name: "mha", config: fmt.Sprintf(`,"num_heads":%d,"key_dim":%d,"bias_initializer":"random_normal"`, H, kd), in: []string{src, src}, kwargs: kw})
			m := mustModel(t, kjson([]kin{{name: "x", shape: []int{T, D}}}, layers, []string{"mha"}, ""), WithSeed(6), WithThreads(2))
			m.run([][]float32{x}, B, false)
			var w [][]float32
			for _, nt := range m.Weights() {
				w = append(w, nt.Data)
			}
			want := mhaRef(x, tt.ok, B, T, D, H, kd, w)
			got := m.val[m.g.outputs[0]]
			for i, v := range want {
				if !close(float64(got[i]), v, 1e-5, 1e-4) {
					t.Fatalf("output %d: got %v; want %v (plain loop)", i, got[i], v)
				}
			}
		})
	}
}

// TestSeqStepAllocs: a training step of a model with every sequence layer
// kind allocates nothing once its buffers exist.
func TestSeqStepAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	data := kjson(tokens5, []kl{emb(true),
		{class: "LSTM", name: "l", config: `,"units":4,"return_sequences":true`, in: []string{"emb"}},
		{class: "Bidirectional", name: "bi", config: `,"layer":{"class_name":"GRU","config":{"name":"g","units":2,"return_sequences":true}}`, in: []string{"l"}},
		{class: "MultiHeadAttention", name: "mha", config: `,"num_heads":2,"key_dim":2`, in: []string{"bi", "bi"}},
		{class: "Attention", name: "att", in: []string{"mha", "bi"}},
		{class: "TimeDistributed", name: "td", config: `,"layer":{"class_name":"Dense","config":{"name":"inner","units":3}}`, in: []string{"att"}},
		{class: "SimpleRNN", name: "s", config: `,"units":3,"dropout":0.2,"recurrent_dropout":0.1`, in: []string{"td"}},
		{class: "Dense", name: "out", config: `,"units":2,"activation":"softmax"`, in: []string{"s"}},
	}, []string{"out"}, `{"optimizer":"adam","loss":"sparse_categorical_crossentropy","metrics":["accuracy"]}`)
	m := mustModel(t, data, WithThreads(1))
	ids := [][]int32{append(append([]int32(nil), tokenIDs...), tokenIDs...)}
	y := [][]float32{{0, 1, 1, 0}}
	step := func() {
		m.stepIDs([][]float32{nil}, ids, y, 4)
		if err := m.opt.Apply(m.params, m.grads); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if n := testing.AllocsPerRun(10, step); n != 0 {
		t.Errorf("allocations per step: got %v; want 0", n)
	}
}

// TestSpecInputsIDs: Spec.Inputs marks the integer inputs.
func TestSpecInputsIDs(t *testing.T) {
	s, err := ParseSpec(kjson([]kin{{name: "tok", shape: []int{5}, dtype: "int64"}, {name: "x", shape: []int{3}}},
		[]kl{{class: "Dense", name: "d", config: `,"units":1`, in: []string{"x"}}}, []string{"d"}, ""))
	if err != nil {
		t.Fatal(err)
	}
	if in := s.Inputs(); !in[0].IDs || in[1].IDs {
		t.Errorf("Inputs: got %+v; want tok marked as ids, x not", in)
	}
}

// TestSeqSpecErrors: what the sequence layers cannot do is refused by
// name when the spec is parsed.
func TestSeqSpecErrors(t *testing.T) {
	seq := []kin{{name: "x", shape: []int{4, 3}}}
	tests := []struct {
		name   string
		inputs []kin
		layers []kl
		want   []string
	}{
		{"stateful", seq, []kl{{class: "LSTM", name: "l", config: `,"units":2,"stateful":true`, in: []string{"x"}}}, []string{`"l"`, "stateful true is not supported"}},
		{"initial_state count", seq, []kl{{class: "Dense", name: "h", config: `,"units":2`, in: []string{"x"}},
			{class: "LSTM", name: "l", config: `,"units":2`, in: []string{"x"}, kwargs: `"initial_state":[@h]`}}, []string{`"l"`, "initial_state", "2 state tensors, got 1"}},
		{"return_attention_scores", seq, []kl{{class: "MultiHeadAttention", name: "m", config: `,"num_heads":1,"key_dim":2`, in: []string{"x", "x"}, kwargs: `"return_attention_scores":true`}},
			[]string{`"m"`, "return_attention_scores true is not supported"}},
		{"unknown call argument", seq, []kl{{class: "GRU", name: "g", config: `,"units":2`, in: []string{"x"}, kwargs: `"constants":1`}}, []string{`"g"`, "constants"}},
		{"operation as data", seq, []kl{{class: "Add", name: "plus", in: []string{"x", "x"}, module: "keras.src.ops.numpy"},
			{class: "Dense", name: "d", config: `,"units":2`, in: []string{"plus"}}}, []string{`"d"`, "Keras operation Add", "mask computations"}},
		{"Bidirectional of a Dense", seq, []kl{{class: "Bidirectional", name: "b", config: `,"layer":{"class_name":"Dense","config":{"name":"d","units":2}}`, in: []string{"x"}}},
			[]string{`"b"`, "recurrent layer", "Dense"}},
		{"TimeDistributed BatchNormalization", seq, []kl{{class: "TimeDistributed", name: "td", config: `,"layer":{"class_name":"BatchNormalization","config":{"name":"bn"}}`, in: []string{"x"}}},
			[]string{`"td"`, "BatchNormalization inside TimeDistributed"}},
		{"sliding_window", seq, []kl{{class: "MultiHeadAttention", name: "m", config: `,"num_heads":1,"key_dim":2,"sliding_window":3`, in: []string{"x", "x"}}}, []string{`"m"`, "sliding_window"}},
		{"attention_axes", []kin{{name: "x", shape: []int{2, 4, 3}}}, []kl{{class: "MultiHeadAttention", name: "m", config: `,"num_heads":1,"key_dim":2,"attention_axes":[1,2]`, in: []string{"x", "x"}}}, []string{`"m"`, "attention_axes"}},
		{"Embedding constraint", tokens5, []kl{{class: "Embedding", name: "e", config: `,"input_dim":3,"output_dim":2,"embeddings_constraint":"non_neg"`, in: []string{"tok"}}}, []string{`"e"`, "embeddings_constraint"}},
		{"merge_mode", seq, []kl{{class: "Bidirectional", name: "b", config: `,"merge_mode":"max","layer":{"class_name":"GRU","config":{"name":"g","units":2}}`, in: []string{"x"}}}, []string{`"b"`, `merge_mode "max"`}},
		{"int64 ids in a float dtype layer", []kin{{name: "x", shape: []int{3}, dtype: "uint8"}}, []kl{{class: "Dense", name: "d", config: `,"units":1`, in: []string{"x"}}}, []string{"uint8", "int32 or int64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec(kjson(tt.inputs, tt.layers, []string{tt.layers[len(tt.layers)-1].name}, ""))
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("got %v; want an error mentioning %q", err, w)
				}
			}
		})
	}
}

// TestSparseGradientsAllocs: once its buffers exist, SparseGradients
// allocates nothing.
func TestSparseGradientsAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	m := mustModel(t, kjson(tokens5, []kl{emb(false), {class: "Flatten", name: "f", in: []string{"emb"}}}, []string{"f"}, `{"optimizer":"sgd","loss":"mse"}`))
	m.stepIDs([][]float32{nil}, [][]int32{tokenIDs}, [][]float32{make([]float32, 30)}, 2)
	m.SparseGradients()
	if n := testing.AllocsPerRun(10, func() { m.SparseGradients() }); n != 0 {
		t.Errorf("allocations per call: got %v; want 0", n)
	}
}
