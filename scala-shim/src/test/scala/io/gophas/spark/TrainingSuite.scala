package io.gophas.spark

import java.nio.{ByteBuffer, ByteOrder}
import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path}

import scala.collection.mutable

import com.fasterxml.jackson.databind.ObjectMapper
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.functions._
import org.scalatest.BeforeAndAfterAll
import org.scalatest.funsuite.AnyFunSuite

import io.gophas.spark.callbacks._
import io.gophas.spark.examples.Mnist

/**
 * What a Keras user trains with, on a real local Spark (local[2]) with
 * MNIST subsets: callbacks at the epoch boundaries on the merged logs,
 * schedules on the global step, class and sample weights, validation data,
 * checkpoints and resume, optimizer states kept by save.
 */
class TrainingSuite extends AnyFunSuite with BeforeAndAfterAll {
  private var spark: SparkSession = _
  private var dir: Path = _
  private var train: DataFrame = _
  private var small: DataFrame = _
  private var valSet: DataFrame = _
  private var spec: String = _

  override def beforeAll(): Unit = {
    dir = Files.createTempDirectory("gophas-training-suite")
    spark = SparkSession.builder()
      .master("local[2]")
      .appName("TrainingSuite")
      .config("spark.ui.enabled", "false")
      .config("spark.sql.shuffle.partitions", "4")
      .config(GophasConf.UnpackDir, dir.toString)
      .getOrCreate()
    val data = Mnist.dir(None)
    val mnist = Mnist.read(data, train = true)
    train = Mnist.frame(spark, mnist, 2, 0, 3000).cache()
    small = Mnist.frame(spark, mnist, 2, 0, 300).cache()
    valSet = Mnist.frame(spark, Mnist.read(data, train = false), 2, 0, 1000).cache()
    spec = SparkModelScenarios.mlpSpec()
  }

  override def afterAll(): Unit = if (spark != null) spark.stop()

  private def model(optimizer: String = "", seed: Long = 7L, workers: Int = 2, mode: String = SparkModel.Asynchronous): SparkModel =
    new SparkModel(SparkModel.network(spec, None, seed, ModelInfo.Compile(optimizer = optimizer)), mode, SparkModel.Epoch, workers, 64)

  private def weightsOf(path: String): Array[Byte] = Files.readAllBytes(java.nio.file.Paths.get(path, GophasNetwork.WeightsFile))

  /** The "iteration" of a safetensors optimizer state. */
  private def iteration(bytes: Array[Byte]): Float = {
    val bb = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
    val n = bb.getLong().toInt
    val header = new ObjectMapper().readTree(new String(bytes, 8, n, StandardCharsets.UTF_8))
    val off = header.get("iteration").get("data_offsets").get(0).asInt()
    bb.getFloat(8 + n + off)
  }

  /** Keras' EarlyStopping rule replayed on a history (the rule CallbacksSuite checks against Keras). */
  private def replayEarlyStopping(h: History, patience: Int): (Int, Int) = {
    val cb = new EarlyStopping(patience = patience, restoreBestWeights = false)
    val ctx = new FitContext {
      var stopTraining = false
      def learningRate: Double = 0
      def learningRate_=(r: Double): Unit = ()
      def network: GophasNetwork = null
      def network_=(n: GophasNetwork): Unit = ()
      def save(path: String, weightsOnly: Boolean): Unit = ()
      def higherIsBetter(metric: String): Option[Boolean] = Some(metric.contains("accuracy"))
      def warn(message: String): Unit = ()
      def say(line: String): Unit = ()
      def params: Map[String, Any] = Map.empty
    }
    cb.context = ctx
    cb.onTrainBegin(mutable.LinkedHashMap.empty)
    var e = 0
    while (e < h.epochsRun && !ctx.stopTraining) {
      cb.onEpochEnd(e, mutable.LinkedHashMap(h.history.toSeq.map { case (k, vs) => k -> vs(e) }: _*))
      e += 1
    }
    (e, cb.bestEpoch)
  }

