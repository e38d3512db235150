package io.gophas.spark.ml

import java.nio.charset.StandardCharsets

import com.fasterxml.jackson.databind.ObjectMapper
import org.apache.hadoop.fs.Path
import org.apache.spark.ml.{Estimator, Model}
import org.apache.spark.ml.functions.array_to_vector
import org.apache.spark.ml.linalg.SQLDataTypes.VectorType
import org.apache.spark.ml.param._
import org.apache.spark.ml.util._
import org.apache.spark.sql.{DataFrame, Dataset}
import org.apache.spark.sql.functions._
import org.apache.spark.sql.types._

import io.gophas.spark.{GophasException, GophasNetwork, History, ModelInfo, Protocol, ServerStats, SparkLine, SparkModel}

/** The params GophasEstimator and GophasModel share. */
trait GophasParams extends Params {
  final val featuresCol = new Param[String](this, "featuresCol", "features column: a vector, an array of numbers or a number")
  final val labelCol = new Param[String](this, "labelCol", "label column: a class index or value (a number), or a vector of the network's outputs")
  final val predictionCol = new Param[String](this, "predictionCol",
    "prediction column: the class index (classifiers) or the value (regression), as a double")
  final val probabilityCol = new Param[String](this, "probabilityCol",
    "classifiers: column of the class probabilities (a vector); empty for none")
  final val modelSpec = new Param[String](this, "modelSpec",
    "the network: the JSON of Keras' model.to_json(), or a Gophas model.json ({\"model\": ..., \"compile\": ...})")
  final val loss = new Param[String](this, "loss", "Keras loss name; empty: the spec's compile config")
  final val optimizer = new Param[String](this, "optimizer",
    "Keras optimizer: a name (\"adam\") or its serialization as JSON; empty: the spec's compile config, else the kernel's default (rmsprop, as Keras compile)")
  final val learningRate = new DoubleParam(this, "learningRate", "the optimizer's learning rate; 0: the optimizer's own",
    ParamValidators.gtEq(0.0))
  final val metrics = new StringArrayParam(this, "metrics", "Keras metric names; empty: the spec's compile config")
  final val epochs = new IntParam(this, "epochs", "training epochs", ParamValidators.gtEq(1))
  final val batchSize = new IntParam(this, "batchSize", "rows per training step", ParamValidators.gtEq(1))
  final val validationSplit = new DoubleParam(this, "validationSplit", "fraction of rows held out for val_ metrics each epoch",
    ParamValidators.inRange(0.0, 1.0, lowerInclusive = true, upperInclusive = false))
  final val numWorkers = new IntParam(this, "numWorkers", "workers to repartition to; 0: the input's partitions", ParamValidators.gtEq(0))
  final val mode = new Param[String](this, "mode", "synchronous, asynchronous or hogwild", ParamValidators.inArray(SparkModel.Modes.toArray))
  final val frequency = new Param[String](this, "frequency", "workers push every epoch or batch", ParamValidators.inArray(SparkModel.Frequencies.toArray))
  final val seed = new LongParam(this, "seed", "seed of the initial weights, the shuffles and the validation split")
  final val verbose = new IntParam(this, "verbose", "0: quiet; 1: a line per epoch; 2: also per worker", ParamValidators.inRange(0, 2))

  setDefault(featuresCol -> "features", labelCol -> "label", predictionCol -> "prediction", probabilityCol -> "probability",
    loss -> "", optimizer -> "", learningRate -> 0.0, metrics -> Array.empty[String], epochs -> 10, batchSize -> 32,
    validationSplit -> 0.0, numWorkers -> 0, mode -> SparkModel.Asynchronous, frequency -> SparkModel.Epoch, seed -> 0L, verbose -> 0)

