package io.gophas.spark

import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path}

import scala.collection.mutable
import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.{JsonNode, ObjectMapper}
import org.scalatest.funsuite.AnyFunSuite

import io.gophas.spark.callbacks._

/**
 * The built-in callbacks against Keras' own (callbacks.json, made by
 * make_callback_fixtures.py with Keras 3.15.1): on the same histories, the
 * same epochs run, stop, best values and epochs, restored weights,
 * learning rates, checkpoints, CSV files and warnings. The fit is a
 * stand-in whose "network" says which epoch's weights it holds, as the
 * fixture's one-weight Keras model does.
 */
class CallbacksSuite extends AnyFunSuite {
  private val mapper = new ObjectMapper()
  private val fixture: JsonNode = {
    val in = getClass.getResourceAsStream("/keras/callbacks.json")
    try mapper.readTree(in) finally in.close()
  }

  private def num(n: JsonNode): Double = if (n.isTextual) n.asText() match {
    case "nan" => Double.NaN
    case "inf" => Double.PositiveInfinity
    case "-inf" => Double.NegativeInfinity
    case s => s.toDouble
  } else n.asDouble()

  private def marker(epoch: Int): GophasNetwork = new GophasNetwork(s"""{"epoch":$epoch}""", Array[Byte](epoch.toByte))

  /** A fit stand-in: the network is the epoch's marker; the rate is float32, as Keras' variable. */
  final class StandIn(lr0: Double) extends FitContext {
    var stopTraining = false
    private var lr: Float = lr0.toFloat
    var net: GophasNetwork = marker(0)
    val warnings = mutable.LinkedHashSet.empty[String]
    val saves = mutable.ArrayBuffer.empty[String]
    def learningRate: Double = lr.toDouble
    def learningRate_=(rate: Double): Unit = lr = rate.toFloat
    def network: GophasNetwork = net
    def network_=(n: GophasNetwork): Unit = net = n
    def save(path: String, weightsOnly: Boolean): Unit = saves += new org.apache.hadoop.fs.Path(path).getName
    def higherIsBetter(metric: String): Option[Boolean] = metric match {
      case "accuracy" => Some(true)
      case "mse" | "mae" => Some(false)
      case _ => None
    }
    def warn(message: String): Unit = warnings += message
    def say(line: String): Unit = ()
    def params: Map[String, Any] = Map.empty
  }

  private def opt(c: JsonNode, k: String): Option[JsonNode] = Option(c.get(k)).filterNot(_.isNull)

  private def build(kind: String, c: JsonNode, dir: Path): Callback = {
    def s(k: String, d: String) = opt(c, k).map(_.asText()).getOrElse(d)
    def d(k: String, v: Double) = opt(c, k).map(_.asDouble()).getOrElse(v)
    def i(k: String, v: Int) = opt(c, k).map(_.asInt()).getOrElse(v)
    def b(k: String) = opt(c, k).exists(_.asBoolean())
    kind match {
      case "EarlyStopping" => new EarlyStopping(s("monitor", "val_loss"), d("min_delta", 0), i("patience", 0), 0, s("mode", "auto"),
        opt(c, "baseline").map(_.asDouble()), b("restore_best_weights"), i("start_from_epoch", 0))
      case "ReduceLROnPlateau" => new ReduceLROnPlateau(s("monitor", "val_loss"), d("factor", 0.1), i("patience", 10), 0, s("mode", "auto"),
        d("min_delta", 1e-4), i("cooldown", 0), d("min_lr", 0))
      case "ModelCheckpoint" => new ModelCheckpoint(dir.resolve(c.get("filepath").asText()).toString, s("monitor", "val_loss"), 0,
        b("save_best_only"), b("save_weights_only"), s("mode", "auto"), opt(c, "initial_value_threshold").map(_.asDouble()))
      case "CSVLogger" => new CSVLogger(dir.resolve("log.csv").toString, s("separator", ","), b("append"))
      case "TerminateOnNaN" => new TerminateOnNaN()
    }
  }