  test("EarlyStopping(patience=2, restore_best_weights) stops where Keras' rule does on the merged history; the weights are the best epoch's checkpoint, bit for bit") {
    val m = model(optimizer = """{"class_name":"Adam","config":{"learning_rate":0.01}}""")
    val ckpt = dir.resolve("best").toString
    val es = new EarlyStopping(patience = 2, restoreBestWeights = true)
    val mc = new ModelCheckpoint(ckpt + "/epoch-{epoch:02d}", saveBestOnly = true)
    val h = m.fit(small, epochs = 30, validationData = Some(valSet), callbacks = Seq(es, mc))
    val (run, best) = replayEarlyStopping(h, 2)
    info(s"stopped after ${h.epochsRun} epochs, best epoch ${best + 1}: val_loss ${h("val_loss").map(v => f"$v%.4f").mkString(", ")}")
    assert(h.epochsRun == run, "epochs run")
    assert(h.epochsRun < 30, "the overfitting fit did not stop early")
    assert(es.stoppedEpoch == run - 1 && es.bestEpoch == best)
    val vl = h("val_loss")
    val improving = vl.indices.filter(i => vl.take(i).forall(p => vl(i).toFloat < p.toFloat))
    assert(mc.saved.map(_._1) == improving, "ModelCheckpoint saved exactly the improving epochs")
    val bestDir = f"$ckpt/epoch-${best + 1}%02d"
    assert(java.util.Arrays.equals(m.masterNetwork.weights, weightsOf(bestDir)), "final weights are the best epoch's checkpoint")
    val loaded = SparkModel.load(bestDir)
    val p1 = m.predict(valSet.limit(50)).select("prediction").collect().toSeq
    val p2 = loaded.predict(valSet.limit(50)).select("prediction").collect().toSeq
    assert(p1 == p2, "the checkpoint predicts as the restored model")
  }

  test("a CosineDecay on 2 workers reads the server's global step: past decay_steps the rate is 0 and the weights stand still") {
    // Two workers of 1500 rows in batches of 64: 24 batches each, 48 global steps per epoch.
    val opt = """{"class_name":"SGD","config":{"learning_rate":{"class_name":"CosineDecay","config":{"initial_learning_rate":0.1,"decay_steps":48}}}}"""
    val m = model(optimizer = opt)
    val ckpt = dir.resolve("cosine").toString
    val h = m.fit(train, epochs = 3, callbacks = Seq(new ModelCheckpoint(ckpt + "/e{epoch}", saveWeightsOnly = true)))
    assert(h.params("steps") == 48, s"${h.params}")
    assert(m.lastServerStats.get.steps == 3 * 48, s"the server counts ${m.lastServerStats.get.steps} global steps; want ${3 * 48}")
    val e1 = Files.readAllBytes(java.nio.file.Paths.get(ckpt, "e1"))
    val e3 = Files.readAllBytes(java.nio.file.Paths.get(ckpt, "e3"))
    assert(java.util.Arrays.equals(e1, e3), "epochs 2 and 3 (global steps 48 to 143, past decay_steps 48) changed the weights")
  }

