package io.gophas.spark

import java.nio.charset.StandardCharsets
import java.nio.file.Files
import java.util.concurrent.ConcurrentHashMap

import scala.collection.immutable.ListMap

import org.apache.hadoop.conf.Configuration
import org.apache.spark.broadcast.Broadcast
import org.apache.spark.internal.Logging
import org.apache.spark.ml.functions.{array_to_vector, vector_to_array}
import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.apache.spark.sql.{Column, DataFrame, SparkSession}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.functions._
import org.apache.spark.sql.types._

/**
 * SparkModel trains, runs and evaluates a Gophas network on Spark DataFrames,
 * the way Elephas' `SparkModel` does for Keras models, with the math in Go.
 *
 *  - `fit` starts a parameter server (`gophas driver`) on the Spark driver,
 *    runs one Spark job per epoch in which every partition's worker pulls the
 *    weights, trains on its rows and pushes its update by the rules of `mode`
 *    and `frequency`, merges the workers' loss and metrics exactly, and stops
 *    the server in a `finally`, whatever happens.
 *  - `predict` appends the network's output to every row, distributed.
 *  - `evaluate` computes the loss and every compiled metric from
 *    per-partition sums and counts.
 *  - `masterNetwork` is the current network (spec and weights).
 *
 * @param network    the model: spec with its compile config, and weights
 * @param mode       `synchronous` (a barrier stage: all workers at once,
 *                   their updates averaged), `asynchronous` (the default:
 *                   each update applied alone, under a lock) or `hogwild`
 *                   (applied without locking); asynchronous and hogwild epoch
 *                   updates count 1/workers each (see `spark.gophas.scaleDeltas`)
 * @param frequency  when workers push: every `epoch` (the default) or every `batch`
 * @param numWorkers repartition the data to this many workers; 0 (the
 *                   default) keeps the DataFrame's partitions
 * @param batchSize  rows per training step (default 32); `fit` may override it
 */
