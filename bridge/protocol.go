package bridge

// The executor pipe protocol. This file is the one Go definition of it; the
// Scala shim mirrors these values in io.gophas.spark.Protocol.
//
// A task on stdin: a 4-byte big-endian length N, N bytes of UTF-8 JSON (the
// Header), then one Arrow IPC stream (schema, record batches, end-of-stream).
// The worker answers on stdout with one Arrow IPC stream and nothing else.
// Logs go to stderr. On failure the worker exits non-zero and its last stderr
// line starts with ErrorPrefix and names the cause.

// ProtocolVersion is bumped whenever the pipe or the RPC contract changes in
// a way the other side must know about. `gophas version` reports it and the
// shim refuses a binary whose version differs from its own.
const ProtocolVersion = 1

// Version is the release of this binary; the build may override it with
// -ldflags "-X github.com/gophas/gophas/bridge.Version=...".
var Version = "0.1.0"

// MaxHeaderBytes bounds the JSON header so a corrupt length prefix cannot
// make the worker allocate without bound.
const MaxHeaderBytes = 1 << 20

// ErrorPrefix starts the last stderr line of a failed worker.
const ErrorPrefix = "gophas: "

// Exit statuses of the gophas binary.
const (
	ExitOK    = 0
	ExitError = 1 // the task failed; the reason is the last stderr line
	ExitUsage = 2 // bad command line
)

// Modes of a worker task.
const (
	ModeEcho     = "echo"     // return the input batches unchanged
	ModeDescribe = "describe" // per-feature count, sum, min, max, mean
)

// Default column names of a task.
const (
	DefaultFeaturesCol = "features"
	DefaultLabelCol    = "label"
)