  test("sample weights change the evaluated loss and weighted metrics exactly as Keras defines them; weights of 0 train nothing") {
    val mapper = new ObjectMapper()
    val tree = mapper.readTree(spec).asInstanceOf[com.fasterxml.jackson.databind.node.ObjectNode]
    tree.get("compile").asInstanceOf[com.fasterxml.jackson.databind.node.ObjectNode].putArray("weighted_metrics").add("accuracy")
    val weighted = mapper.writeValueAsString(tree)
    // Plain SGD: a step of zero gradients moves nothing (Adam's moments, kept from the previous fit, would).
    val sgd = ModelInfo.Compile(optimizer = """{"class_name":"SGD","config":{"learning_rate":0.05}}""")
    val m = new SparkModel(SparkModel.network(weighted, None, 3L, sgd), numWorkers = 2, batchSize = 64)
    m.fit(small, epochs = 1)
    val w = valSet.withColumn("w", when(col("id") % 3 === 0, 0.0).otherwise(1.0))
    val all = m.evaluate(w)
    val byWeight = m.evaluate(w, sampleWeightCol = "w")
    val kept = m.evaluate(w.filter(col("w") === 1.0))
    val n = w.count().toDouble
    val n1 = w.filter(col("w") === 1.0).count().toDouble
    assert(byWeight.keys.toSeq == Seq("loss", "accuracy", "weighted_accuracy"), s"$byWeight")
    // Keras: loss = Σ w·loss / n (regularization aside: none here); weighted accuracy = Σ w·acc / Σ w.
    assert(math.abs(byWeight("loss") - kept("loss") * n1 / n) < 1e-9, s"$byWeight vs $kept")
    assert(math.abs(byWeight("weighted_accuracy") - kept("accuracy")) < 1e-12)
    assert(byWeight("accuracy") == all("accuracy"), "the unweighted metrics ignore the weights")
    // Rows of weight 0 give no gradient: the weights stand still.
    val before = m.masterNetwork.weights
    m.fit(small.withColumn("w", lit(0.0)), epochs = 1, sampleWeightCol = "w")
    assert(java.util.Arrays.equals(before, m.masterNetwork.weights))
    m.fit(small, epochs = 1, classWeight = (0 until 10).map(_ -> 0.0).toMap)
    assert(java.util.Arrays.equals(before, m.masterNetwork.weights))
    val h = m.fit(small, epochs = 1, classWeight = Map(3 -> 5.0))
    assert(!java.util.Arrays.equals(before, m.masterNetwork.weights) && h("loss").head > 0)
  }

  test("validation data is evaluated after the epochs validationFreq picks") {
    val m = model()
    val h = m.fit(small, epochs = 4, validationData = Some(valSet), validationFreq = 2)
    assert(h("loss").length == 4 && h("val_loss").length == 2 && h("val_accuracy").length == 2, s"$h")
    val last = m.evaluate(valSet)
    assert(math.abs(h("val_loss").last - last("loss")) < 1e-9, "the last validation is the final model's exact loss")
  }

  test("ReduceLROnPlateau and LearningRateScheduler set the workers' rate; the final spec keeps it") {
    val m = model(optimizer = """{"class_name":"SGD","config":{"learning_rate":0.05}}""")
    val h = m.fit(small, epochs = 3, callbacks = Seq(new ReduceLROnPlateau(monitor = "loss", factor = 0.5, patience = 0, minDelta = 100.0)))
    val lr = h("learning_rate")
    // Keras logs the rate an epoch trained with, then reduces it: epochs 2 and 3 do not improve by minDelta.
    assert(lr.map(_.toFloat) == Seq(0.05f, 0.05f, 0.025f), s"$lr")
    assert(SparkModel.specInfo(m.masterNetwork.spec).learningRate.toFloat == 0.0125f, "the saved spec keeps the last rate")
    val before = m.masterNetwork.weights
    val h2 = m.fit(small, epochs = 2, callbacks = Seq(new LearningRateScheduler((_, _) => 0.0)))
    assert(h2("learning_rate") == Seq(0.0, 0.0))
    assert(java.util.Arrays.equals(before, m.masterNetwork.weights), "a rate of 0 trained")
    val sched = model(optimizer = """{"class_name":"SGD","config":{"learning_rate":{"class_name":"ExponentialDecay","config":{"initial_learning_rate":0.1,"decay_steps":10,"decay_rate":0.5}}}}""")
    val e = intercept[GophasException](sched.fit(small, epochs = 2, callbacks = Seq(new LearningRateScheduler((_, lr) => lr / 2))))
    assert(e.getMessage.contains("ExponentialDecay schedule, so it cannot be set"), e.getMessage)
  }

  test("a callback monitoring a metric that is not there warns once; a checkpoint dir that cannot be written fails before training") {
    val m = model()
    val h = m.fit(small, epochs = 3, callbacks = Seq(new EarlyStopping(patience = 0)))
    assert(h.epochsRun == 3)
    assert(m.lastFitWarnings == Seq("Early stopping conditioned on metric `val_loss` which is not available. Available metrics are: loss,accuracy"),
      s"${m.lastFitWarnings}")
    val file = Files.write(dir.resolve("a-file"), Array[Byte](1))
    val bad = file.resolve("ckpt").toString
    val before = m.masterNetwork
    val e = intercept[GophasException](m.fit(small, epochs = 1, callbacks = Seq(new BackupAndRestore(bad))))
    assert(e.getMessage.contains(s"checkpoint directory $bad is not writable"), e.getMessage)
    assert(m.masterNetwork == before)
    val auto = intercept[GophasException](m.fit(small, epochs = 1, callbacks = Seq(new EarlyStopping(monitor = "nope"))))
    assert(auto.getMessage.contains("monitor=nope") && auto.getMessage.contains("mode=\"max\""), auto.getMessage)
  }

