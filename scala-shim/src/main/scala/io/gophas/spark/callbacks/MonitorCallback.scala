package io.gophas.spark.callbacks

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}
import com.fasterxml.jackson.databind.node.ObjectNode
import org.apache.spark.internal.Logging

import io.gophas.spark.{Callback, GophasException}

/**
 * A callback that watches one logged value, as Keras' MonitorCallback: mode
 * `min`, `max` or `auto` (`loss` and the kernel's lower-is-better metrics
 * minimized, its higher-is-better ones maximized; anything else is an error
 * asking for a mode, as Keras gives), and an improvement is a value beyond
 * the reference by more than minDelta. Like Keras, which compares backend
 * float32 tensors, the comparison is made in float32: `current - minDelta`
 * (in double) against the reference, both rounded to float32.
 */
abstract class MonitorCallback(val monitor: String, modeArg: String, val minDelta: Double) extends Callback with Logging {
  require(monitor != null && monitor.nonEmpty, "monitor must name a logged key")

  val mode: String = modeArg match {
    case "auto" | "min" | "max" => modeArg
    case other =>
      logWarning(s"${getClass.getSimpleName} mode '$other' is unknown, fallback to auto mode.")
      "auto"
  }

  /** The reference an improvement is measured against; None: anything improves. */
  protected var best: Option[Double] = None
  private var greater: Option[Boolean] = None
  private var delta = math.abs(minDelta)

  /** The best value so far. */
  def bestValue: Option[Double] = best

  private def setMonitorOp(): Unit = {
    val up = mode match {
      case "min" => false
      case "max" => true
      case _ =>
        val name = monitor.stripPrefix("val_")
        (if (name == "loss") Some(false) else None).orElse(model.higherIsBetter(name)).getOrElse(
          throw new GophasException(s"${getClass.getSimpleName} callback received monitor=$monitor, but Gophas isn't able to " +
            "automatically determine whether that metric should be maximized or minimized. Pass mode=\"max\" in order to " +
            "monitor based on the highest metric value, or pass mode=\"min\" in order to use the lowest value."))
    }
    greater = Some(up)
    if (!up) delta = -math.abs(minDelta)
  }

  /** Makes sure the comparison is known (on the first epoch end, as Keras). */
  protected def ensureMonitorOp(): Unit = if (greater.isEmpty) setMonitorOp()

  /** Whether current improves on reference (None: always). */
  protected def isImprovement(current: Double, reference: Option[Double]): Boolean = reference match {
    case None => true
    case Some(r) =>
      val c = (current - delta).toFloat
      if (greater.contains(true)) c > r.toFloat else c < r.toFloat
  }

  /** The common part of the checkpointed state: the best value. */
  protected def stateNode(mapper: ObjectMapper): ObjectNode = {
    val n = mapper.createObjectNode()
    best.foreach(b => n.put("best", b))
    n
  }

  protected def restoreBest(n: JsonNode): Unit =
    best = if (n.hasNonNull("best")) Some(n.get("best").asDouble()) else None
}

private[callbacks] object Json {
  val mapper = new ObjectMapper()
}
