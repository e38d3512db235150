package io.gophas.spark

import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path}
import java.util.concurrent.TimeUnit

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}

/**
 * What the Go kernel makes of a model spec (`gophas inspect`, Go's
 * protocol.ModelInfo): the kernel is the one parser of specs and the one
 * judge of labels, so the shim and the Python package ask it instead of
 * re-deriving anything from the JSON.
 *
 * @param labelKind   what a row's label must be: Protocol.LabelClassIndex,
 *                    LabelCategorical, LabelBinary or LabelValue ("" without a loss)
 * @param labelWidths the label widths (values per row) the loss accepts
 * @param classifier  the output is class probabilities (a cross-entropy loss)
 * @param optimizer   the compiled optimizer's Keras name; defaultOptimizer the one a compile config without one gets
 * @param inputIds    the input holds integer ids (a Keras input of dtype int32 or int64)
 * @param idLimit     the ids an Embedding reading the input takes: each must lie in [0, idLimit) (0: no Embedding reads it)
 * @param stateKeys   the evaluate and train sums carry metric states ("<key>[<i>]" keys of AUC, Precision, ...), which
 *                    only the kernel turns into results (ModelInfo.results); without them every result is Σsum/Σcount
 * @param weightedKeys   the evaluate keys that are weighted metrics (their sums divide by the sample weights' sum)
 * @param higherIsBetter the evaluate keys better when larger (accuracies); the others are better smaller
 * @param learningRate   the optimizer's learning rate (a schedule's at step 0); schedule its schedule's name, "" for none
 */
final case class ModelInfo(
    name: String,
    inputShape: Seq[Int],
    inputDim: Int,
    outputShape: Seq[Int],
    outputDim: Int,
    inputIds: Boolean,
    idLimit: Int,
    loss: String,
    metrics: Seq[String],
    evaluateKeys: Seq[String],
    labelKind: String,
    labelWidths: Seq[Int],
    classifier: Boolean,
    optimizer: String,
    defaultOptimizer: String,
    stateKeys: Boolean,
    params: Long,
    hasWeights: Boolean,
    weightedKeys: Seq[String] = Nil,
    higherIsBetter: Seq[String] = Nil,
    learningRate: Double = 0,
    schedule: String = "") {

  /** The input's shape as Keras writes it, e.g. (28, 28, 1), and the values per row it takes. */
  def inputShapeText: String =
    (if (inputShape.size == 1) s"(${inputShape.head},)" else inputShape.mkString("(", ", ", ")")) + s" = $inputDim values per row"

  /** Whether labels of this width are class indexes (one per row, one-hot encoded by the worker when the loss wants it). */
  def classIndexes(width: Int): Boolean =
    width == 1 && (labelKind == Protocol.LabelClassIndex || (labelKind == Protocol.LabelCategorical && outputDim > 1))
}

