package io.gophas.spark

import scala.collection.mutable

/**
 * What a [[Callback]] sees of the fit it runs in, as a Keras callback sees
 * `self.model`: the stop flag, the optimizer's learning rate, the current
 * network (its weights on the parameter server), and the kernel's word on
 * the metrics. Every call runs on the driver, between epochs.
 */
trait FitContext {
  /** Set to stop the fit after this epoch (Keras' `model.stop_training`). */
  def stopTraining: Boolean
  def stopTraining_=(stop: Boolean): Unit

  /**
   * The optimizer's learning rate: the constant rate, or the schedule's at the
   * next global step (Keras' `optimizer.learning_rate`).
   */
  def learningRate: Double

  /**
   * Sets the constant learning rate from the next epoch on (Keras'
   * `optimizer.learning_rate = x`); a [[GophasException]] when the rate is a
   * schedule, as Keras refuses it.
   */
  def learningRate_=(rate: Double): Unit

  /** The current network: the spec and the parameter server's weights. */
  def network: GophasNetwork

  /** Installs net's weights on the parameter server (Keras' `model.set_weights`). */
  def network_=(net: GophasNetwork): Unit

  /** Saves the current network as a model directory (any Hadoop URI); weights only: model.safetensors alone. */
  def save(path: String, weightsOnly: Boolean = false): Unit

  /**
   * Whether a larger value of metric (a key of the logs without `val_`) is
   * better, as the kernel says (Keras' metric `_direction`); None for a
   * metric it does not know.
   */
  def higherIsBetter(metric: String): Option[Boolean]

  /**
   * Issues a warning, once per message, as Python's warnings do for Keras'
   * callbacks: logged on the driver, and handed to the Python package.
   */
  def warn(message: String): Unit

  /** Prints a line as Keras' callbacks print at verbose > 0 (stdout and the driver log). */
  def say(line: String): Unit

  /** The fit's parameters: epochs, steps (batches per epoch on every worker together), verbose. */
  def params: Map[String, Any]
}

/**
 * A callback's state, for a checkpoint: JSON, and the networks it keeps
 * (EarlyStopping's best weights), by name.
 */
final case class CallbackState(json: String, networks: Map[String, GophasNetwork] = Map.empty)

/**
 * A training callback run on the driver at the boundaries of a
 * `SparkModel.fit`, with Keras' hooks (`on_train_begin`, `on_epoch_begin`,
 * `on_epoch_end`, `on_train_end` as onTrainBegin, ...). The logs are the
 * merged loss and metrics of the epoch over every worker (and the `val_`
 * keys), as Keras' callbacks receive them; a callback may add keys (Keras'
 * ReduceLROnPlateau adds `learning_rate`), which then go into the history.
 * Epochs count from 0, as in Keras. `model` is the fit's [[FitContext]].
 *
 * A callback whose state should survive a resumed fit (a checkpoint
 * directory) overrides `state` and `restoreState`.
 */
abstract class Callback extends Serializable {
  @transient private[spark] var context: FitContext = _

  /** The fit this callback runs in (Keras' `self.model`); set before onTrainBegin. */
  def model: FitContext = context

  def onTrainBegin(logs: mutable.Map[String, Double]): Unit = ()
  def onTrainEnd(logs: mutable.Map[String, Double]): Unit = ()
  def onEpochBegin(epoch: Int, logs: mutable.Map[String, Double]): Unit = ()
  def onEpochEnd(epoch: Int, logs: mutable.Map[String, Double]): Unit = ()

  /** The state to checkpoint after an epoch; None for a stateless callback. */
  def state: Option[CallbackState] = None

  /** Restores the state of a checkpoint, after onTrainBegin, when a fit resumes. */
  def restoreState(s: CallbackState): Unit = ()
}
