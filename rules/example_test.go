package rules_test

import (
	"fmt"

	"github.com/gophas/gophas/rules"
)

// A synchronous worker pushing every batch, its epoch opened at round 7:
// each batch pulls its round's weights, trains, pushes and waits for the
// round to close.
func Example() {
	w := rules.New(rules.Config{Synchronous: true, PerBatch: true, Epoch: 2, Round: 7, Version: 7})
	for b := range 2 {
		a := w.Begin(b)
		if a.Kind == rules.Pull {
			a = w.Pulled(7 + uint64(b)) // the server closed the previous round
		}
		fmt.Println(b, a)
		a = w.Trained()
		fmt.Println(b, a)
		fmt.Println(b, w.Pushed())
	}
	fmt.Println(w.End())
	// Output:
	// 0 train:reset
	// 0 push:7
	// 0 wait:7
	// 1 train:reset
	// 1 push:8
	// 1 wait:8
	// done
}
