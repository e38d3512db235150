// Package protocol is the one Go definition of what crosses Gophas' process
// boundaries: the executor pipe (the task header and its keys, the modes,
// each mode's output schema, exit statuses and the error line), the driver
// process (its ready line, control commands and their answers, the stats
// record) and the line `gophas inspect` prints. The Scala shim mirrors every
// value in io.gophas.spark.Protocol, and protocol_test.go checks the mirror.
package protocol

// The executor pipe.
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
//	          scalar column), then the same for each label column (labelCol,
//	          or each of labelCols) the input has. The features go through arrowio exactly as
//	          training will (nulls, ragged rows, NaN are errors). count is the
//	          number of rows, sum adds the float32 values in float64, mean =
//	          sum/count; with no rows count is 0, sum 0 and min, max, mean NaN
//	          (never null). A column whose width is unknown (a list column and
//	          no rows) has no rows in the output. batchRows does not apply.
//	predict   every input column unchanged (same order, zero-copy) plus one
//	          column per model output appended, named by predictionCols
//	          (predictionCol for a model of one output): that output of
//	          the model in header field model for each row's features
//	          (converted as describe does; column i of featuresCols feeds
//	          input i), as float64 when the output has one value per row
//	          and as list<float64> of its values (its shape flattened)
//	          otherwise. Rows keep their order; a batch longer than
//	          batchRows is split, a batch of no rows is dropped; no rows in
//	          gives an empty stream with the schema. A features width other
//	          than the input's, a number of feature or prediction columns
//	          other than the model's inputs or outputs, or an input column
//	          already named as a prediction column, is an error before any
//	          output.
//	evaluate  exactly one batch of EvaluateSchema: one row per key of the
//	          model's evaluation, "loss" first then each compiled metric,
//	          with sum = the sum over the partition's rows of the per-row
//	          value (loss with regularization, as gokernel.Sums) and count =
//	          the rows; the shim combines partitions as sum of sums / sum of
//	          counts; with several outputs the keys are Keras' ("loss",
//	          "<output>_loss" per output, "<output>_<metric>"). Each
//	          output's label column (labelCols, or labelCol for a model of
//	          one output) is, for that output's loss, class indexes
//	          (numeric; for sparse_categorical_crossentropy, or one-hot
//	          encoded for categorical_crossentropy) or the output's values
//	          (a vector column or one numeric column), as
//	          gokernel.Spec.OutputLabels says. No rows in gives no rows out.
//	          batchRows does not apply. With the header field driver set,
//	          predict and evaluate take the spec from model and pull the
//	          current weights from the driver.
//	train     one epoch of the partition through the parameter server at
//	          driver (with token, and tlsFingerprint when TLS). The worker
//	          registers as worker (the server says mode, frequency, version
//	          and the last step it applied for this worker), pulls the
//	          weights into the spec of model (its weights file is ignored),
//	          loads optimizerState (a hash in the driver's model store) when
//	          set, and trains the rows, converted as evaluate does, in steps
//	          of batchSize with the spec's optimizer, through the kernel's
//	          training loop (gokernel.Epoch). The rows are shuffled in
//	          blocks of up to shuffleBufferBytes (arrival order with
//	          noShuffle); the rows of a block that do not fill a batch
//	          carry over to the next block, and the last batch of the
//	          partition may be short. The shuffle and the Dropout masks
//	          come from the epoch's streams of (seed, epoch, partition), as
//	          gokernel.EpochOptions says, so partition 0 of a one-worker
//	          fit draws what Model.Fit draws. Every push
//	          is a delta (weights after the local steps minus the weights
//	          pulled), as package rules decides: asynchronous and
//	          hogwild, frequency batch: pull before every batch, push after
//	          it with step epoch<<32 | (batch index + 1); frequency epoch:
//	          one push with step epoch<<32. synchronous, frequency batch:
//	          batch b belongs to round round+b: pull its weights, train,
//	          push with step round+b and wait for the round to close;
//	          frequency epoch: one push with step round. The worker
//	          registers for its epoch, which the driver has opened (control
//	          command epoch, whose answer is the round): a synchronous round
//	          closes only when every worker of the job has registered for
//	          the epoch and pushed or finished, so no worker waits for its
//	          peers itself. A registration for another epoch is refused. A
//	          retried task (a second registration in the epoch) skips
//	          (reads but does not train) the batches whose step the server
//	          already applied, and in synchronous mode the rounds that
//	          closed without it; a first attempt whose synchronous round
//	          closed without it fails naming itself (rules.ErrCannotJoin),
//	          and a round that times out fails the waiting workers' tasks
//	          naming the missing workers. The skipped rows are logged on
//	          stderr. At the end the worker tells
//	          the server it is done (also with no rows), stores its
//	          optimizer state (safetensors) in the driver's model store and
//	          writes exactly one batch of TrainSchema: one row per key,
//	          "loss" first then each compiled metric, with sum = the sum
//	          over the rows trained of the per-row training value (the
//	          batch means TrainOnBatch reports, before each step, times the
//	          batch's rows), count = the rows trained in this attempt and
//	          state "" (these rows are there with sum 0 and count 0 when no
//	          row was trained: an empty partition, or a retry that skipped
//	          everything); then one row with key TrainStateKey, sum 0,
//	          count 0 and state = the hex SHA-256 of the optimizer state (""
//	          when no row was trained). The shim combines partitions as sum of sums
//	          / sum of counts and passes each worker's state back as its
//	          optimizerState the next epoch. batchRows does not apply.