class SparkModel(
    network: GophasNetwork,
    val mode: String = SparkModel.Asynchronous,
    val frequency: String = SparkModel.Epoch,
    val numWorkers: Int = 0,
    val batchSize: Int = 32) extends Logging {

  SparkLine.get // a jar built for another Spark line fails here, naming the right one
  SparkModel.checkArguments(mode, frequency, numWorkers, batchSize)

  @volatile private var master: GophasNetwork = network
  @volatile private var stats: Option[ServerStats] = None
  @volatile private var warnings: Seq[String] = Nil
  @volatile private var phases: ListMap[String, Double] = ListMap.empty
  private val fitLock = new Object

  /** The current network: the one given, or the result of the last successful fit. */
  def masterNetwork: GophasNetwork = master

  /** The parameter server's counters at the end of the last successful fit (mode, version, per-worker pushes, global step). */
  def lastServerStats: Option[ServerStats] = stats

  /** The warnings the callbacks of the last fit issued (each once, as Python's warnings show Keras' callbacks' ones). */
  def lastFitWarnings: Seq[String] = warnings

  /**
   * Where the last successful fit's time went, in seconds, by phase (see
   * FitSession.phaseSeconds; `epoch jobs` is the training, the rest is
   * overhead); verbose 2 prints them at the end of the fit.
   */
  def lastFitPhases: ListMap[String, Double] = phases

  /** Saves the master network as a model directory through Hadoop's FileSystem API. */
  def save(path: String): Unit = master.save(path, SparkModel.hadoopConf())

  /**
   * Trains the network on df for epochs epochs and returns the merged
   * history, as Keras' fit. The network continues from its current weights
   * and its workers' optimizer states (a second fit continues Adam's
   * moments); the trained network, with the workers' optimizer states,
   * becomes the master network when the fit succeeds (a failed or cancelled
   * fit leaves it as it was).
   *
   * @param validationSplit fraction of rows (chosen at random with seed) held
   *                        out and evaluated after each epoch as `val_` keys
   * @param verbose         0: log at debug level; 1: a line per epoch with the
   *                        merged loss and metrics in the driver log and on
   *                        stdout; 2: also a line per worker
   * @param callbacks       Keras-style callbacks run on the driver at the epoch boundaries ([[Callback]],
   *                        io.gophas.spark.callbacks); with a BackupAndRestore, or `spark.gophas.checkpointDir`,
   *                        each epoch is checkpointed and a fit started again resumes
   * @param validationData  a second DataFrame evaluated (exactly, distributed) after the epochs validationFreq picks
   * @param validationFreq  validate every this many epochs
   * @param classWeight     class index to the weight of its rows' loss (Keras' class_weight)
   * @param sampleWeightCol a column of per-row sample weights (Keras' sample_weight)
   */
  def fit(
      df: DataFrame,
      epochs: Int = 1,
      batchSize: Int = this.batchSize,
      validationSplit: Double = 0.0,
      verbose: Int = 0,
      featuresCol: String = Protocol.DefaultFeaturesCol,
      labelCol: String = Protocol.DefaultLabelCol,
      seed: Long = 0L,
      callbacks: Seq[Callback] = Nil,
      validationData: Option[DataFrame] = None,
      validationFreq: Int = 1,
      classWeight: Map[Int, Double] = Map.empty,
      sampleWeightCol: String = ""): History =
    fitWith(df, FitOptions(epochs, batchSize, validationSplit, verbose, featuresCol, labelCol, seed, callbacks, validationData,
      validationFreq, Nil, classWeight, sampleWeightCol))

  /** fit with the first eight arguments only, for callers without Scala's default arguments (Java, py4j). */
  def fit(df: DataFrame, epochs: Int, batchSize: Int, validationSplit: Double, verbose: Int, featuresCol: String,
      labelCol: String, seed: Long): History =
    fitWith(df, FitOptions(epochs, batchSize, validationSplit, verbose, featuresCol, labelCol, seed))

  /** fit with its arguments as [[FitOptions]] (also validationEpochs, Keras' list validation_freq). */
  def fitWith(df: DataFrame, options: FitOptions): History = fitLock.synchronized {
    val s = new FitSession(df, master, mode, frequency, numWorkers, options)
    try {
      val (history, net, st) = s.run()
      master = net
      stats = Some(st)
      phases = s.phaseSeconds
      history
    } finally warnings = s.allWarnings
  }

  /**
   * A fit driven step by step (the Python package runs its own callbacks
   * between the steps); finish it with [[finishSession]], and close it in any case.
   */
  private[spark] def session(df: DataFrame, options: FitOptions): FitSession =
    new FitSession(df, master, mode, frequency, numWorkers, options)

  /** Ends a session's fit: its network becomes the master network. */
  private[spark] def finishSession(s: FitSession): History = fitLock.synchronized {
    val (history, net, st) = s.end()
    master = net
    stats = Some(st)
    phases = s.phaseSeconds
    warnings = s.allWarnings
    history
  }

  /**
   * Appends outputCol to every row of df: the network's output for the row's
   * features, as a vector (probabilities for a classifier) when the network
   * has several outputs and as a double when it has one. Distributed: nothing
   * is collected to the driver; input columns and row order are kept.
   */
  def predict(df: DataFrame, outputCol: String = Protocol.DefaultPredictionCol, featuresCol: String = Protocol.DefaultFeaturesCol): DataFrame =
    SparkModel.predict(df, master, outputCol, featuresCol)

  /**
   * The loss and every compiled metric of the master network on df, in
   * Keras' order (`loss` first), each the sum over all rows of the per-row
   * value divided by the number of rows, from per-partition sums and counts.
   */
  def evaluate(df: DataFrame, featuresCol: String = Protocol.DefaultFeaturesCol, labelCol: String = Protocol.DefaultLabelCol,
      sampleWeightCol: String = ""): ListMap[String, Double] =
    SparkModel.evaluate(df, master, featuresCol, labelCol, sampleWeightCol)

  override def toString: String = s"SparkModel($mode, $frequency, numWorkers=$numWorkers, batchSize=$batchSize, $master)"
}