  def getFeaturesCol: String = $(featuresCol)
  def getLabelCol: String = $(labelCol)
  def getPredictionCol: String = $(predictionCol)
  def getProbabilityCol: String = $(probabilityCol)
  def getModelSpec: String = $(modelSpec)
  def getLoss: String = $(loss)
  def getOptimizer: String = $(optimizer)
  def getLearningRate: Double = $(learningRate)
  def getMetrics: Array[String] = $(metrics)
  def getEpochs: Int = $(epochs)
  def getBatchSize: Int = $(batchSize)
  def getValidationSplit: Double = $(validationSplit)
  def getNumWorkers: Int = $(numWorkers)
  def getMode: String = $(mode)
  def getFrequency: String = $(frequency)
  def getSeed: Long = $(seed)
  def getVerbose: Int = $(verbose)

  /** Whether the network is a classifier, as the kernel says (its loss is a cross-entropy). */
  protected def isClassifier(info: ModelInfo): Boolean = info.classifier

  protected def checkFeatures(schema: StructType, info: ModelInfo): Unit = {
    val f = $(featuresCol)
    if (!schema.fieldNames.contains(f))
      throw new GophasException(s"features column '$f' is not in the input; its columns are ${schema.fieldNames.mkString(", ")}")
    schema(f).dataType match {
      case VectorType | ArrayType(_: NumericType, _) =>
      case _: NumericType if info.inputDim == 1 =>
      case t => throw new GophasException(s"features column '$f' has type ${t.simpleString}; " +
        s"the network wants ${info.inputDim} features as a vector or an array of numbers")
    }
  }

  protected def checkLabel(schema: StructType, info: ModelInfo): Unit = {
    val l = $(labelCol)
    if (!schema.fieldNames.contains(l))
      throw new GophasException(s"label column '$l' is not in the input; its columns are ${schema.fieldNames.mkString(", ")}")
    schema(l).dataType match {
      case _: NumericType if info.labelWidths.contains(1) =>
      case _: NumericType =>
        throw new GophasException(s"label column '$l' holds one number per row, but loss ${info.loss} on ${info.outputDim} outputs " +
          s"wants a vector of ${info.outputDim} values")
      case VectorType | ArrayType(_: NumericType, _) if info.labelKind == Protocol.LabelClassIndex =>
        throw new GophasException(s"label column '$l' holds vectors, but loss ${info.loss} wants a class index per row")
      case VectorType | ArrayType(_: NumericType, _) =>
      case t => throw new GophasException(s"label column '$l' has type ${t.simpleString}; want a number or a vector")
    }
  }

  /** The output schema: prediction (and, for classifiers, probability) appended. */
  protected def outputSchema(schema: StructType, info: ModelInfo): StructType = {
    val taken = Seq($(predictionCol)) ++ (if (isClassifier(info) && $(probabilityCol).nonEmpty) Seq($(probabilityCol)) else Nil)
    taken.find(schema.fieldNames.contains).foreach(c =>
      throw new GophasException(s"output column '$c' is already in the input; set another predictionCol/probabilityCol"))
    val withProb = if (isClassifier(info) && $(probabilityCol).nonEmpty) schema.add(StructField($(probabilityCol), VectorType, nullable = false)) else schema
    val predType = if (isClassifier(info) || info.outputDim == 1) DoubleType else VectorType
    withProb.add(StructField($(predictionCol), predType, nullable = false))
  }
}

/**
 * A Spark ML Estimator that trains a Gophas network with SparkModel: put it
 * in a Pipeline after the feature stages, tune it with CrossValidator, save
 * and load it like any stage. Classifiers (cross-entropy losses) output
 * Spark's `probability` vector and `prediction` class index; regression
 * outputs the value as `prediction` (a vector when the network has several
 * outputs).
 */
class GophasEstimator(override val uid: String) extends Estimator[GophasModel] with GophasParams with DefaultParamsWritable {

  def this() = this(Identifiable.randomUID("gophas"))