import (
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/gophas/gophas/gokernel"
	"github.com/gophas/gophas/ps"
)

// ProtocolVersion is bumped whenever the pipe or the RPC contract changes in
// a way the other side must know about. `gophas version` reports it and the
// shim refuses a binary whose version differs from its own. It is defined
// once, as ps.ProtocolVersion, because the parameter server's Register
// checks it too and ps cannot import this package.
const ProtocolVersion = ps.ProtocolVersion

// Version is the release of this binary; the build may override it with
// -ldflags "-X github.com/gophas/gophas/protocol.Version=...".
var Version = "0.1.0"

// MaxHeaderBytes bounds the JSON header so a corrupt length prefix cannot
// make the worker allocate without bound.
const MaxHeaderBytes = 1 << 20

// Bounds of the header's numbers. A header is another process' data, and
// its numbers size threads and buffers: GOMAXPROCS of 100000 exhausted the
// OS threads and a batch size of 1e8 ran the worker out of memory, both Go
// fatal errors no recover sees. The worker also checks the buffers a
// number sizes from the data (a step's rows, the shuffle buffer) against
// its memory limit.
const (
	MaxThreads   = 1024    // threads: GOMAXPROCS of one task
	MaxBatchRows = 1 << 24 // batchRows: rows of one output batch
	MaxBatchSize = 1 << 24 // batchSize: rows of one training step
	MaxEpochs    = 1 << 30 // epoch and epochs
)

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
	ModeTrain    = "train"    // one epoch on the partition through the driver
)

// Modes lists the worker modes, sorted.
var Modes = []string{ModeDescribe, ModeEcho, ModeEvaluate, ModePredict, ModeTrain}

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

	DefaultBatchSize          = 32        // train: rows per step (Keras' default)
	DefaultShuffleBufferBytes = 256 << 20 // train: rows held and shuffled at once
)

