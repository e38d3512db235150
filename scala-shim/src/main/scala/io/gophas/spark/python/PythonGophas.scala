package io.gophas.spark.python

import com.fasterxml.jackson.databind.ObjectMapper
import com.fasterxml.jackson.databind.node.ObjectNode

import scala.jdk.CollectionConverters._

import org.apache.spark.sql.DataFrame

import io.gophas.spark.{FitOptions, GophasException, GophasNetwork, ModelInfo, Protocol, SparkModel}

/**
 * PythonGophas is the Python package's door into the shim: static methods
 * taking and returning only what py4j carries well (strings, numbers, byte
 * arrays, DataFrames, the shim's own objects), no Scala default arguments,
 * Options or collections. Structured answers are JSON strings. Every
 * failure is a [[io.gophas.spark.GophasException]] with the full message,
 * which the Python side turns into `gophas.GophasError`.
 */
object PythonGophas {
  private val json = new ObjectMapper()

  /**
   * A network from a spec (the JSON of Keras' `model.to_json()`, plain or as
   * `{"model", "compile"}`) and weights (safetensors bytes, or null to have
   * the Go kernel initialize them from seed), checked by the Go kernel: an
   * unsupported layer or argument fails here, naming it.
   */
  def network(spec: String, weights: Array[Byte], seed: Long): GophasNetwork =
    SparkModel.network(spec, Option(weights), seed)

  /** A model directory (local path or Hadoop URI) as a network. */
  def load(path: String): GophasNetwork = GophasNetwork.load(path, SparkModel.hadoopConf())

  /** Saves a network as a model directory (local path or Hadoop URI). */
  def save(network: GophasNetwork, path: String): Unit = network.save(path, SparkModel.hadoopConf())

  /** The spec of a network, as JSON. */
  def spec(network: GophasNetwork): String = network.spec

  /** The weights of a network, as safetensors bytes. */
  def weights(network: GophasNetwork): Array[Byte] = network.weights

  /**
   * What the Go kernel makes of a network, as JSON, with the names `gophas
   * inspect` prints (Protocol.InfoKeys): shapes, loss, metrics, label kind
   * and widths, classifier, optimizer, params, hasWeights.
   */
  def info(network: GophasNetwork): String = {
    infoJson(SparkModel.info(network, SparkModel.currentSettings()))
  }

  /** A SparkModel; numWorkers 0 keeps the DataFrame's partitions. */
  def sparkModel(network: GophasNetwork, mode: String, frequency: String, numWorkers: Int, batchSize: Int): SparkModel =
    new SparkModel(network, mode, frequency, numWorkers, batchSize)

  /** Trains model on df; returns the history as `History.toJson` writes it. */
  def fit(model: SparkModel, df: DataFrame, epochs: Int, batchSize: Int, validationSplit: Double, verbose: Int,
      featuresCol: String, labelCol: String, seed: Long): String =
    model.fit(df, epochs, batchSize, validationSplit, verbose, featuresCol, labelCol, seed).toJson

  /**
   * A fit driven step by step from Python (PythonFit), with the fit's options as JSON: epochs, batchSize,
   * validationSplit, verbose, featuresCol, labelCol, seed, validationFreq (a number) or validationEpochs (a list),
   * classWeight ({"class": weight}), sampleWeightCol, and callbacks: the Keras callbacks translated by the Python
   * package, [{"class_name": "EarlyStopping", "config": {...}}, ...]. validationData is a DataFrame or null.
   */
  def fitSession(model: SparkModel, df: DataFrame, validationData: DataFrame, optionsJson: String): PythonFit = {
    val n = json.readTree(optionsJson)
    def int(k: String, d: Int) = if (n.hasNonNull(k)) n.get(k).asInt() else d
    def str(k: String, d: String) = if (n.hasNonNull(k)) n.get(k).asText() else d
    val callbacks = n.path("callbacks").elements().asScala.map(c => PythonCallbacks.fromKeras(c)).toSeq
    val cw = n.path("classWeight").properties().asScala.map(e => e.getKey.toInt -> e.getValue.asDouble()).toMap
    val o = FitOptions(int("epochs", 1), int("batchSize", 32), if (n.hasNonNull("validationSplit")) n.get("validationSplit").asDouble() else 0.0,
      int("verbose", 0), str("featuresCol", Protocol.DefaultFeaturesCol), str("labelCol", Protocol.DefaultLabelCol),
      if (n.hasNonNull("seed")) n.get("seed").asLong() else 0L, callbacks.map(_._1), Option(validationData),
      int("validationFreq", 1), n.path("validationEpochs").elements().asScala.map(_.asInt()).toSeq, cw, str("sampleWeightCol", ""),
      str("validationWeightCol", ""))
    new PythonFit(model, model.session(df, o), callbacks.map(_._2))
  }

