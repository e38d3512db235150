package gokernel_test

import (
	"fmt"
	"log"

	"github.com/gophas/gophas/gokernel"
	"gorgonia.org/tensor"
)

// A two-input perceptron with a sigmoid output, its weights set by hand.
func Example() {
	spec, err := gokernel.ParseSpec([]byte(`{"class_name": "Sequential", "config": {"name": "tiny", "layers": [
		{"class_name": "InputLayer", "config": {"batch_shape": [null, 2], "name": "in"}},
		{"class_name": "Dense", "config": {"name": "out", "units": 1, "activation": "sigmoid"}}]}}`))
	if err != nil {
		log.Fatal(err)
	}
	m, err := gokernel.NewModel(spec)
	if err != nil {
		log.Fatal(err)
	}
	err = m.SetWeights([]gokernel.NamedTensor{
		{Name: "out/kernel", Shape: []int{2, 1}, Data: []float32{2, -1}},
		{Name: "out/bias", Shape: []int{1}, Data: []float32{0.5}},
	})
	if err != nil {
		log.Fatal(err)
	}
	x := tensor.New(tensor.WithShape(3, 2), tensor.WithBacking([]float32{0, 0, 1, 0, 0, 1}))
	y, err := m.Predict(x)
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range m.Weights() {
		fmt.Println(w.Name, w.Shape)
	}
	fmt.Printf("%.4f\n", y.Data())
	// Output:
	// out/kernel [2 1]
	// out/bias [1]
	// [0.6225 0.9241 0.3775]
}
