package gokernel

import (
	"encoding/json"
	"testing"
)

type metricCase struct {
	Name    string          `json:"name"`
	Config  json.RawMessage `json:"config"`
	Batches []struct {
		Y kerasTensor `json:"y"`
		P kerasTensor `json:"p"`
	} `json:"batches"`
	Result     float64 `json:"result"`
	Partitions bool    `json:"partitions"`
}

// TestKerasMetricParity compares each metric of testdata/keras/metrics.json
// (made by make_compile_fixtures.py) with Keras' result after the same
// batches, within 1e-5: a mean metric summed over the rows, a stateful one
// through its state, one state per batch added up as the partitions of a
// distributed evaluation add theirs.
func TestKerasMetricParity(t *testing.T) {
	var fix struct {
		Cases []metricCase `json:"cases"`
	}
	readKerasFixture(t, "metrics.json", &fix)
	if len(fix.Cases) < 25 {
		t.Fatalf("%d cases in metrics.json; want the full set", len(fix.Cases))
	}
	for _, c := range fix.Cases {
		t.Run(c.Name, func(t *testing.T) {
			o, _ := newObj("test", json.RawMessage(`{}`))
			ms, err := parseMetric(o, c.Config)
			if err != nil {
				t.Fatalf("parseMetric(%s): %v", c.Config, err)
			}
			m := c.Batches[0].P.Shape[1]
			var got float64
			if ms.st != nil {
				total := make([]float64, ms.st.size(m))
				for _, b := range c.Batches {
					part := make([]float64, ms.st.size(m))
					ms.st.add(part, b.P.Data, b.Y.Data, b.P.Shape[0], m)
					for i, v := range part {
						total[i] += v
					}
				}
				got = ms.st.result(total, m)
			} else {
				var sum float64
				rows := 0
				for _, b := range c.Batches {
					sum += ms.metricSum(b.P.Data, b.Y.Data, b.P.Shape[0], m, ms.sparseLabels())
					rows += b.P.Shape[0]
				}
				got = sum / float64(rows)
			}
			if !closeRel(float32(got), float32(c.Result), 1e-5) {
				t.Errorf("%s: got %.8g; want %.8g (Keras)", ms.name, got, c.Result)
			}
		})
	}
}

// TestAUCOverPartitions checks that the AUC of rows split into 4 partitions,
// each evaluated by its own model and their sums added (as Spark merges
// them), equals Keras' AUC over all the rows: the histograms add exactly.
func TestAUCOverPartitions(t *testing.T) {
	var fix struct {
		Cases []metricCase `json:"cases"`
	}
	readKerasFixture(t, "metrics.json", &fix)
	n := 0
	for _, c := range fix.Cases {
		if !c.Partitions {
			continue
		}
		n++
		t.Run(c.Name, func(t *testing.T) {
			if len(c.Batches) != 4 {
				t.Fatalf("%d partitions; want 4", len(c.Batches))
			}
			// An identity model: one input, the prediction passes through.
			spec, err := ParseSpec(seqJSON(1, `"binary_crossentropy"`, `[`+string(c.Config)+`]`, dense("d", 1, "linear", `,"kernel_initializer":"ones","bias_initializer":"zeros"`)))
			if err != nil {
				t.Fatal(err)
			}
			var total Sums
			var whole []float32
			var wholeY []float32
			for _, b := range c.Batches {
				m, err := NewModel(spec)
				if err != nil {
					t.Fatal(err)
				}
				s, err := m.EvaluateSums(tensorOf(b.P.Shape[0], 1, b.P.Data...), tensorOf(b.Y.Shape[0], 1, b.Y.Data...))
				if err != nil {
					t.Fatal(err)
				}
				total = total.Add(s)
				whole = append(whole, b.P.Data...)
				wholeY = append(wholeY, b.Y.Data...)
			}
			m, _ := NewModel(spec)
			name := spec.Metrics()[0]
			merged := m.Result(total)[name]
			all, err := m.Evaluate(tensorOf(len(whole), 1, whole...), tensorOf(len(wholeY), 1, wholeY...))
			if err != nil {
				t.Fatal(err)
			}
			if merged != all[name] {
				t.Errorf("AUC of the merged partitions %.10g; of all rows at once %.10g: want them equal", merged, all[name])
			}
			if !closeRel(float32(merged), float32(c.Result), 1e-5) {
				t.Errorf("AUC over 4 partitions %.8g; Keras over all rows %.8g", merged, c.Result)
			}
		})
	}
	if n != 2 {
		t.Fatalf("%d partition cases; want 2 (ROC and PR)", n)
	}
}
