package io.gophas.spark

import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path}
import java.util.concurrent.TimeUnit

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import com.fasterxml.jackson.databind.ObjectMapper

/**
 * What the Go kernel makes of a model spec (`gophas inspect`): the kernel is
 * the one parser of specs, so the shim asks it instead of parsing JSON twice.
 */
final case class ModelInfo(
    name: String,
    inputDim: Int,
    outputDim: Int,
    loss: String,
    metrics: Seq[String],
    evaluateKeys: Seq[String],
    params: Long,
    hasWeights: Boolean) {

  /** True when the loss wants a class index (or a one-hot vector) per row. */
  def categorical: Boolean = loss == "categorical_crossentropy" || loss == "sparse_categorical_crossentropy"
}

private[spark] object ModelInfo {

  /**
   * Runs `gophas inspect` on a local model directory (or spec file). With
   * out, also writes a complete model directory there, its weights
   * initialized from seed when the input has none.
   */
  def inspect(binary: Path, model: Path, seed: Long, out: Option[Path], timeoutMs: Long): ModelInfo = {
    val args = Seq(binary.toString, "inspect", "--model", model.toString, "--seed", seed.toString) ++
      out.toSeq.flatMap(o => Seq("--out", o.toString))
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
      val n = new ObjectMapper().readTree(stdout)
      def strings(f: String) = n.path(f).elements().asScala.map(_.asText()).toSeq
      ModelInfo(n.path("name").asText(), n.path("inputDim").asInt(), n.path("outputDim").asInt(), n.path("loss").asText(),
        strings("metrics"), strings("evaluateKeys"), n.path("params").asLong(), n.path("hasWeights").asBoolean())
    } catch {
      case g: GophasException => throw g
      case NonFatal(e) => throw new GophasException(s"cannot inspect the model with ${args.mkString(" ")}: ${e.getMessage}", e)
    } finally Files.deleteIfExists(errFile)
  }
}
