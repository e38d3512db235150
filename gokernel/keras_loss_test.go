package gokernel

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
)

// TestKerasLossParity compares each loss of testdata/keras/losses.json (made
// by make_compile_fixtures.py) with Keras: the batch loss within 1e-5 and
// its gradient with respect to the outputs within 1e-5, relative.
func TestKerasLossParity(t *testing.T) {
	var fix struct {
		Cases []struct {
			Name   string          `json:"name"`
			Config json.RawMessage `json:"config"`
			Y      kerasTensor     `json:"y"`
			P      kerasTensor     `json:"p"`
			Loss   float64         `json:"loss"`
			Grad   kerasTensor     `json:"grad"`
		} `json:"cases"`
	}
	readKerasFixture(t, "losses.json", &fix)
	if len(fix.Cases) < 20 {
		t.Fatalf("%d cases in losses.json; want the full set", len(fix.Cases))
	}
	for _, c := range fix.Cases {
		t.Run(c.Name, func(t *testing.T) {
			o, err := newObj("test", json.RawMessage(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			l, err := parseLoss(o, c.Config)
			if err != nil {
				t.Fatalf("parseLoss(%s): %v", c.Config, err)
			}
			rows, m := c.P.Shape[0], c.P.Shape[1]
			g := make([]float32, rows*m)
			got := l.lossSum(c.P.Data, c.Y.Data, rows, m, g, 1/float64(rows)) / float64(rows)
			if !closeRel(float32(got), float32(c.Loss), 1e-5) {
				t.Errorf("loss: got %.8g; want %.8g (Keras)", got, c.Loss)
			}
			compareTensors(t, "gradient", [][]float32{g}, []kerasTensor{c.Grad}, 1e-5)
			// Without a gradient buffer the loss is the same.
			if again := l.lossSum(c.P.Data, c.Y.Data, rows, m, nil, 0) / float64(rows); again != got {
				t.Errorf("loss without gradient: got %v; want %v", again, got)
			}
		})
	}
}

// TestLossGradientsFiniteDifferences checks every loss's gradient against
// central differences on its own (float64 sums over float32 inputs).
func TestLossGradientsFiniteDifferences(t *testing.T) {
	var fix struct {
		Cases []struct {
			Name   string          `json:"name"`
			Config json.RawMessage `json:"config"`
			Y      kerasTensor     `json:"y"`
			P      kerasTensor     `json:"p"`
		} `json:"cases"`
	}
	readKerasFixture(t, "losses.json", &fix)
	for _, c := range fix.Cases {
		t.Run(c.Name, func(t *testing.T) {
			o, _ := newObj("test", json.RawMessage(`{}`))
			l, err := parseLoss(o, c.Config)
			if err != nil {
				t.Fatal(err)
			}
			rows, m := c.P.Shape[0], c.P.Shape[1]
			p := append([]float32(nil), c.P.Data...)
			g := make([]float32, rows*m)
			l.lossSum(p, c.Y.Data, rows, m, g, 1)
			for i := range p {
				h := float32(2e-4) * float32(math.Max(1, math.Abs(float64(p[i]))))
				v := p[i]
				p[i] = v + h
				up := l.lossSum(p, c.Y.Data, rows, m, nil, 0)
				p[i] = v - h
				down := l.lossSum(p, c.Y.Data, rows, m, nil, 0)
				p[i] = v
				num := (up - down) / float64(2*h)
				if math.Abs(num-float64(g[i])) > 2e-2*math.Max(1, math.Abs(num)) {
					t.Errorf("element %d: analytic %.6g; central difference %.6g", i, g[i], num)
				}
			}
		})
	}
}

func ExampleSpec_Loss() {
	spec, err := ParseSpec(seqJSON(3, `{"class_name": "CategoricalFocalCrossentropy", "config": {"gamma": 1.0, "label_smoothing": 0.1}}`, "", dense("d", 2, "softmax", "")))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(spec.Loss())
	// Output: categorical_focal_crossentropy
}