  for (c <- fixture.get("cases").elements().asScala) {
    val name = c.get("name").asText()
    val kind = c.get("callback").asText()
    test(s"$kind as Keras: $name") {
      val dir = Files.createTempDirectory("gophas-callbacks")
      val k = c.get("keras")
      val ctx = new StandIn(c.get("initial_learning_rate").asDouble())
      val cb = build(kind, c.get("config"), dir)
      cb.context = ctx
      val lrs = mutable.ArrayBuffer.empty[Double]
      val logged = mutable.ArrayBuffer.empty[Double]
      val savedEpochs = mutable.ArrayBuffer.empty[Int]
      var run = 0
      val outcome = scala.util.Try {
        cb.onTrainBegin(mutable.LinkedHashMap.empty)
        val history = c.get("history").elements().asScala.toSeq
        var stop = false
        for ((h, epoch) <- history.zipWithIndex if !stop) {
          val logs = mutable.LinkedHashMap.empty[String, Double]
          h.properties().asScala.foreach(e => logs(e.getKey) = num(e.getValue))
          cb.onEpochBegin(epoch, logs)
          ctx.net = marker(epoch)
          val before = ctx.saves.length
          cb.onEpochEnd(epoch, logs)
          run += 1
          lrs += ctx.learningRate
          logs.get("learning_rate").foreach(logged += _)
          if (ctx.saves.length > before) savedEpochs += epoch
          stop = ctx.stopTraining
        }
        cb.onTrainEnd(mutable.LinkedHashMap.empty)
      }
      if (!k.get("error").isNull) {
        assert(outcome.isFailure, s"Keras failed with: ${k.get("error").asText()}")
        val msg = outcome.failed.get.getMessage
        assert(msg.contains("isn't able to automatically determine whether that metric should be maximized or minimized"), msg)
      } else {
        outcome.get
        assert(run == k.get("epochs_run").asInt(), "epochs run")
        assert(lrs == k.get("learning_rates").elements().asScala.map(_.asDouble()).toSeq, "learning rates after each epoch")
        assert(logged == k.get("logged_learning_rates").elements().asScala.map(_.asDouble()).toSeq, "logged learning_rate")
        assert(ctx.warnings.toSeq == k.get("warnings").elements().asScala.map(_.asText()).toSeq, "warnings (each once)")
        kind match {
          case "EarlyStopping" =>
            val es = cb.asInstanceOf[EarlyStopping]
            assert(es.stoppedEpoch == k.get("stopped_epoch").asInt(), "stopped epoch")
            assert(es.bestValue == opt(k, "best").map(_.asDouble()), "best")
            assert(es.bestEpoch == k.get("best_epoch").asInt(), "best epoch")
            assert(ctx.net == marker(k.get("final_weights_epoch").asInt()), "the weights the fit ends with")
          case "ModelCheckpoint" =>
            assert(ctx.saves.toSeq == k.get("saved").elements().asScala.map(_.asText()).toSeq, "saved files")
            assert(savedEpochs.toSeq == k.get("saved_epochs").elements().asScala.map(_.asInt()).toSeq, "saved epochs")
            assert(cb.asInstanceOf[ModelCheckpoint].bestValue == opt(k, "best").map(_.asDouble()), "best")
          case "CSVLogger" =>
            val got = new String(Files.readAllBytes(dir.resolve("log.csv")), StandardCharsets.UTF_8)
            assert(got == k.get("csv").asText())
          case _ =>
        }
      }
    }
  }

  test("a callback's state survives a checkpoint: EarlyStopping resumed mid-fit decides as one uninterrupted") {
    val c = fixture.get("cases").elements().asScala.find(_.get("name").asText() == "early_patience2_restore").get
    val history = c.get("history").elements().asScala.toSeq.map { h =>
      val logs = mutable.LinkedHashMap.empty[String, Double]
      h.properties().asScala.foreach(e => logs(e.getKey) = num(e.getValue))
      logs
    }
    def fresh() = new EarlyStopping(patience = 2, restoreBestWeights = true)
    val ctx = new StandIn(0.01)
    var cb = fresh()
    cb.context = ctx
    cb.onTrainBegin(mutable.LinkedHashMap.empty)
    var epoch = 0
    while (!ctx.stopTraining) {
      if (epoch == 5) { // the driver dies after epoch 5's checkpoint; a new fit resumes
        val st = cb.state.get
        cb = fresh()
        cb.context = ctx
        cb.onTrainBegin(mutable.LinkedHashMap.empty)
        cb.restoreState(st)
      }
      ctx.net = marker(epoch)
      cb.onEpochEnd(epoch, history(epoch).clone())
      epoch += 1
    }
    cb.onTrainEnd(mutable.LinkedHashMap.empty)
    val k = c.get("keras")
    assert(epoch == k.get("epochs_run").asInt())
    assert(ctx.net == marker(k.get("final_weights_epoch").asInt()))
  }

  test("PyFormat writes numbers as Python does") {
    import PyFormat._
    assert(repr(0.1 + 0.2) == "0.30000000000000004")
    assert(repr(1e-5) == "1e-05" && repr(1e-4) == "0.0001" && repr(1e16) == "1e+16" && repr(123.0) == "123.0")
    assert(repr(-0.0) == "-0.0" && repr(Double.NaN) == "nan" && repr(Double.NegativeInfinity) == "-inf")
    val logs = Map[String, Any]("epoch" -> 7, "val_loss" -> 0.123456, "accuracy" -> 0.5)
    assert(format("m-{epoch:02d}-{val_loss:.3f}", logs) == "m-07-0.123")
    assert(format("{epoch}_{val_loss}_{accuracy:.1%}_{{x}}", logs) == "7_0.123456_50.0%_{x}")
    assert(format("{val_loss:.2e}|{val_loss:g}|{epoch:>4}|{epoch:<3}|{val_loss:8.3f}", logs) == "1.23e-01|0.123456|   7|7  |   0.123")
    assert(format("{val_loss:.3}", logs) == "0.123")
    val e = intercept[GophasException](format("{nope}", logs))
    assert(e.getMessage.contains("no 'nope'"))
  }
}
