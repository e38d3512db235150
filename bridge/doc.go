// Package bridge is the process boundary of Gophas: the executor worker loop
// (header, Arrow input stream, Arrow output stream, error reporting) and the
// driver process lifecycle.
//
// A Spark task starts `gophas worker` (Worker) and writes a task to its
// stdin: a 4-byte big-endian length, that many bytes of JSON Header, then one
// Arrow IPC stream. Work runs the header's mode and answers with one Arrow IPC
// stream on stdout; protocol.go defines the wire format, the header fields
// and each mode's output. Every wait on the pipe has a deadline, a panic
// becomes an error, and errors name the partition, column, row or field.
// The train mode trains one epoch of a partition through the parameter
// server of package ps.
//
// The Spark driver starts `gophas driver` (Driver), which serves the
// parameter server, prints one ready line and then answers one JSON command
// line on stdin (load, save, epoch, stats, forget; see control.go) with one JSON
// line on stdout until stdin closes. Inspect describes a model spec for the
// shim (`gophas inspect`).
package bridge
