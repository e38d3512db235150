package io.gophas.spark.callbacks

import scala.collection.mutable

import io.gophas.spark.{CallbackState, GophasException}

/**
 * Keras' ReduceLROnPlateau: when `monitor` has not improved for `patience`
 * epochs, multiplies the optimizer's learning rate by `factor` (not below
 * `minLr`), then waits `cooldown` epochs before watching again. It logs the
 * rate of each epoch as `learning_rate`. The new rate reaches every
 * worker's optimizer from the next epoch on; an optimizer whose rate is a
 * schedule cannot be changed (a GophasException, as Keras refuses it).
 */
class ReduceLROnPlateau(
    monitor: String = "val_loss",
    val factor: Double = 0.1,
    val patience: Int = 10,
    val verbose: Int = 0,
    mode: String = "auto",
    minDelta: Double = 1e-4,
    val cooldown: Int = 0,
    val minLr: Double = 0.0) extends MonitorCallback(monitor, mode, minDelta) {

  if (factor >= 1.0) throw new GophasException(s"ReduceLROnPlateau does not support a factor >= 1.0. Received: factor=$factor")

  private var waited = 0
  private var cooldownCounter = 0

  private def reset(): Unit = {
    best = None
    cooldownCounter = 0
    waited = 0
  }

  override def onTrainBegin(logs: mutable.Map[String, Double]): Unit = reset()

  private def inCooldown: Boolean = cooldownCounter > 0

  override def onEpochEnd(epoch: Int, logs: mutable.Map[String, Double]): Unit = {
    ensureMonitorOp()
    logs("learning_rate") = model.learningRate
    logs.get(monitor) match {
      case None =>
        model.warn(s"Learning rate reduction is conditioned on metric `$monitor` which is not available. " +
          s"Available metrics are: ${logs.keys.mkString(",")}.")
      case Some(current) =>
        if (inCooldown) {
          cooldownCounter -= 1
          waited = 0
        }
        if (isImprovement(current, best)) {
          best = Some(current)
          waited = 0
        } else if (!inCooldown) {
          waited += 1
          if (waited >= patience) {
            val old = model.learningRate
            if (old > minLr.toFloat) {
              val lr = math.max(old * factor, minLr)
              model.learningRate = lr
              if (verbose > 0) model.say(s"Epoch ${epoch + 1}: ReduceLROnPlateau reducing learning rate to ${PyFormat.repr(lr)}.")
              cooldownCounter = cooldown
              waited = 0
            }
          }
        }
    }
  }

  override def state: Option[CallbackState] = {
    val n = stateNode(Json.mapper)
    n.put("wait", waited).put("cooldownCounter", cooldownCounter)
    Some(CallbackState(Json.mapper.writeValueAsString(n)))
  }

  override def restoreState(s: CallbackState): Unit = {
    val n = Json.mapper.readTree(s.json)
    restoreBest(n)
    waited = n.path("wait").asInt()
    cooldownCounter = n.path("cooldownCounter").asInt()
  }
}