object SparkModel extends Logging {
  val Synchronous = "synchronous"
  val Asynchronous = "asynchronous"
  val Hogwild = "hogwild"
  val Epoch = "epoch"
  val Batch = "batch"
  val Modes: Seq[String] = Seq(Synchronous, Asynchronous, Hogwild)
  val Frequencies: Seq[String] = Seq(Epoch, Batch)

  private[spark] val TrainSchema: StructType = Protocol.TrainSchema
  private[spark] val EvaluateSchema: StructType = Protocol.EvaluateSchema
  private[spark] val OptimizerStateKey = Protocol.TrainStateKey

  /** The column of a fit's cached data that splits training from validation rows. */
  private[spark] val SplitCol = "__gophas_split"

  /**
   * A SparkModel over a saved model directory (local path or Hadoop URI),
   * checked by the Go kernel: a missing, truncated or corrupt file fails here
   * with a GophasException naming the path and the problem.
   */
  def load(path: String, mode: String = Asynchronous, frequency: String = Epoch, numWorkers: Int = 0, batchSize: Int = 32): SparkModel = {
    checkArguments(mode, frequency, numWorkers, batchSize)
    val net = GophasNetwork.load(path, hadoopConf())
    try info(net, currentSettings()) catch {
      case e: GophasException => throw new GophasException(s"cannot load the model at $path: ${e.getMessage}", e)
    }
    new SparkModel(net, mode, frequency, numWorkers, batchSize)
  }

  /**
   * A SparkModel from a spec (the JSON of Keras' `model.to_json()` with its
   * compile config) and, optionally, weights (safetensors); without weights,
   * the Go kernel initializes them as Keras would, from seed.
   */
  def fromSpec(spec: String, weights: Option[Array[Byte]] = None, seed: Long = 0L, mode: String = Asynchronous,
      frequency: String = Epoch, numWorkers: Int = 0, batchSize: Int = 32): SparkModel = {
    checkArguments(mode, frequency, numWorkers, batchSize)
    new SparkModel(network(spec, weights, seed), mode, frequency, numWorkers, batchSize)
  }

  /**
   * A network from a spec and optional weights, checked by the Go kernel (weights initialized from seed when absent),
   * its compile config overridden by compile as the kernel does it (Go's Spec.Compile).
   */
  def network(spec: String, weights: Option[Array[Byte]], seed: Long, compile: ModelInfo.Compile = ModelInfo.Compile()): GophasNetwork = {
    val settings = currentSettings()
    val binary = GophasBinary.get(settings.binary, settings.unpackDir)
    val tmp = Files.createTempDirectory("gophas-spec")
    try {
      val in = tmp.resolve("in")
      Files.createDirectories(in)
      Files.write(in.resolve(GophasNetwork.SpecFile), spec.getBytes(StandardCharsets.UTF_8))
      weights.foreach(w => Files.write(in.resolve(GophasNetwork.WeightsFile), w))
      val out = tmp.resolve("out")
      ModelInfo.inspect(binary, in, seed, Some(out), settings.ioTimeoutMs, compile)
      GophasNetwork.readLocal(out)
    } finally GophasNetwork.deleteRecursively(tmp)
  }

  private val compiled = new ConcurrentHashMap[(String, ModelInfo.Compile), String]()

  /** The spec with its compile config overridden by compile, as the kernel writes it (model.json). */
  private[spark] def compiledSpec(spec: String, compile: ModelInfo.Compile): String =
    compiled.computeIfAbsent((spec, compile), _ => network(spec, None, 0L, compile).spec)