  /** The loss and metrics of model on df, as a JSON object in Keras' order (loss first); NaN becomes null. */
  def evaluate(model: SparkModel, df: DataFrame, featuresCol: String, labelCol: String): String =
    evaluateWeighted(model, df, featuresCol, labelCol, "")

  /** evaluate with a sample weight column ("" for none). */
  def evaluateWeighted(model: SparkModel, df: DataFrame, featuresCol: String, labelCol: String, sampleWeightCol: String): String = {
    val out = json.createObjectNode()
    model.evaluate(df, featuresCol, labelCol, sampleWeightCol).foreach { case (k, v) => if (v.isNaN) out.putNull(k) else out.put(k, v) }
    json.writeValueAsString(out)
  }

  /** df with outputCol appended: the model's output per row. */
  def predict(model: SparkModel, df: DataFrame, outputCol: String, featuresCol: String): DataFrame =
    model.predict(df, outputCol, featuresCol)

  /** The model's current network. */
  def masterNetwork(model: SparkModel): GophasNetwork = model.masterNetwork

  /** Saves the model's network as a model directory. */
  def saveModel(model: SparkModel, path: String): Unit = model.save(path)

  /** The parameter server's counters after the last fit, as JSON, or null before any. */
  def lastServerStats(model: SparkModel): String = model.lastServerStats.map(_.json).orNull

  /** The message of the GophasException in t's cause chain, or null when there is none. */
  def gophasMessage(t: Throwable): String = {
    var c = t
    var depth = 0
    while (c != null && depth < 32) {
      c match {
        case g: GophasException => return g.getMessage
        case _ =>
      }
      c = c.getCause
      depth += 1
    }
    null
  }

  private def infoJson(i: ModelInfo): String = {
    import io.gophas.spark.Protocol.{InfoKeys => K}
    val out: ObjectNode = json.createObjectNode()
    out.put(K.Name, i.name).put(K.InputDim, i.inputDim).put(K.OutputDim, i.outputDim).put(K.Loss, i.loss)
    def ints(k: String, v: Seq[Int]): Unit = { val a = out.putArray(k); v.foreach(x => a.add(x)) }
    def strings(k: String, v: Seq[String]): Unit = { val a = out.putArray(k); v.foreach(x => a.add(x)) }
    ints(K.InputShape, i.inputShape)
    ints(K.OutputShape, i.outputShape)
    strings(K.Metrics, i.metrics)
    strings(K.EvaluateKeys, i.evaluateKeys)
    out.put(K.LabelKind, i.labelKind)
    ints(K.LabelWidths, i.labelWidths)
    out.put(K.Classifier, i.classifier).put(K.Optimizer, i.optimizer).put(K.DefaultOptimizer, i.defaultOptimizer)
    out.put(K.StateKeys, i.stateKeys)
    out.put(K.Params, i.params).put(K.HasWeights, i.hasWeights)
    strings(K.WeightedKeys, i.weightedKeys)
    strings(K.HigherIsBetter, i.higherIsBetter)
    out.put(K.LearningRate, i.learningRate).put(K.Schedule, i.schedule)
    json.writeValueAsString(out)
  }
}