// Header is the JSON task header. Field names are matched exactly (case
// included); an unknown field is an error naming it. Only Mode is required;
// a zero or absent field takes its default.
type Header struct {
	// Mode is the task: ModeEcho, ModeDescribe, ModePredict, ModeEvaluate
	// or ModeTrain. Required.
	Mode string `json:"mode"`
	// Protocol, when present, must equal ProtocolVersion.
	Protocol int `json:"protocol,omitempty"`
	// FeaturesCol is the vector (or numeric) column of the features;
	// default DefaultFeaturesCol. Ignored when FeaturesCols is set.
	FeaturesCol string `json:"featuresCol,omitempty"`
	// FeaturesCols, when not empty, names one column (numeric or vector)
	// per model input, in the model's input order (Keras' model.inputs):
	// column i feeds input i. describe summarizes each.
	FeaturesCols []string `json:"featuresCols,omitempty"`
	// LabelCol is the label column; default DefaultLabelCol. describe
	// summarizes it when the input has it. Ignored when LabelCols is set.
	LabelCol string `json:"labelCol,omitempty"`
	// LabelCols, when not empty, names one label column per model output,
	// in the model's output order (Keras' model.output_names); the entry
	// of an output without a loss is "" (it takes no label). describe
	// summarizes each present.
	LabelCols []string `json:"labelCols,omitempty"`
	// Model is the directory of a model written by gokernel.SaveModel
	// (model.json and model.safetensors) on the worker's local disk.
	// Required for predict, evaluate and train. With Driver set, only its
	// model.json is read: the weights come from the driver.
	Model string `json:"model,omitempty"`
	// PredictionCol is the column predict appends; default
	// DefaultPredictionCol. Ignored when PredictionCols is set.
	PredictionCol string `json:"predictionCol,omitempty"`
	// PredictionCols, when not empty, names the column predict appends
	// for each model output, in the model's output order; required (one
	// per output) for a model with several outputs.
	PredictionCols []string `json:"predictionCols,omitempty"`
	// BatchRows caps the rows of an output batch; 0 means DefaultBatchRows;
	// at most MaxBatchRows.
	BatchRows int `json:"batchRows,omitempty"`
	// IOTimeoutMs bounds every single read or write wait on stdin and
	// stdout, in milliseconds; 0 means DefaultIOTimeout.
	IOTimeoutMs int64 `json:"ioTimeoutMs,omitempty"`
	// Threads is the number of OS threads running Go code for the task
	// (GOMAXPROCS); 0 keeps GOMAXPROCS; at most MaxThreads.
	Threads int `json:"threads,omitempty"`
	// Partition is the Spark partition id: in messages, and for train the
	// worker index of the epoch's random streams (required, >= 0); default
	// DefaultPartition.
	Partition int `json:"partition"`

	// Driver is the host:port of the job's parameter server (the driver's
	// ready line). Required for train; for predict and evaluate it makes
	// the worker pull the current weights from the driver instead of
	// reading the model directory's weights file.
	Driver string `json:"driver,omitempty"`
	// Token is the job's token (hex, the driver's ready line). Required
	// with Driver.
	Token string `json:"token,omitempty"`
	// TLSFingerprint, when set, makes the worker speak TLS to the driver
	// and accept only the certificate with this hex SHA-256.
	TLSFingerprint string `json:"tlsFingerprint,omitempty"`
	// Worker is the stable name of the worker on the parameter server, the
	// same when Spark retries the task (the shim sends
	// "partition-<index>"). Required for train.
	Worker string `json:"worker,omitempty"`
	// Epoch is the epoch this train task runs, from 1. Required for train.
	Epoch int `json:"epoch,omitempty"`
	// Epochs is the number of epochs of the fit, used only in messages.
	Epochs int `json:"epochs,omitempty"`
	// BatchSize is the rows per training step; 0 means DefaultBatchSize;
	// at most MaxBatchSize, and a step's rows must fit the worker's memory
	// limit.
	BatchSize int `json:"batchSize,omitempty"`
	// Round is, in synchronous mode, the round the driver opened this
	// epoch at (the answer to the control command epoch): batch b of the
	// task belongs to round Round+b
	// (frequency batch), the epoch's one push to round Round (frequency
	// epoch). 0 takes the version the worker sees when it registers.
	Round uint64 `json:"round,omitempty"`
	// OptimizerState is the hex SHA-256 of a blob in the driver's model
	// store holding this worker's optimizer state from the previous epoch
	// (the state column of the previous train output); "" starts a fresh
	// optimizer.
	OptimizerState string `json:"optimizerState,omitempty"`
	// Seed seeds the shuffle and the Dropout masks of train, mixed with
	// Epoch and Partition: workers and epochs differ, and a retried task
	// sees the same order and masks. Default 0.
	Seed int64 `json:"seed,omitempty"`
	// ShuffleBufferBytes bounds the rows (features and targets as float32)
	// train holds and shuffles at once; 0 means DefaultShuffleBufferBytes;
	// at most the worker's memory limit.
	ShuffleBufferBytes int64 `json:"shuffleBufferBytes,omitempty"`
	// NoShuffle trains on the rows in arrival order. Default false:
	// shuffle.
	NoShuffle bool `json:"noShuffle,omitempty"`
	// SampleWeightCol, for train and evaluate, names a numeric column of
	// per-row sample weights (Keras' sample_weight: finite, >= 0) that
	// weigh the rows' loss and weighted metrics; "" weighs every row 1.
	SampleWeightCol string `json:"sampleWeightCol,omitempty"`
	// ClassWeight, for train, weighs each row by its label's class (Keras'
	// class_weight: class index as a string, weight); not with
	// SampleWeightCol.
	ClassWeight map[string]float64 `json:"classWeight,omitempty"`
	// LearningRate, for train, when present, sets the optimizer's constant
	// learning rate (what the driver's callbacks set; 0 included); an
	// optimizer whose rate is a schedule fails the task.
	LearningRate *float64 `json:"learningRate,omitempty"`
}