  private[spark] def checkArguments(mode: String, frequency: String, numWorkers: Int, batchSize: Int): Unit = {
    if (!Modes.contains(mode)) throw new GophasException(s"unknown mode '$mode': use ${Modes.mkString(", ")}")
    if (!Frequencies.contains(frequency)) throw new GophasException(s"unknown frequency '$frequency': use ${Frequencies.mkString(" or ")}")
    if (numWorkers < 0) throw new GophasException(s"numWorkers must be 0 (the DataFrame's partitions) or more, got $numWorkers")
    if (batchSize < 1) throw new GophasException(s"batchSize must be at least 1, got $batchSize")
  }

  private[spark] def hadoopConf(): Configuration =
    SparkSession.getActiveSession.orElse(SparkSession.getDefaultSession)
      .map(_.sparkContext.hadoopConfiguration).getOrElse(new Configuration())

  /** The active session's settings, or the defaults when no session runs (a spec checked before Spark starts). */
  private[spark] def currentSettings(): GophasConf.Settings =
    SparkSession.getActiveSession.orElse(SparkSession.getDefaultSession).map(GophasConf.settings)
      .getOrElse(GophasConf.Settings(0, 0, GophasConf.DefaultIoTimeoutMs, None, None))

  private val infos = new ConcurrentHashMap[String, ModelInfo]()

  /** The Go kernel's view of a network, asked once per network on the driver. */
  private[spark] def info(net: GophasNetwork, settings: GophasConf.Settings): ModelInfo =
    infos.computeIfAbsent(net.hash, _ => inspectIn(settings)(dir => net.writeTo(dir.resolve("model"))))

  /** The Go kernel's view of a spec alone (no weights needed), asked once per spec on the driver. */
  private[spark] def specInfo(spec: String): ModelInfo =
    infos.computeIfAbsent("spec:" + new GophasNetwork(spec, Array.emptyByteArray).hash, _ =>
      inspectIn(currentSettings()) { dir =>
        Files.write(dir.resolve(GophasNetwork.SpecFile), spec.getBytes(StandardCharsets.UTF_8))
        dir
      })

  /** Runs `gophas inspect` on the model that fill writes into a temporary directory (and returns the path of). */
  private def inspectIn(settings: GophasConf.Settings)(fill: java.nio.file.Path => java.nio.file.Path): ModelInfo = {
    val binary = GophasBinary.get(settings.binary, settings.unpackDir)
    val dir = Files.createTempDirectory("gophas-inspect")
    try ModelInfo.inspect(binary, fill(dir), 0L, None, settings.ioTimeoutMs)
    finally GophasNetwork.deleteRecursively(dir)
  }

  private[spark] def predict(df: DataFrame, net: GophasNetwork, outputCol: String, featuresCol: String): DataFrame = {
    val spark = df.sparkSession
    val settings = GophasConf.settings(spark)
    Gophas.requireColumn(df, featuresCol, "features")
    if (df.columns.contains(outputCol))
      throw new GophasException(s"output column '$outputCol' is already in the DataFrame; choose another outputCol")
    val info = SparkModel.info(net, settings)
    val (prepared, vectors) = Gophas.vectorsToArrays(df)
    val outType = if (info.outputDim == 1) DoubleType else ArrayType(DoubleType, containsNull = false)
    val outSchema = prepared.schema.add(StructField(outputCol, outType, nullable = false))
    val bc = spark.sparkContext.broadcast(net)
    val unpackDir = settings.unpackDir
    val out = Gophas.run(prepared, outSchema, Protocol.PredictHeader(Gophas.common(settings), featuresCol, outputCol, model = ""),
      _ => { case h: Protocol.PredictHeader => h.copy(model = GophasNetwork.localDir(bc.value, unpackDir).toString); case h => h })
    val cols = out.columns.toIndexedSeq.map { c =>
      if (vectors.contains(c) || (c == outputCol && info.outputDim > 1)) array_to_vector(col(c)).as(c) else col(c)
    }
    out.select(cols: _*)
  }

