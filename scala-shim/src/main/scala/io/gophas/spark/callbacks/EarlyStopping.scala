package io.gophas.spark.callbacks

import scala.collection.mutable

import io.gophas.spark.{CallbackState, GophasNetwork}

/**
 * Keras' EarlyStopping: stops the fit when `monitor` has not improved for
 * `patience` epochs (epochs before `startFromEpoch` are not watched); with
 * `baseline`, an improvement that does not beat the baseline does not reset
 * the wait. With `restoreBestWeights` the fit ends with the weights of the
 * best epoch (fetched from the parameter server at that epoch's end),
 * as Keras restores them on train end.
 */
class EarlyStopping(
    monitor: String = "val_loss",
    minDelta: Double = 0.0,
    val patience: Int = 0,
    val verbose: Int = 0,
    mode: String = "auto",
    val baseline: Option[Double] = None,
    val restoreBestWeights: Boolean = false,
    val startFromEpoch: Int = 0) extends MonitorCallback(monitor, mode, minDelta) {

  private var waited = 0
  private var stopped = 0
  private var bestEpochSeen = 0
  private var bestWeights: Option[GophasNetwork] = None

  /** The epoch (from 0) the fit stopped at; 0 when it did not stop early. */
  def stoppedEpoch: Int = stopped

  /** The epoch (from 0) of the best value. */
  def bestEpoch: Int = bestEpochSeen

  override def onTrainBegin(logs: mutable.Map[String, Double]): Unit = {
    waited = 0
    stopped = 0
    best = None
    bestWeights = None
    bestEpochSeen = 0
  }

  override def onEpochEnd(epoch: Int, logs: mutable.Map[String, Double]): Unit = {
    ensureMonitorOp()
    val current = logs.get(monitor)
    if (current.isEmpty) model.warn(s"Early stopping conditioned on metric `$monitor` which is not available. " +
      s"Available metrics are: ${logs.keys.mkString(",")}")
    if (current.isEmpty || epoch < startFromEpoch) return
    if (restoreBestWeights && bestWeights.isEmpty) {
      bestWeights = Some(model.network)
      bestEpochSeen = epoch
    }
    waited += 1
    if (isImprovement(current.get, best)) {
      best = current
      bestEpochSeen = epoch
      if (restoreBestWeights) bestWeights = Some(model.network)
      if (baseline.isEmpty || isImprovement(current.get, baseline)) waited = 0
      return
    }
    if (waited >= patience && epoch > 0) {
      stopped = epoch
      model.stopTraining = true
    }
  }

  override def onTrainEnd(logs: mutable.Map[String, Double]): Unit = {
    if (stopped > 0 && verbose > 0) model.say(s"Epoch ${stopped + 1}: early stopping")
    bestWeights.foreach { w =>
      if (verbose > 0) model.say(s"Restoring model weights from the end of the best epoch: ${bestEpochSeen + 1}.")
      model.network = w
    }
  }

  override def state: Option[CallbackState] = {
    val n = stateNode(Json.mapper)
    n.put("wait", waited).put("stoppedEpoch", stopped).put("bestEpoch", bestEpochSeen)
    Some(CallbackState(Json.mapper.writeValueAsString(n), bestWeights.map(w => "best_weights" -> w).toMap))
  }

  override def restoreState(s: CallbackState): Unit = {
    val n = Json.mapper.readTree(s.json)
    restoreBest(n)
    waited = n.path("wait").asInt()
    stopped = n.path("stoppedEpoch").asInt()
    bestEpochSeen = n.path("bestEpoch").asInt()
    bestWeights = s.networks.get("best_weights")
  }
}