private[spark] object ModelInfo {
  import Protocol.{InfoKeys => K}

  /**
   * Overrides of a spec's compile config, applied by the kernel (`gophas inspect --loss --optimizer
   * --learning-rate --metrics`, Go's Spec.Compile); empty or 0 keeps the spec's.
   */
  final case class Compile(loss: String = "", optimizer: String = "", learningRate: Double = 0, metrics: Seq[String] = Nil) {
    def args: Seq[String] =
      (if (loss.trim.nonEmpty) Seq("--loss", loss.trim) else Nil) ++
        (if (optimizer.trim.nonEmpty) Seq("--optimizer", optimizer.trim) else Nil) ++
        (if (learningRate > 0) Seq("--learning-rate", learningRate.toString) else Nil) ++
        (if (metrics.nonEmpty) Seq("--metrics", metrics.mkString(",")) else Nil)
  }

  /** Reads the line `gophas inspect` prints. */
  def fromJson(n: JsonNode): ModelInfo = {
    def strings(f: String) = n.path(f).elements().asScala.map(_.asText()).toSeq
    def ints(f: String) = n.path(f).elements().asScala.map(_.asInt()).toSeq
    ModelInfo(n.path(K.Name).asText(), ints(K.InputShape), n.path(K.InputDim).asInt(), ints(K.OutputShape), n.path(K.OutputDim).asInt(),
      n.path(K.InputIds).asBoolean(), n.path(K.IdLimit).asInt(),
      n.path(K.Loss).asText(), strings(K.Metrics), strings(K.EvaluateKeys), n.path(K.LabelKind).asText(), ints(K.LabelWidths),
      n.path(K.Classifier).asBoolean(), n.path(K.Optimizer).asText(), n.path(K.DefaultOptimizer).asText(), n.path(K.StateKeys).asBoolean(),
      n.path(K.Params).asLong(), n.path(K.HasWeights).asBoolean(), strings(K.WeightedKeys), strings(K.HigherIsBetter),
      n.path(K.LearningRate).asDouble(), n.path(K.Schedule).asText())
  }

  /**
   * Runs `gophas inspect` on a local model directory (or spec file). With
   * out, also writes a complete model directory there, its weights
   * initialized from seed when the input has none.
   */
  def inspect(binary: Path, model: Path, seed: Long, out: Option[Path], timeoutMs: Long, compile: Compile = Compile(),
      step: Long = 0L): ModelInfo =
    fromJson(run(binary, Seq("--model", model.toString, "--seed", seed.toString) ++
      out.toSeq.flatMap(o => Seq("--out", o.toString)) ++ compile.args ++ (if (step > 0) Seq("--step", step.toString) else Nil),
      timeoutMs))

  /**
   * The results of sets of sums merged over partitions (per set: the row
   * count and Σsum per key, state keys included), as the Go kernel computes
   * them (`gophas inspect --sums`): the loss and every metric; NaN where
   * the kernel says null.
   */
  def results(binary: Path, model: Path, sets: Seq[(Long, Map[String, Double])], timeoutMs: Long): Seq[Map[String, Double]] = {
    val mapper = new ObjectMapper()
    val arr = mapper.createArrayNode()
    sets.foreach { case (count, sums) =>
      val o = arr.addObject()
      o.put("count", count)
      val so = o.putObject("sums")
      sums.foreach { case (k, v) => so.put(k, v) }
    }
    val file = Files.createTempFile("gophas-sums", ".json")
    try {
      Files.write(file, mapper.writeValueAsBytes(arr))
      run(binary, Seq("--model", model.toString, "--sums", file.toString), timeoutMs).path(K.Results).elements().asScala.map { r =>
        r.properties().asScala.map(e => e.getKey -> (if (e.getValue.isNull) Double.NaN else e.getValue.asDouble())).toMap
      }.toSeq
    } finally Files.deleteIfExists(file)
  }

  /** Runs `gophas inspect` with inspectArgs and returns the line it prints. */
  private def run(binary: Path, inspectArgs: Seq[String], timeoutMs: Long): JsonNode = {
    val args = Seq(binary.toString, "inspect") ++ inspectArgs
    val errFile = Files.createTempFile("gophas-inspect", ".err")
    try {
      val proc = new ProcessBuilder(args: _*).redirectError(errFile.toFile).start()
      proc.getOutputStream.close()
      val stdout = proc.getInputStream.readAllBytes()
      if (!proc.waitFor(timeoutMs, TimeUnit.MILLISECONDS)) {
        proc.destroyForcibly()
        throw new GophasException(s"gophas inspect did not finish within $timeoutMs ms")
      }
      val err = new String(Files.readAllBytes(errFile), StandardCharsets.UTF_8).linesIterator.toSeq
      if (proc.exitValue() != 0) {
        val why = err.reverse.find(_.startsWith(Protocol.ErrorPrefix)).map(_.stripPrefix(Protocol.ErrorPrefix))
          .getOrElse(err.mkString("\n"))
        throw new GophasException(s"the model is not usable: $why")
      }
      new ObjectMapper().readTree(stdout)
    } catch {
      case g: GophasException => throw g
      case NonFatal(e) => throw new GophasException(s"cannot inspect the model with ${args.mkString(" ")}: ${e.getMessage}", e)
    } finally Files.deleteIfExists(errFile)
  }
}
