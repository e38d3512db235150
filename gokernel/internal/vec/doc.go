// Package vec holds the element-wise float32 loops of the optimizers, of
// the sigmoid and tanh activations (act.go), of ReLU, bias gradients and
// patch sums (relu.go) and of 2×2 max pooling (pool.go), each with a plain
// Go reference beside an AVX2 fast path chosen at run time
// (golang.org/x/sys/cpu) and tested against it.
//
// Adam is the update of keras.optimizers.Adam over one parameter slice:
//
//	m ← m + (g − m)·c1
//	v ← v + (g² − v)·c2
//	m, v ← 0 where they are subnormal
//	p ← p − m·α/(√v + ε)
//
// Flushing subnormal moments to zero matches TensorFlow on the CPU, which
// runs with flush-to-zero and denormals-are-zero set, and keeps the update
// fast: a weight whose gradient stays zero (an MNIST pixel that is blank in
// every later batch) sees its first moment shrink by β₁ = 0.9 per step and
// turn subnormal within about 800 steps, and each arithmetic operation on a
// subnormal costs a microcode assist (about a hundred cycles) on Intel cores.
package vec
