package io.gophas.spark

import org.apache.spark.sql.types._

/**
 * What crosses Gophas' process boundaries, defined once on this side: the
 * Scala mirror of Go's `protocol/protocol.go` (the executor pipe, the driver
 * process, the `gophas inspect` line). Go's `protocol/protocol_test.go`
 * checks every value here against the Go definitions; keep the two in step.
 *
 * A task on the worker's stdin: a 4-byte big-endian length N, N bytes of UTF-8
 * JSON (the header, one of the typed headers below), then one Arrow IPC
 * stream. The worker answers on stdout with one Arrow IPC stream and nothing
 * else; logs go to stderr; on failure it exits non-zero and its last stderr
 * line starts with [[ErrorPrefix]].
 */
object Protocol {
  /** Must equal the `protocol` that `gophas version` reports. */
  val Version: Int = 2

  /** Bound on the JSON header, as the worker enforces it. */
  val MaxHeaderBytes: Int = 1 << 20

  /** Starts the last stderr line of a failed worker. */
  val ErrorPrefix: String = "gophas: "

  /** Exit statuses of the gophas binary. */
  val ExitOK: Int = 0
  val ExitError: Int = 1
  val ExitUsage: Int = 2

  /** Worker modes. */
  val ModeEcho: String = "echo"
  val ModeDescribe: String = "describe"
  val ModePredict: String = "predict"
  val ModeEvaluate: String = "evaluate"
  val ModeTrain: String = "train"

  val DefaultFeaturesCol: String = "features"
  val DefaultLabelCol: String = "label"
  val DefaultPredictionCol: String = "prediction"
  val DefaultPartition: Int = -1

  /** The JSON names of the task header's fields (Go's protocol.Header). */
  object HeaderKeys {
    val Mode: String = "mode"
    val Protocol: String = "protocol"
    val FeaturesCol: String = "featuresCol"
    val FeaturesCols: String = "featuresCols"
    val LabelCol: String = "labelCol"
    val LabelCols: String = "labelCols"
    val Model: String = "model"
    val PredictionCol: String = "predictionCol"
    val PredictionCols: String = "predictionCols"
    val BatchRows: String = "batchRows"
    val IoTimeoutMs: String = "ioTimeoutMs"
    val Threads: String = "threads"
    val Partition: String = "partition"
    val Driver: String = "driver"
    val Token: String = "token"
    val TlsFingerprint: String = "tlsFingerprint"
    val Worker: String = "worker"
    val Epoch: String = "epoch"
    val Epochs: String = "epochs"
    val BatchSize: String = "batchSize"
    val Round: String = "round"
    val OptimizerState: String = "optimizerState"
    val Seed: String = "seed"
    val ShuffleBufferBytes: String = "shuffleBufferBytes"
    val NoShuffle: String = "noShuffle"
    val SampleWeightCol: String = "sampleWeightCol"
    val ClassWeight: String = "classWeight"
    val LearningRate: String = "learningRate"
  }

  /** What every task's header carries; partition and threads are the task's own (set on the executor). */
  final case class Common(batchRows: Int, ioTimeoutMs: Long, partition: Int = DefaultPartition, threads: Int = 0)

  /** The driver a task talks to: its ready line's address, token and TLS fingerprint ("" without TLS). */
  final case class DriverRef(address: String, token: String, tlsFingerprint: String)

  /** A task header: one case class per worker mode, with the fields that mode reads. */
  sealed trait Header extends Product with Serializable {
    def mode: String
    def common: Common

    /** The header with the task's partition and threads. */
    def forTask(partition: Int, threads: Int): Header

    protected def own: Seq[(String, Any)]

    /** The header's JSON fields, named as Go's protocol.Header names them. */
    final def fields: Seq[(String, Any)] = {
      val k = HeaderKeys
      Seq(k.Mode -> mode, k.Protocol -> Version, k.BatchRows -> common.batchRows, k.IoTimeoutMs -> common.ioTimeoutMs,
        k.Partition -> common.partition) ++ (if (common.threads > 0) Seq(k.Threads -> common.threads) else Nil) ++ own
    }
  }

  private def driverFields(d: Option[DriverRef]): Seq[(String, Any)] = d.toSeq.flatMap { r =>
    Seq(HeaderKeys.Driver -> r.address, HeaderKeys.Token -> r.token) ++
      (if (r.tlsFingerprint.nonEmpty) Seq(HeaderKeys.TlsFingerprint -> r.tlsFingerprint) else Nil)
  }

  final case class EchoHeader(common: Common) extends Header {
    def mode: String = ModeEcho
    def forTask(partition: Int, threads: Int): EchoHeader = copy(common = common.copy(partition = partition, threads = threads))
    protected def own: Seq[(String, Any)] = Nil
  }