  private[spark] def evaluate(df: DataFrame, net: GophasNetwork, featuresCol: String, labelCol: String,
      sampleWeightCol: String = ""): ListMap[String, Double] = {
    val settings = GophasConf.settings(df.sparkSession)
    val info = SparkModel.info(net, settings)
    val prepared = prepare(df, featuresCol, labelCol, sampleWeightCol)
    val bc = df.sparkSession.sparkContext.broadcast(net)
    try {
      withDescription(df.sparkSession, "gophas evaluate") {
        mergeAll(net, info, settings, Seq(evaluateRows(prepared, featuresCol, labelCol, bc, settings, None, sampleWeightCol).toSeq)).head
      }
    } finally bc.destroy()
  }

  /** Runs an evaluate job and returns every partition's (key, sum, count). */
  private[spark] def evaluateRows(prepared: DataFrame, featuresCol: String, labelCol: String, bc: Broadcast[GophasNetwork],
      settings: GophasConf.Settings, driver: Option[Protocol.DriverRef], sampleWeightCol: String = ""): Array[(String, Double, Long)] = {
    val unpackDir = settings.unpackDir
    Gophas.run(prepared, EvaluateSchema, Protocol.EvaluateHeader(Gophas.common(settings), featuresCol, labelCol, model = "", driver,
      sampleWeightCol),
      _ => { case h: Protocol.EvaluateHeader => h.copy(model = GophasNetwork.localDir(bc.value, unpackDir).toString); case h => h })
      .collect().map(r => (r.getString(0), r.getDouble(1), r.getLong(2)))
  }

  /**
   * The results of groups of partition sums (key, sum, count), each group
   * merged: Σsum/Σcount per key (a weighted metric's over the weights' sum:
   * mergeWeighted), or, when the network's metrics carry states (AUC,
   * Precision, ...: ModelInfo.stateKeys), what the Go kernel computes from
   * the merged sums, all groups in one `gophas inspect`.
   */
  private[spark] def mergeAll(net: GophasNetwork, info: ModelInfo, settings: GophasConf.Settings,
      groups: Seq[Seq[(String, Double, Long)]]): Seq[ListMap[String, Double]] = {
    if (!info.stateKeys) return groups.map(mergeWeighted(_, info))
    val sets = groups.map { rows =>
      val count = rows.filter(_._1 == "loss").map(_._3).sum
      count -> rows.groupBy(_._1).map { case (k, rs) => k -> rs.map(_._2).sum }
    }
    val binary = GophasBinary.get(settings.binary, settings.unpackDir)
    val dir = Files.createTempDirectory("gophas-results")
    val results = try ModelInfo.results(binary, net.writeTo(dir.resolve("model")), sets, settings.ioTimeoutMs)
    finally GophasNetwork.deleteRecursively(dir)
    results.zip(groups).map { case (r, rows) =>
      val keys = (info.evaluateKeys ++ r.keys.toSeq.sorted).distinct.filter(r.contains)
      if (rows.isEmpty) ListMap(info.evaluateKeys.map(_ -> Double.NaN): _*)
      else ListMap(keys.map(k => k -> r(k)): _*)
    }
  }

  /**
   * merge, then each weighted metric (info.weightedKeys) divided by the merged sample weights' mean instead: its
   * Σ w·m over Σ w (0 when the weights sum to 0, as Keras' divide_no_nan); the weights' row is dropped.
   */
  private[spark] def mergeWeighted(rows: Seq[(String, Double, Long)], info: ModelInfo): ListMap[String, Double] = {
    val m = merge(rows, info.evaluateKeys)
    m.get(Protocol.WeightKey) match {
      case None => m
      case Some(w) => ListMap((m - Protocol.WeightKey).toSeq.map { case (k, v) =>
        k -> (if (!info.weightedKeys.contains(k)) v else if (w == 0 || w.isNaN) (if (w.isNaN) Double.NaN else 0.0) else v / w)
      }: _*)
    }
  }