// DescribeSchema is the schema of the describe output: name utf8, index
// int32, count int64, sum, min, max, mean float64, none nullable.
var DescribeSchema = arrow.NewSchema([]arrow.Field{
	{Name: "name", Type: arrow.BinaryTypes.String},
	{Name: "index", Type: arrow.PrimitiveTypes.Int32},
	{Name: "count", Type: arrow.PrimitiveTypes.Int64},
	{Name: "sum", Type: arrow.PrimitiveTypes.Float64},
	{Name: "min", Type: arrow.PrimitiveTypes.Float64},
	{Name: "max", Type: arrow.PrimitiveTypes.Float64},
	{Name: "mean", Type: arrow.PrimitiveTypes.Float64},
}, nil)

// EvaluateSchema is the schema of the evaluate output: key utf8, sum
// float64, count int64, none nullable.
var EvaluateSchema = arrow.NewSchema([]arrow.Field{
	{Name: "key", Type: arrow.BinaryTypes.String},
	{Name: "sum", Type: arrow.PrimitiveTypes.Float64},
	{Name: "count", Type: arrow.PrimitiveTypes.Int64},
}, nil)

// TrainSchema is the schema of the train output: key utf8, sum float64,
// count int64, state utf8, none nullable.
var TrainSchema = arrow.NewSchema([]arrow.Field{
	{Name: "key", Type: arrow.BinaryTypes.String},
	{Name: "sum", Type: arrow.PrimitiveTypes.Float64},
	{Name: "count", Type: arrow.PrimitiveTypes.Int64},
	{Name: "state", Type: arrow.BinaryTypes.String},
}, nil)

// TrainStateKey is the key of the train output's last row, whose state is
// the hash of the worker's optimizer state in the driver's model store.
const TrainStateKey = "optimizer_state"

// WeightKey is the key of the evaluate and train rows whose sum is the sum
// of the rows' sample weights (gokernel.WeightKey), present when the model
// has weighted metrics: the shim divides each weighted metric's merged sum
// by it (ModelInfo.WeightedKeys) instead of by the count.
const WeightKey = gokernel.WeightKey

// The driver process.
//
// The Spark driver starts `gophas driver --host H --mode M --frequency F
// --workers N [--scale] [--tls] [--round-timeout D]` (the token may come in
// TokenEnv). Once it serves, it prints one JSON line on stdout, the Ready
// line; then it reads one JSON Command per line on stdin and answers each
// with exactly one JSON line on stdout, in order, until stdin closes (then it
// drains and exits; it also dies with its parent):
//
//	{"cmd":"load","model":DIR}      install DIR's weights (model.json and
//	                                model.safetensors), remember its spec;
//	                                when the server keeps an optimizer (for
//	                                gradient pushes) and DIR has
//	                                optimizer.safetensors, set that
//	                                optimizer's state from it (without the
//	                                file the server's state stays as it is)
//	                                -> {"ok":true,"version":N}
//	{"cmd":"save","dir":DIR}        write the current weights with that spec
//	                                as a model directory, with the server
//	                                optimizer's state as
//	                                optimizer.safetensors when there is one
//	                                (model.json then names that optimizer,
//	                                so the directory loads as a whole), and
//	                                no such file otherwise
//	                                -> {"ok":true,"version":N}
//	{"cmd":"epoch","epoch":E}       open epoch E (from 1, in order) before
//	                                its tasks start; synchronous rounds then
//	                                wait for every worker of the job to
//	                                register for E (ps.Params.OpenEpoch)
//	                                -> {"ok":true,"round":R,"version":N},
//	                                R the round of the epoch's first batch
//	{"cmd":"stats"}                 -> {"ok":true,"stats":STATS}, STATS the
//	                                parameter server's ps.Stats as JSON
//	{"cmd":"forget","hashes":[..]}  drop those blobs from the model store
//	                                -> {"ok":true}
//
// Anything else, or a failure, is answered {"ok":false,"error":MESSAGE} and
// the driver goes on serving.

