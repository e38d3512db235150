//go:build race

package pipe

// raceEnabled: the race detector slows training about twentyfold, so the
// MNIST tests train on less.
const raceEnabled = true
