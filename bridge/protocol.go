package bridge

// The executor pipe protocol. This file is the one Go definition of it; the
// Scala shim mirrors these values in io.gophas.spark.Protocol.
//
// A task on stdin:
//
//	length  4 bytes, big-endian uint32 N, 0 < N <= MaxHeaderBytes
//	header  N bytes of UTF-8 JSON, one object: the Header
//	input   one Arrow IPC stream: schema, record batches, end-of-stream
//
// The worker answers on stdout with one Arrow IPC stream (schema, batches,
// end-of-stream, uncompressed) and nothing else. Logs go to stderr. On
// failure the worker exits with ExitError and its last stderr line starts
// with ErrorPrefix and names the cause (column, row, field, value); stdout
// may then hold a partial stream, which the shim must ignore.
//
// Every single wait for a read on stdin or a write on stdout is bounded by
// the header's ioTimeoutMs (DefaultIOTimeout before the header is read); a
// stall ends the task with an error naming the side and the time waited.
// The worker reads nothing after the input's end-of-stream marker.
//
// The output stream of each mode:
//
//	echo      the input batches unchanged: same schema, values bit for bit,
//	          order kept; a batch longer than batchRows is split into
//	          consecutive slices; no batches in gives an empty stream with the
//	          schema.
//	describe  exactly one batch of DescribeSchema: one row per column of the
//	          dense feature matrix (name = the features column, or each of
//	          featuresCols; index = position in that column's vector, 0 for a
//	          scalar column), then the same for the label column when the
//	          input has it. The features go through arrowio exactly as
//	          training will (nulls, ragged rows, NaN are errors). count is the
//	          number of rows, sum adds the float32 values in float64, mean =
//	          sum/count; with no rows count is 0, sum 0 and min, max, mean NaN
//	          (never null). A column whose width is unknown (a list column and
//	          no rows) has no rows in the output. batchRows does not apply.
//	predict   every input column unchanged (same order, zero-copy) plus the
//	          column predictionCol appended: the output of the model in
//	          header field model for each row's features (converted as
//	          describe does), as float64 when the model has one output and
//	          as list<float64> of OutputDim values otherwise. Rows keep their
//	          order; a batch longer than batchRows is split, a batch of no
//	          rows is dropped; no rows in gives an empty stream with the
//	          schema. A features width other than the model's InputDim, or
//	          an input column already named predictionCol, is an error
//	          before any output.
//	evaluate  exactly one batch of EvaluateSchema: one row per key of the
//	          model's evaluation, "loss" first then each compiled metric,
//	          with sum = the sum over the partition's rows of the per-row
//	          value (loss with regularization, as gokernel.Sums) and count =
//	          the rows; the shim combines partitions as sum of sums / sum of
//	          counts. The label column is a class index (numeric; for
//	          sparse_categorical_crossentropy, or one-hot encoded when the
//	          model has several outputs) or OutputDim values (a vector
//	          column or one numeric column). No rows in gives no rows out.
//	          batchRows does not apply.

import "time"

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

// HeaderLengthBytes is the size of the big-endian length before the header.
const HeaderLengthBytes = 4

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
	ModePredict  = "predict"  // input columns + the model's prediction
	ModeEvaluate = "evaluate" // per-key loss and metric sums and counts
)

// Default column names of a task.
const (
	DefaultFeaturesCol   = "features"
	DefaultLabelCol      = "label"
	DefaultPredictionCol = "prediction"
)

// Defaults of the other header fields.
const (
	DefaultBatchRows = 10000            // rows per output batch at most
	DefaultIOTimeout = 10 * time.Minute // per read or write wait on the pipe
	DefaultPartition = -1               // unknown Spark partition
)

// Header is the JSON task header. Field names are matched exactly (case
// included); an unknown field is an error naming it. Only Mode is required;
// a zero or absent field takes its default.
type Header struct {
	// Mode is the task: ModeEcho, ModeDescribe, ModePredict or
	// ModeEvaluate. Required.
	Mode string `json:"mode"`
	// Protocol, when present, must equal ProtocolVersion.
	Protocol int `json:"protocol,omitempty"`
	// FeaturesCol is the vector (or numeric) column of the features;
	// default DefaultFeaturesCol. Ignored when FeaturesCols is set.
	FeaturesCol string `json:"featuresCol,omitempty"`
	// FeaturesCols, when not empty, names several columns (numeric or
	// vector) concatenated in order as the features.
	FeaturesCols []string `json:"featuresCols,omitempty"`
	// LabelCol is the label column; default DefaultLabelCol. describe
	// summarizes it when the input has it.
	LabelCol string `json:"labelCol,omitempty"`
	// Model is the directory of a model written by gokernel.SaveModel
	// (model.json and model.safetensors) on the worker's local disk.
	// Required for predict and evaluate.
	Model string `json:"model,omitempty"`
	// PredictionCol is the column predict appends; default
	// DefaultPredictionCol.
	PredictionCol string `json:"predictionCol,omitempty"`
	// BatchRows caps the rows of an output batch; 0 means DefaultBatchRows.
	BatchRows int `json:"batchRows,omitempty"`
	// IOTimeoutMs bounds every single read or write wait on stdin and
	// stdout, in milliseconds; 0 means DefaultIOTimeout.
	IOTimeoutMs int64 `json:"ioTimeoutMs,omitempty"`
	// Threads is the number of OS threads running Go code for the task
	// (GOMAXPROCS); 0 keeps GOMAXPROCS.
	Threads int `json:"threads,omitempty"`
	// Partition is the Spark partition id, used only in messages; default
	// DefaultPartition.
	Partition int `json:"partition"`
}

// DescribeFields are the columns of the describe output, in order:
// name utf8, index int32, count int64, sum, min, max, mean float64, none
// nullable.
var DescribeFields = []string{"name", "index", "count", "sum", "min", "max", "mean"}

// EvaluateFields are the columns of the evaluate output, in order:
// key utf8, sum float64, count int64, none nullable.
var EvaluateFields = []string{"key", "sum", "count"}