  /** Σsum/Σcount per key, keys in the given order first, then any others in order of appearance. */
  private[spark] def merge(rows: Seq[(String, Double, Long)], order: Seq[String]): ListMap[String, Double] = {
    val keys = (order ++ rows.map(_._1)).distinct.filter(k => rows.exists(_._1 == k) || order.contains(k))
    ListMap(keys.map { k =>
      val rs = rows.filter(_._1 == k)
      val n = rs.map(_._3).sum
      k -> (if (n > 0) rs.map(_._2).sum / n else Double.NaN)
    }: _*)
  }

  /**
   * The features and label columns as the workers read them: ML vectors and
   * arrays of fractions as arrays of float (the kernel computes in float32,
   * so no precision is lost and half the bytes travel), arrays of whole
   * numbers as they are (token ids travel to the worker as integers),
   * numbers as doubles.
   */
  private[spark] def prepare(df: DataFrame, featuresCol: String, labelCol: String, weightCol: String = ""): DataFrame = {
    Gophas.requireColumn(df, featuresCol, "features")
    Gophas.requireColumn(df, labelCol, "label")
    if (featuresCol == labelCol) throw new GophasException(s"features and label are the same column '$featuresCol'")
    if (weightCol.nonEmpty) {
      Gophas.requireColumn(df, weightCol, "sample weight")
      if (weightCol == featuresCol || weightCol == labelCol)
        throw new GophasException(s"sample weight column '$weightCol' is also the features or label column")
      if (!df.schema(weightCol).dataType.isInstanceOf[NumericType])
        throw new GophasException(s"sample weight column '$weightCol' has type ${df.schema(weightCol).dataType.simpleString}; want a number per row")
    }
    def convert(name: String, role: String): Column = df.schema(name).dataType match {
      case VectorType => vector_to_array(col(name), "float32").as(name)
      case ArrayType(ByteType | ShortType | IntegerType | LongType, _) => col(name)
      case ArrayType(_: NumericType, _) => col(name).cast(ArrayType(FloatType)).as(name)
      case _: NumericType => col(name).cast(DoubleType).as(name)
      case t => throw new GophasException(s"$role column '$name' has type ${t.simpleString}; want a vector, an array of numbers or a number")
    }
    val weight = if (weightCol.isEmpty) Nil else Seq(col(weightCol).cast(DoubleType).as(weightCol))
    df.select(Seq(convert(featuresCol, "features"), convert(labelCol, "label")) ++ weight: _*)
  }