// TokenEnv names the environment variable that may hand `gophas driver` the
// job's token; without it the driver makes one.
const TokenEnv = "GOPHAS_TOKEN"

// Ready is the one line `gophas driver` prints on stdout once it serves.
type Ready struct {
	Address        string `json:"address"`
	Protocol       int    `json:"protocol"`
	Token          string `json:"token"`
	TLSFingerprint string `json:"tlsFingerprint"`
}

// MaxControlLineBytes bounds one command line on the driver's stdin.
const MaxControlLineBytes = 1 << 20

// Control commands.
//
//	load    model: install a model directory's weights (and the server
//	        optimizer's state when it has one)
//	save    dir: write the weights with the loaded spec as a model directory
//	epoch   epoch: open an epoch; answers its first synchronous round
//	stats   answers the stats record
//	forget  hashes: drop blobs from the model store
//	export  hashes, dir: write each blob of the model store as dir/<hash>
//	import  files: put each file into the model store; answers their hashes
//	steps   steps: set the global step (a resumed fit continues its count)
const (
	CmdLoad   = "load"
	CmdSave   = "save"
	CmdEpoch  = "epoch"
	CmdStats  = "stats"
	CmdForget = "forget"
	CmdExport = "export"
	CmdImport = "import"
	CmdSteps  = "steps"
)

// Commands lists the control commands, in the order the driver's messages
// name them.
var Commands = []string{CmdLoad, CmdSave, CmdEpoch, CmdStats, CmdForget, CmdExport, CmdImport, CmdSteps}

// Command is one line of the control channel; only the fields of its Cmd
// are read.
type Command struct {
	Cmd    string   `json:"cmd"`
	Model  string   `json:"model,omitempty"`  // load
	Dir    string   `json:"dir,omitempty"`    // save, export
	Epoch  int      `json:"epoch,omitempty"`  // epoch
	Hashes []string `json:"hashes,omitempty"` // forget, export
	Files  []string `json:"files,omitempty"`  // import
	Steps  uint64   `json:"steps,omitempty"`  // steps
}

// Answer is the driver's answer line to a Command; OK false carries Error,
// and each command fills its own fields.
type Answer struct {
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Version *uint64   `json:"version,omitempty"` // load, save, epoch
	Round   *uint64   `json:"round,omitempty"`   // epoch
	Stats   *ps.Stats `json:"stats,omitempty"`   // stats
	Hashes  []string  `json:"hashes,omitempty"`  // import
}

// Stats is the stats record, in one shape everywhere: the parameter
// server's ps.Stats (its JSON names are the protocol's), which the control
// command stats answers with, the Scala shim reads as ServerStats and the
// Python package receives as it is.
type Stats = ps.Stats

// The line `gophas inspect --model M` prints.

// ModelInfo is the one JSON line `gophas inspect` prints: what the kernel
// says of the spec (gokernel.Info: shapes, label kind, classifier,
// loss, metrics, optimizer and its default) and of the weights.
type ModelInfo struct {
	gokernel.Info
	// Params is the number of weight values.
	Params int `json:"params"`
	// HasWeights says whether the model is a directory with a weights file.
	HasWeights bool `json:"hasWeights"`
	// Results are the results of the sets of sums `gophas inspect --sums`
	// reads (merged evaluate or train sums): per key (the loss, each
	// metric) its value, null for NaN; absent without --sums.
	Results []map[string]*float64 `json:"results,omitempty"`
}