  test("a fit that dies after epoch 3 of 6 resumes from its checkpoint: 6 epochs of history, the accuracy of an uninterrupted fit") {
    val ckpt = dir.resolve("backup").toString
    final class Die extends Callback {
      override def onEpochBegin(epoch: Int, logs: mutable.Map[String, Double]): Unit =
        if (epoch == 3) throw new IllegalStateException("the driver dies")
    }
    // Synchronous: the rounds average the workers in a fixed way, so the resumed fit can match the uninterrupted one.
    val first = model(seed = 11L, mode = SparkModel.Synchronous)
    val es = new EarlyStopping(monitor = "loss", patience = 3)
    intercept[IllegalStateException](first.fit(train, epochs = 6, callbacks = Seq(es, new BackupAndRestore(ckpt), new Die)))
    assert(Checkpoint.epochs(ckpt, spark.sparkContext.hadoopConfiguration) == Seq("epoch-000003"))
    val second = model(seed = 11L, mode = SparkModel.Synchronous) // a new driver: the same program, from the start
    val csv = dir.resolve("log.csv").toString
    val h = second.fit(train, epochs = 6, callbacks = Seq(new EarlyStopping(monitor = "loss", patience = 3), new BackupAndRestore(ckpt),
      new CSVLogger(csv)))
    assert(h.epochsRun == 6 && h.epoch == (0 until 6) && h("loss").length == 6, s"$h")
    assert(!Files.exists(java.nio.file.Paths.get(ckpt)), "the checkpoint is removed when the fit completes")
    assert(second.lastServerStats.get.steps == 6 * h.params("steps"), "the global step continued")
    val straight = model(seed = 11L, mode = SparkModel.Synchronous)
    val hs = straight.fit(train, epochs = 6)
    val acc = second.evaluate(valSet)("accuracy")
    val accStraight = straight.evaluate(valSet)("accuracy")
    info(f"resumed: accuracy $acc%.4f; uninterrupted: $accStraight%.4f; weights identical: " +
      java.util.Arrays.equals(second.masterNetwork.weights, straight.masterNetwork.weights))
    assert(math.abs(acc - accStraight) <= 0.005, f"$acc%.4f vs $accStraight%.4f")
    assert(hs("loss").length == 6)
    val lines = new String(Files.readAllBytes(java.nio.file.Paths.get(csv)), StandardCharsets.UTF_8).split("\r\n").toSeq
    assert(lines.length == 4 && lines.head == "epoch,accuracy,loss,val_accuracy,val_loss" && lines(1).startsWith("3,"), s"$lines")
  }

  test("save keeps every worker's optimizer state: a loaded model's next fit continues Adam's moments") {
    val m = model()
    m.fit(small, epochs = 1)
    val path = dir.resolve("with-state").toString
    m.save(path)
    val states = m.masterNetwork.optimizerStates
    assert(states.keySet == Set("partition-0", "partition-1"), s"${states.keySet}")
    val steps = iteration(states("partition-0"))
    assert(steps == 3f, s"partition 0 took $steps steps of 150 rows in batches of 64") // ceil(150/64)
    assert(Files.isRegularFile(java.nio.file.Paths.get(path, "optimizer", "partition-1.safetensors")))
    assert(Files.isRegularFile(java.nio.file.Paths.get(path, GophasNetwork.OptimizerFile)))
    val loaded = SparkModel.load(path, numWorkers = 2, batchSize = 64)
    loaded.fit(small, epochs = 1)
    assert(iteration(loaded.masterNetwork.optimizerStates("partition-0")) == 2 * steps, "the second fit restarted the optimizer")
  }
}