  /**
   * Checks prepared data against the network in one pass (which also fills
   * the cache): no nulls, feature width equal to the network's input, labels
   * that fit the loss as the kernel says (its label kind and widths, from
   * `gophas inspect`), for an input an Embedding reads ids in [0, input_dim),
   * and with weightCol sample weights that are finite numbers >= 0. A bad row
   * is named by its index in source (the data as the caller gave it,
   * prepared; prepared itself when None). Returns the number of rows and,
   * with partitionRows, the rows of each partition (in partition order).
   */
  private[spark] def check(prepared: DataFrame, info: ModelInfo, featuresCol: String, labelCol: String, weightCol: String = "",
      partitionRows: Boolean = false, source: Option[DataFrame] = None): (Long, Seq[Long]) = {
    val f = col(featuresCol)
    val l = col(labelCol)
    val fArray = prepared.schema(featuresCol).dataType.isInstanceOf[ArrayType]
    val lArray = prepared.schema(labelCol).dataType.isInstanceOf[ArrayType]
    def width(c: Column, isArray: Boolean) = if (isArray) when(c.isNotNull, size(c)) else when(c.isNotNull, lit(1))
    val w = if (weightCol.nonEmpty) col(weightCol) else lit(1.0)
    val aggs = Seq(
      count(lit(1)),
      sum(when(f.isNull, 1).otherwise(0)), min(width(f, fArray)), max(width(f, fArray)),
      sum(when(l.isNull, 1).otherwise(0)), min(width(l, lArray)), max(width(l, lArray)),
      (if (lArray) lit(null).cast(DoubleType) else min(l)), (if (lArray) lit(null).cast(DoubleType) else max(l)),
      (if (lArray) lit(0L) else sum(when(l =!= floor(l), 1).otherwise(0))),
      sum(when(badIds(f, fArray, info), 1).otherwise(0)),
      sum(when(w.isNull, 1).otherwise(0)),
      sum(when(w.isNotNull && (isnan(w) || w < 0 || w === Double.PositiveInfinity), 1).otherwise(0)),
      min(when(w.isNotNull && !isnan(w), w)))
    val parts = prepared.groupBy(spark_partition_id().as("__gophas_partition")).agg(aggs.head, aggs.tail: _*).collect()
    def long(r: org.apache.spark.sql.Row, i: Int) = if (r.isNullAt(i + 1)) 0L else r.getAs[Number](i + 1).longValue()
    def total(i: Int) = parts.map(long(_, i)).sum
    // (Not minOption/maxOption: Scala 2.12, Spark 3.5's, lacks them.)
    def longs(i: Int) = parts.filterNot(_.isNullAt(i + 1)).map(long(_, i))
    def doubles(i: Int) = parts.filterNot(_.isNullAt(i + 1)).map(_.getDouble(i + 1))
    def lo(i: Int): Long = { val a = longs(i); if (a.isEmpty) 0L else a.min }
    def hi(i: Int): Long = { val a = longs(i); if (a.isEmpty) 0L else a.max }
    def dlo(i: Int): Option[Double] = { val a = doubles(i); if (a.isEmpty) None else Some(a.min) }
    def dhi(i: Int): Option[Double] = { val a = doubles(i); if (a.isEmpty) None else Some(a.max) }
    val rows = total(0)
    val perPartition =
      if (!partitionRows) Nil
      else {
        val byIndex = parts.map(r => r.getInt(0) -> long(r, 0)).toMap
        (0 until SparkLine.get.internalRows(prepared).getNumPartitions).map(p => byIndex.getOrElse(p, 0L))
      }
    if (rows == 0) return (0L, perPartition)
    if (total(1) > 0) throw new GophasException(s"features column '$featuresCol' has ${total(1)} null rows of $rows")
    if (total(4) > 0) throw new GophasException(s"label column '$labelCol' has ${total(4)} null rows of $rows")
    val (fMin, fMax) = (lo(2), hi(3))
    if (fMin != info.inputDim || fMax != info.inputDim) {
      val (index, held) = firstBadRow(source.getOrElse(prepared), featuresCol, c => width(c, fArray) =!= info.inputDim, c => width(c, fArray))
      throw new GophasException(s"features column '$featuresCol' row $index holds $held values; the network '${info.name}' takes " +
        s"input shape ${info.inputShapeText}" + (if (fMin != fMax) s" (the rows hold $fMin to $fMax values)" else ""))
    }
    if (total(10) > 0) {
      val limit = info.idLimit
      val outside: Column => Column = x => x <= -1 || x >= limit
      val (index, bad) = firstBadRow(source.getOrElse(prepared), featuresCol, c => badIds(c, fArray, info),
        c => if (fArray) struct(filter(c, outside)(0), array_position(c, filter(c, outside)(0)) - 1) else struct(c, lit(0L)))
      val (value, position) = bad match { case r: org.apache.spark.sql.Row => (r.get(0), r.getLong(1)); case other => (other, 0L) }
      throw new GophasException(s"features column '$featuresCol' row $index position $position: id $value is outside [0, $limit), " +
        s"the input_dim of the Embedding that reads the network's input (${total(10)} rows of $rows hold such ids)")
    }
    val (lMin, lMax) = (lo(5), hi(6))
    if (lMin != lMax) throw new GophasException(s"label column '$labelCol' holds rows of widths $lMin to $lMax")
    if (!info.labelWidths.contains(lMin.toInt))
      throw new GophasException(s"label column '$labelCol' holds $lMin values per row; the network has ${info.outputDim} outputs " +
        s"(loss ${info.loss} wants ${info.labelWidths.mkString(" or ")} values per row)")
    if (!lArray) {
      val (lo, hi, fractional) = (dlo(7).get, dhi(8).get, total(9))
      if (info.classIndexes(lMin.toInt) && (fractional > 0 || lo < 0 || hi >= info.outputDim))
        throw new GophasException(s"label column '$labelCol' holds values from $lo to $hi${if (fractional > 0) s" ($fractional not whole numbers)" else ""}; " +
          s"loss ${info.loss} wants class indexes 0 to ${info.outputDim - 1}")
      if (info.labelKind == Protocol.LabelBinary && (lo < 0 || hi > 1))
        throw new GophasException(s"label column '$labelCol' holds values from $lo to $hi; loss ${info.loss} wants labels in [0, 1]")
    }
    if (weightCol.nonEmpty) {
      if (total(11) > 0) throw new GophasException(s"sample weight column '$weightCol' has ${total(11)} null rows of $rows")
      if (total(12) > 0)
        throw new GophasException(s"sample weight column '$weightCol' has ${total(12)} rows of $rows that are negative, NaN or infinite " +
          s"(the smallest is ${dlo(13).map(_.toString).getOrElse("NaN")}); sample weights must be finite numbers >= 0")
    }
    (rows, perPartition)
  }

