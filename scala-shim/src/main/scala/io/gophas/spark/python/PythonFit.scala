package io.gophas.spark.python

import scala.collection.mutable
import scala.collection.mutable.ArrayBuffer
import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}

import io.gophas.spark.{Callback, CallbackState, FitSession, GophasException, GophasNetwork, SparkModel}
import io.gophas.spark.callbacks._

/**
 * A fit driven from Python one step at a time, so that the Python package
 * runs its own callbacks (user-written ones, LearningRateScheduler's
 * Python function, writing Keras files) between the steps; Keras
 * callbacks it translated run here, in the session. Logs travel as JSON
 * objects (NaN as null).
 */
final class PythonFit private[python] (model: SparkModel, session: FitSession, checkpoints: Seq[Option[ModelCheckpoint]]) {
  private val json = new ObjectMapper()
  private val saves = ArrayBuffer.empty[(Int, String, Boolean)]

  checkpoints.flatten.foreach(_.writer = Some((e: Int, p: String, w: Boolean) => saves += ((e, p, w))))

  /** Checks the data, starts the parameter server (resuming a checkpoint), runs onTrainBegin; returns the first epoch. */
  def begin(): Int = { session.begin(); session.initialEpoch }

  def shouldRun(epoch: Int): Boolean = session.shouldRun(epoch)

  /** The translated callbacks' onEpochBegin. */
  def epochBegin(epoch: Int): Unit = session.epochBegin(epoch)

  /** Trains and validates epoch (from 0); its merged logs as JSON. */
  def runEpoch(epoch: Int): String = toJson(session.runEpoch(epoch))

  /** The translated callbacks' onEpochEnd on the logs; the logs they leave, as JSON. */
  def callbacksEpochEnd(epoch: Int, logs: String): String = {
    val l = fromJson(logs)
    session.options.callbacks.foreach(_.onEpochEnd(epoch, l))
    toJson(l)
  }

  /** Records the epoch's final logs (history, checkpoint with the Python callbacks' state, JSON or null). */
  def record(epoch: Int, logs: String, pythonState: String): Unit = {
    session.extraState = Option(pythonState).map(s => CallbackState(s))
    session.record(epoch, fromJson(logs))
  }

  /** The Python callbacks' state of the checkpoint the fit resumed from, or null. */
  def resumedPythonState(): String = session.resumedExtraState.map(_.json).orNull

  /** Checkpoints the translated ModelCheckpoints asked for since the last call: [{epoch, path, weightsOnly}]. */
  def pendingSaves(): String = {
    val a = json.createArrayNode()
    saves.foreach { case (e, p, w) => a.addObject().put("epoch", e).put("path", p).put("weightsOnly", w) }
    saves.clear()
    json.writeValueAsString(a)
  }

  /** Warnings issued since the last call, as a JSON list (Python re-issues them). */
  def warnings(): String = json.writeValueAsString(session.drainWarnings().asJava)

  def stopTraining(): Boolean = session.stopTraining
  def setStopTraining(stop: Boolean): Unit = session.stopTraining = stop
  def learningRate(): Double = session.learningRate
  def setLearningRate(rate: Double): Unit = session.learningRate = rate
  def network(): GophasNetwork = session.network
  def setNetwork(net: GophasNetwork): Unit = session.network = net
  def save(path: String, weightsOnly: Boolean): Unit = session.save(path, weightsOnly)
  def params(): String = json.writeValueAsString(session.params.map { case (k, v) => k -> v.asInstanceOf[AnyRef] }.asJava)

  /** The translated callbacks' onTrainEnd; the fit's network becomes the model's; the history as JSON. */
  def end(): String = model.finishSession(session).toJson

  /** Stops the parameter server; safe after end or a failure. */
  def close(): Unit = session.close()

  private def toJson(logs: mutable.Map[String, Double]): String = {
    val o = json.createObjectNode()
    logs.foreach { case (k, v) => if (v.isNaN || v.isInfinite) o.putNull(k) else o.put(k, v) }
    json.writeValueAsString(o)
  }

  private def fromJson(s: String): mutable.LinkedHashMap[String, Double] = {
    val l = mutable.LinkedHashMap.empty[String, Double]
    json.readTree(s).properties().asScala.foreach(e => l(e.getKey) = if (e.getValue.isNull) Double.NaN else e.getValue.asDouble())
    l
  }
}

/** Keras callbacks, as the Python package describes them, made into the shim's. */
private[python] object PythonCallbacks {
  /** The callback for {"class_name", "config"}, and it again when it is a ModelCheckpoint writing Keras files. */
  def fromKeras(n: JsonNode): (Callback, Option[ModelCheckpoint]) = {
    val cls = n.path("class_name").asText()
    val c = n.path("config")
    def s(k: String, d: String) = if (c.hasNonNull(k)) c.get(k).asText() else d
    def d(k: String, v: Double) = if (c.hasNonNull(k)) c.get(k).asDouble() else v
    def i(k: String, v: Int) = if (c.hasNonNull(k)) c.get(k).asInt() else v
    def b(k: String, v: Boolean) = if (c.hasNonNull(k)) c.get(k).asBoolean() else v
    def opt(k: String) = if (c.hasNonNull(k)) Some(c.get(k).asDouble()) else None
    cls match {
      case "EarlyStopping" => (new EarlyStopping(s("monitor", "val_loss"), d("min_delta", 0), i("patience", 0), i("verbose", 0),
        s("mode", "auto"), opt("baseline"), b("restore_best_weights", false), i("start_from_epoch", 0)), None)
      case "ReduceLROnPlateau" => (new ReduceLROnPlateau(s("monitor", "val_loss"), d("factor", 0.1), i("patience", 10), i("verbose", 0),
        s("mode", "auto"), d("min_delta", 1e-4), i("cooldown", 0), d("min_lr", 0)), None)
      case "ModelCheckpoint" =>
        val mc = new ModelCheckpoint(s("filepath", ""), s("monitor", "val_loss"), i("verbose", 0), b("save_best_only", false),
          b("save_weights_only", false), s("mode", "auto"), opt("initial_value_threshold"))
        (mc, if (b("keras_files", false)) Some(mc) else None)
      case "TerminateOnNaN" => (new TerminateOnNaN(b("raise_error", false)), None)
      case "CSVLogger" => (new CSVLogger(s("filename", ""), s("separator", ","), b("append", false)), None)
      case "BackupAndRestore" => (new BackupAndRestore(s("backup_dir", ""), b("delete_checkpoint", true)), None)
      case other => throw new GophasException(s"the shim has no callback $other")
    }
  }
}