  final case class DescribeHeader(common: Common, featuresCol: String, labelCol: String) extends Header {
    def mode: String = ModeDescribe
    def forTask(partition: Int, threads: Int): DescribeHeader = copy(common = common.copy(partition = partition, threads = threads))
    protected def own: Seq[(String, Any)] = Seq(HeaderKeys.FeaturesCol -> featuresCol, HeaderKeys.LabelCol -> labelCol)
  }

  /** model is the executor's local model directory, set per task; with a driver its weights come from the driver. */
  final case class PredictHeader(common: Common, featuresCol: String, predictionCol: String, model: String,
      driver: Option[DriverRef] = None) extends Header {
    def mode: String = ModePredict
    def forTask(partition: Int, threads: Int): PredictHeader = copy(common = common.copy(partition = partition, threads = threads))
    protected def own: Seq[(String, Any)] =
      Seq(HeaderKeys.FeaturesCol -> featuresCol, HeaderKeys.PredictionCol -> predictionCol, HeaderKeys.Model -> model) ++ driverFields(driver)
  }

  /** sampleWeightCol names a column of per-row sample weights ("" for none). */
  final case class EvaluateHeader(common: Common, featuresCol: String, labelCol: String, model: String,
      driver: Option[DriverRef] = None, sampleWeightCol: String = "") extends Header {
    def mode: String = ModeEvaluate
    def forTask(partition: Int, threads: Int): EvaluateHeader = copy(common = common.copy(partition = partition, threads = threads))
    protected def own: Seq[(String, Any)] =
      Seq(HeaderKeys.FeaturesCol -> featuresCol, HeaderKeys.LabelCol -> labelCol, HeaderKeys.Model -> model) ++ driverFields(driver) ++
        (if (sampleWeightCol.nonEmpty) Seq(HeaderKeys.SampleWeightCol -> sampleWeightCol) else Nil)
  }

  /**
   * One epoch of one partition through the driver. round is the answer to the control command epoch; worker is the
   * stable name of the partition's worker; optimizerState the hash of its state from the previous epoch ("" for none).
   * sampleWeightCol names a column of sample weights ("" for none); classWeight weighs rows by class (empty: none);
   * learningRate, when given, sets the optimizer's constant rate (0 included).
   */
  final case class TrainHeader(common: Common, featuresCol: String, labelCol: String, model: String, driver: DriverRef,
      worker: String, epoch: Int, epochs: Int, batchSize: Int, round: Long, seed: Long, shuffleBufferBytes: Long,
      optimizerState: String = "", sampleWeightCol: String = "", classWeight: Map[Int, Double] = Map.empty,
      learningRate: Option[Double] = None) extends Header {
    def mode: String = ModeTrain
    def forTask(partition: Int, threads: Int): TrainHeader = copy(common = common.copy(partition = partition, threads = threads))
    protected def own: Seq[(String, Any)] = {
      val k = HeaderKeys
      Seq(k.FeaturesCol -> featuresCol, k.LabelCol -> labelCol, k.Model -> model) ++ driverFields(Some(driver)) ++
        Seq(k.Worker -> worker, k.Epoch -> epoch, k.Epochs -> epochs, k.BatchSize -> batchSize, k.Round -> round,
          k.Seed -> seed, k.ShuffleBufferBytes -> shuffleBufferBytes) ++
        (if (optimizerState.nonEmpty) Seq(k.OptimizerState -> optimizerState) else Nil) ++
        (if (sampleWeightCol.nonEmpty) Seq(k.SampleWeightCol -> sampleWeightCol) else Nil) ++
        (if (classWeight.nonEmpty) {
          val m = new java.util.LinkedHashMap[String, Double]()
          classWeight.toSeq.sortBy(_._1).foreach { case (c, w) => m.put(c.toString, w) }
          Seq(k.ClassWeight -> m)
        } else Nil) ++
        learningRate.toSeq.map(k.LearningRate -> _)
    }
  }

  /** The answer of `describe`: one row per feature (and label) column of each partition (Go's protocol.DescribeSchema). */
  val DescribeSchema: StructType = StructType(Seq(
    StructField("name", StringType, nullable = false),
    StructField("index", IntegerType, nullable = false),
    StructField("count", LongType, nullable = false),
    StructField("sum", DoubleType, nullable = false),
    StructField("min", DoubleType, nullable = false),
    StructField("max", DoubleType, nullable = false),
    StructField("mean", DoubleType, nullable = false)))

  /** The answer of `evaluate`: per key its sum over the partition's rows and their count (Go's protocol.EvaluateSchema). */
  val EvaluateSchema: StructType = StructType(Seq(
    StructField("key", StringType, nullable = false),
    StructField("sum", DoubleType, nullable = false),
    StructField("count", LongType, nullable = false)))

  /** The answer of `train`: per key its sum and count, then the optimizer state row (Go's protocol.TrainSchema). */
  val TrainSchema: StructType = StructType(Seq(
    StructField("key", StringType, nullable = false),
    StructField("sum", DoubleType, nullable = false),
    StructField("count", LongType, nullable = false),
    StructField("state", StringType, nullable = false)))