  /** Whether a row's features hold an id outside [0, idLimit) (as Keras truncates ids) when an Embedding reads the input. */
  private def badIds(f: Column, isArray: Boolean, info: ModelInfo): Column =
    if (info.idLimit <= 0) lit(false)
    else if (isArray) coalesce(exists(f, x => x <= -1 || x >= info.idLimit), lit(false))
    else coalesce(f <= -1 || f >= info.idLimit, lit(false))

  /**
   * The index (from 0, in df's order) of df's first row for which bad(column) holds, and what(column) for it; only on
   * the way to an error, so the extra job costs nothing when the data is good.
   */
  private def firstBadRow(df: DataFrame, name: String, bad: Column => Column, what: Column => Column): (Long, Any) = {
    val c = col(name)
    df.select(bad(c).as("bad"), when(bad(c), what(c)).as("what")).rdd.zipWithIndex()
      .filter { case (r, _) => !r.isNullAt(0) && r.getBoolean(0) }
      .map { case (r, i) => (i, r.get(1)) }.take(1).headOption
      .getOrElse(throw new GophasException(s"column '$name': a bad row the check counted is gone (is the DataFrame deterministic?)"))
  }

  private[spark] def withDescription[T](spark: SparkSession, description: String)(body: => T): T = {
    val sc = spark.sparkContext
    val before = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(description)
    try body finally sc.setJobDescription(before)
  }

  /** One row of a training worker's answer. */
  private[spark] final case class TrainRow(partition: Int, key: String, sum: Double, count: Long, state: String)

  /**
   * The training task of one partition; in the companion object so the
   * closure captures only what it names.
   */
  private[spark] def trainTask(settings: GophasConf.Settings, inSchema: StructType, header: Protocol.TrainHeader,
      states: Array[String], bc: Broadcast[GophasNetwork]): (Int, Iterator[InternalRow]) => Iterator[TrainRow] = {
    (partition, input) =>
      val dir = GophasNetwork.localDir(bc.value, settings.unpackDir)
      val h = header.copy(model = dir.toString, worker = s"partition-$partition", optimizerState = states(partition))
      Gophas.task(settings, inSchema, TrainSchema, h, partition, input)
        .map(r => TrainRow(partition, r.getUTF8String(0).toString, r.getDouble(1), r.getLong(2), r.getUTF8String(3).toString))
  }
}
