// Package pipe is the executor process boundary: `gophas worker` runs one
// Spark task per process, read from stdin as a length-prefixed JSON header
// and one Arrow IPC stream and answered on stdout with one Arrow IPC stream,
// with a deadline on every wait, a memory limit, death with its parent, and
// any panic turned into an error naming the partition and mode.
//
// The wire format, the header and each mode's output are defined in package
// protocol; this package runs them. Work reads the header and looks the mode
// up in one explicit table (modes, in work.go): echo, describe (echo.go,
// describe.go), predict and evaluate (predict.go, evaluate.go, over the
// kernel's loader and label shaping), and train (train.go), which feeds the
// partition's rows into the kernel's training loop (gokernel.Epoch) and
// carries out the distributed rules of package rules against the parameter
// server of package ps around each step.
package pipe
