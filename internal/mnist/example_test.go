package mnist_test

import (
	"fmt"
	"log"

	"github.com/gophas/gophas/internal/fixture"
	"github.com/gophas/gophas/internal/mnist"
)

func Example() {
	dir, err := fixture.MNISTDir()
	if err != nil {
		log.Fatal(err)
	}
	train, test, err := mnist.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(train.N, test.N, len(train.Images)/train.N, train.Labels[0])
	// Output: 60000 10000 784 5
}