  def setFeaturesCol(v: String): this.type = set(featuresCol, v)
  def setLabelCol(v: String): this.type = set(labelCol, v)
  def setPredictionCol(v: String): this.type = set(predictionCol, v)
  def setProbabilityCol(v: String): this.type = set(probabilityCol, v)
  def setModelSpec(v: String): this.type = set(modelSpec, v)
  def setLoss(v: String): this.type = set(loss, v)
  def setOptimizer(v: String): this.type = set(optimizer, v)
  def setLearningRate(v: Double): this.type = set(learningRate, v)
  def setMetrics(v: Array[String]): this.type = set(metrics, v)
  def setEpochs(v: Int): this.type = set(epochs, v)
  def setBatchSize(v: Int): this.type = set(batchSize, v)
  def setValidationSplit(v: Double): this.type = set(validationSplit, v)
  def setNumWorkers(v: Int): this.type = set(numWorkers, v)
  def setMode(v: String): this.type = set(mode, v)
  def setFrequency(v: String): this.type = set(frequency, v)
  def setSeed(v: Long): this.type = set(seed, v)
  def setVerbose(v: Int): this.type = set(verbose, v)

  /**
   * The Gophas model.json this estimator trains: modelSpec with loss, optimizer, learningRate and metrics applied by
   * the Go kernel (Spec.Compile), which also supplies the default optimizer.
   */
  def compiledSpec: String = {
    if (!isDefined(modelSpec) || $(modelSpec).trim.isEmpty) throw new GophasException("modelSpec is not set: give the network's JSON")
    SparkModel.compiledSpec($(modelSpec), ModelInfo.Compile($(loss), $(optimizer), $(learningRate), $(metrics).toSeq))
  }

  /** What the Go kernel makes of compiledSpec: input and output widths, loss, metrics. */
  def modelInfo: ModelInfo = SparkModel.specInfo(compiledSpec)

  override def transformSchema(schema: StructType): StructType = {
    val i = modelInfo
    checkFeatures(schema, i)
    checkLabel(schema, i)
    outputSchema(schema, i)
  }

  override def fit(dataset: Dataset[_]): GophasModel = {
    transformSchema(dataset.schema, logging = true)
    val net = SparkModel.network(compiledSpec, None, $(seed))
    val sm = new SparkModel(net, $(mode), $(frequency), $(numWorkers), $(batchSize))
    val history = sm.fit(dataset.toDF(), $(epochs), $(batchSize), $(validationSplit), $(verbose), $(featuresCol), $(labelCol), $(seed))
    val model = new GophasModel(uid, sm.masterNetwork)
    model.trainingHistory = Some(history)
    model.trainingStats = sm.lastServerStats
    copyValues(model.setParent(this))
  }

  override def copy(extra: ParamMap): GophasEstimator = defaultCopy(extra)
}

object GophasEstimator extends DefaultParamsReadable[GophasEstimator]

/**
 * A trained Gophas network as a Spark ML Model: transform appends the
 * prediction (and, for classifiers, the probabilities) to every row.
 * Saved with its params (Spark ML metadata) and its network (model.json and
 * model.safetensors under `network/`), so a PipelineModel holding it saves
 * and loads, from Scala or Python.
 */