  /** The key of the train answer's row whose state is the hash of the worker's optimizer state. */
  val TrainStateKey: String = "optimizer_state"

  /** The key of the rows holding the sum of the sample weights: weighted metrics are divided by it (Go's protocol.WeightKey). */
  val WeightKey: String = "#weight"

  /** The environment variable that hands `gophas driver` the job's token. */
  val TokenEnv: String = "GOPHAS_TOKEN"

  /** The JSON names of the driver's ready line (Go's protocol.Ready). */
  object ReadyKeys {
    val Address: String = "address"
    val Protocol: String = "protocol"
    val Token: String = "token"
    val TlsFingerprint: String = "tlsFingerprint"
  }

  /** Control commands of the driver's stdin, one JSON object a line (Go's protocol.Command). */
  val CmdLoad: String = "load"
  val CmdSave: String = "save"
  val CmdEpoch: String = "epoch"
  val CmdStats: String = "stats"
  val CmdForget: String = "forget"
  val CmdExport: String = "export"
  val CmdImport: String = "import"
  val CmdSteps: String = "steps"

  /** The JSON names of a control command's fields (Go's protocol.Command). */
  object CommandKeys {
    val Cmd: String = "cmd"
    val Model: String = "model"
    val Dir: String = "dir"
    val Epoch: String = "epoch"
    val Hashes: String = "hashes"
    val Files: String = "files"
    val Steps: String = "steps"
  }

  /** The JSON names of the driver's answer (Go's protocol.Answer). */
  object AnswerKeys {
    val Ok: String = "ok"
    val Error: String = "error"
    val Version: String = "version"
    val Round: String = "round"
    val Stats: String = "stats"
    val Hashes: String = "hashes"
  }

  /** The JSON names of the stats record (Go's ps.Stats), read into [[ServerStats]]. */
  object StatsKeys {
    val Mode: String = "mode"
    val Frequency: String = "frequency"
    val Version: String = "version"
    val Round: String = "round"
    val Epoch: String = "epoch"
    val WorkersExpected: String = "workersExpected"
    val Workers: String = "workers"
    val Steps: String = "steps"
  }

  /** The JSON names of one worker's stats (Go's ps.WorkerStats), read into [[WorkerStats]]. */
  object WorkerStatsKeys {
    val Worker: String = "worker"
    val Applied: String = "applied"
    val Refused: String = "refused"
    val Duplicate: String = "duplicate"
    val NonFinite: String = "nonFinite"
    val Registers: String = "registers"
    val Done: String = "done"
    val Epoch: String = "epoch"
  }

  /** The JSON names of the line `gophas inspect` prints (Go's protocol.ModelInfo), read into [[ModelInfo]]. */
  object InfoKeys {
    val Name: String = "name"
    val InputShape: String = "inputShape"
    val InputDim: String = "inputDim"
    val OutputShape: String = "outputShape"
    val OutputDim: String = "outputDim"
    val InputIds: String = "inputIds"
    val IdLimit: String = "idLimit"
    val Loss: String = "loss"
    val Metrics: String = "metrics"
    val EvaluateKeys: String = "evaluateKeys"
    val WeightedKeys: String = "weightedKeys"
    val HigherIsBetter: String = "higherIsBetter"
    val LearningRate: String = "learningRate"
    val Schedule: String = "schedule"
    val LabelKind: String = "labelKind"
    val LabelWidths: String = "labelWidths"
    val Classifier: String = "classifier"
    val Optimizer: String = "optimizer"
    val DefaultOptimizer: String = "defaultOptimizer"
    val StateKeys: String = "stateKeys"
    val Inputs: String = "inputs"
    val Outputs: String = "outputs"
    val Params: String = "params"
    val HasWeights: String = "hasWeights"
    val Results: String = "results"
  }

  /** The JSON names of one entry of the inspect line's inputs (Go's gokernel.InputInfo). */
  object InputInfoKeys {
    val Name: String = "name"
    val Shape: String = "shape"
    val Dim: String = "dim"
    val Ids: String = "ids"
    val IdLimit: String = "idLimit"
  }

  /** The JSON names of one entry of the inspect line's outputs (Go's gokernel.OutputInfo). */
  object OutputInfoKeys {
    val Name: String = "name"
    val Shape: String = "shape"
    val Dim: String = "dim"
    val Loss: String = "loss"
    val LabelKind: String = "labelKind"
    val LabelWidths: String = "labelWidths"
    val Classes: String = "classes"
    val Classifier: String = "classifier"
  }

  /** What a row's label must be for a network's loss (Go's gokernel.LabelKind). */
  val LabelClassIndex: String = "class_index"
  val LabelCategorical: String = "categorical"
  val LabelBinary: String = "binary"
  val LabelValue: String = "value"
}
