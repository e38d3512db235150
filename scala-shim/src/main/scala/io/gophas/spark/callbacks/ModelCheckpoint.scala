package io.gophas.spark.callbacks

import scala.collection.mutable

import io.gophas.spark.CallbackState

/**
 * Keras' ModelCheckpoint, at the end of every epoch: saves the network as a
 * Gophas model directory (model.json, model.safetensors; with
 * `saveWeightsOnly` the weights file alone) at `filepath`, any Hadoop URI,
 * formatted as Python's `str.format` with `epoch` (from 1) and the epoch's
 * logs (`"ckpt/{epoch:02d}-{val_loss:.4f}"`). With `saveBestOnly` only an
 * epoch whose `monitor` improves on the best so far (and on
 * `initialValueThreshold`) is saved; without the monitored value it saves,
 * warning, as Keras does. Checkpoints are written every epoch (Keras'
 * `save_freq="epoch"`; saving every n batches is not supported on Spark).
 */
class ModelCheckpoint(
    val filepath: String,
    monitor: String = "val_loss",
    val verbose: Int = 0,
    val saveBestOnly: Boolean = false,
    val saveWeightsOnly: Boolean = false,
    mode: String = "auto",
    val initialValueThreshold: Option[Double] = None) extends MonitorCallback(monitor, mode, 0.0) {

  require(filepath != null && filepath.nonEmpty, "ModelCheckpoint needs a filepath")
  best = initialValueThreshold

  /** Where each saved epoch (from 0) went, in order. */
  val saved: mutable.ArrayBuffer[(Int, String)] = mutable.ArrayBuffer.empty

  /**
   * When set, the callback does not write the checkpoint but hands (epoch, path, weightsOnly) here: the Python
   * package writes Keras files itself.
   */
  @transient private[spark] var writer: Option[(Int, String, Boolean) => Unit] = None

  override def onEpochEnd(epoch: Int, logs: mutable.Map[String, Double]): Unit = {
    ensureMonitorOp()
    val path = PyFormat.format(filepath, logs.toMap[String, Any] + ("epoch" -> (epoch + 1)))
    if (shouldSave(epoch, logs, path)) {
      writer match {
        case Some(w) => w(epoch, path, saveWeightsOnly)
        case None => model.save(path, saveWeightsOnly)
      }
      saved += epoch -> path
      if (verbose > 0) model.say(s"Epoch ${epoch + 1}: finished saving model to $path")
    }
  }

  private def shouldSave(epoch: Int, logs: mutable.Map[String, Double], path: String): Boolean = {
    if (!saveBestOnly) {
      if (verbose > 0) model.say(s"Epoch ${epoch + 1}: saving model to $path")
      return true
    }
    logs.get(monitor) match {
      case None =>
        model.warn(s"Can save best model only with $monitor available.")
        true
      case Some(current) =>
        val bestStr = best.map(b => f"$b%.5f").getOrElse("None")
        if (isImprovement(current, best)) {
          if (verbose > 0) model.say(f"Epoch ${epoch + 1}: $monitor improved from $bestStr to $current%.5f, saving model to $path")
          best = Some(current)
          true
        } else {
          if (verbose > 0) model.say(s"Epoch ${epoch + 1}: $monitor did not improve from $bestStr")
          false
        }
    }
  }

  override def state: Option[CallbackState] = Some(CallbackState(Json.mapper.writeValueAsString(stateNode(Json.mapper))))

  override def restoreState(s: CallbackState): Unit = restoreBest(Json.mapper.readTree(s.json))
}