class GophasModel private[spark] (override val uid: String, val network: GophasNetwork)
    extends Model[GophasModel] with GophasParams with MLWritable {

  /** The history of the fit that made this model; saved and loaded with it. */
  @transient var trainingHistory: Option[History] = None

  /** The parameter server's counters at the end of that fit: its mode, versions, per-worker pushes; saved and loaded with it. */
  @transient var trainingStats: Option[ServerStats] = None

  def setFeaturesCol(v: String): this.type = set(featuresCol, v)
  def setPredictionCol(v: String): this.type = set(predictionCol, v)
  def setProbabilityCol(v: String): this.type = set(probabilityCol, v)

  /** A SparkModel over this network, to continue training it or to evaluate it. */
  def sparkModel: SparkModel = new SparkModel(network, $(mode), $(frequency), $(numWorkers), $(batchSize))

  private def info: ModelInfo = SparkModel.specInfo(network.spec)

  override def transformSchema(schema: StructType): StructType = {
    val i = info
    checkFeatures(schema, i)
    outputSchema(schema, i)
  }

  override def transform(dataset: Dataset[_]): DataFrame = {
    transformSchema(dataset.schema, logging = true)
    val i = info
    val raw = s"__gophas_raw_${uid.replace('-', '_')}"
    val out = SparkModel.predict(dataset.toDF(), network, raw, $(featuresCol))
    val r = col(raw)
    val prob = $(probabilityCol)
    val withOut =
      if (i.labelKind == Protocol.LabelBinary && i.outputDim == 1) {
        val o = if (prob.nonEmpty) out.withColumn(prob, array_to_vector(array(lit(1.0) - r, r))) else out
        o.withColumn($(predictionCol), when(r > 0.5, 1.0).otherwise(0.0))
      } else if (isClassifier(i)) {
        val arr = org.apache.spark.ml.functions.vector_to_array(r)
        val o = if (prob.nonEmpty) out.withColumn(prob, r) else out
        o.withColumn($(predictionCol), (array_position(arr, array_max(arr)) - 1).cast(DoubleType))
      } else out.withColumn($(predictionCol), r)
    withOut.drop(raw)
  }

  override def copy(extra: ParamMap): GophasModel = {
    val m = copyValues(new GophasModel(uid, network), extra).setParent(parent)
    m.trainingHistory = trainingHistory
    m.trainingStats = trainingStats
    m
  }

  override def write: MLWriter = new GophasModel.Writer(this)
}

object GophasModel extends MLReadable[GophasModel] {
  private val NetworkDir = "network"
  private val HistoryFile = "history.json"
  private val StatsFile = "stats.json"

  private[ml] final class Writer(model: GophasModel) extends MLWriter {
    override protected def saveImpl(path: String): Unit = {
      SparkLine.get.saveMetadata(model, path, sparkSession)
      val conf = sparkSession.sparkContext.hadoopConfiguration
      model.network.save(new Path(path, NetworkDir).toString, conf)
      def put(name: String, text: String): Unit = {
        val p = new Path(path, name)
        val out = p.getFileSystem(conf).create(p, true)
        try out.write(text.getBytes(StandardCharsets.UTF_8)) finally out.close()
      }
      model.trainingHistory.foreach(h => put(HistoryFile, h.toJson))
      model.trainingStats.foreach(s => put(StatsFile, s.json))
    }
  }

  private final class Reader extends MLReader[GophasModel] {
    override def load(path: String): GophasModel = {
      val net = GophasNetwork.load(new Path(path, NetworkDir).toString, sparkSession.sparkContext.hadoopConfiguration)
      val uid = new ObjectMapper().readTree(sparkSession.sparkContext.textFile(new Path(path, "metadata").toString, 1).first()).path("uid").asText()
      val m = new GophasModel(uid, net)
      SparkLine.get.loadParams(m, path, sparkSession, classOf[GophasModel].getName)
      val conf = sparkSession.sparkContext.hadoopConfiguration
      def get(name: String): Option[String] = {
        val p = new Path(path, name)
        val fs = p.getFileSystem(conf)
        if (!fs.exists(p)) None
        else {
          val in = fs.open(p)
          try Some(new String(in.readAllBytes(), StandardCharsets.UTF_8)) finally in.close()
        }
      }
      m.trainingHistory = get(HistoryFile).map(History.fromJson)
      m.trainingStats = get(StatsFile).map(s => ServerStats.fromJson(new ObjectMapper().readTree(s)))
      m
    }
  }

  override def read: MLReader[GophasModel] = new Reader
  override def load(path: String): GophasModel = super.load(path)
}
