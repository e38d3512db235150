package io.gophas.spark

import java.nio.file.{Files, Paths}
import java.util.concurrent.atomic.AtomicBoolean

import scala.jdk.CollectionConverters._
import scala.util.control.NonFatal

import com.fasterxml.jackson.databind.ObjectMapper
import org.apache.spark.{Partition, TaskContext}
import org.apache.spark.ml.functions.array_to_vector
import org.apache.spark.rdd.RDD
import org.apache.spark.scheduler.{SparkListener, SparkListenerJobStart, SparkListenerTaskEnd}
import org.apache.spark.sql.{DataFrame, Row, SparkSession}
import org.apache.spark.sql.functions._

import io.gophas.spark.examples.Mnist

/**
 * The fault matrix's scenarios for spark-submit, run by the Go integration
 * test TestFaultMatrix (integration/faults_test.go), which injects the
 * process faults (a killed or stopped parameter server, idle connections)
 * when it reads the lines a case prints. Each case prints `CASE <name>`
 * when it starts and `SCENARIO <name> <json>` with what happened.
 *
 *   faults [SAVE_DIR]   on local[N]: idle-conns, nan-worker, kill-ps,
 *                       sigstop-ps, save-full (when SAVE_DIR, a small
 *                       filesystem, is given), oom-dispatcher and
 *                       lost-scheduler (last: it leaves Spark unable to run
 *                       jobs, and the JVM halts after it)
 *   executor-kill       on local-cluster: an asynchronous fit the test kills
 *                       an executor JVM of
 */
object FaultScenariosMain {
  private val json = new ObjectMapper()

  private def emit(name: String, fields: Map[String, Any]): Unit = {
    val m = new java.util.LinkedHashMap[String, Any]()
    fields.foreach { case (k, v) => m.put(k, v) }
    println(s"SCENARIO $name ${json.writeValueAsString(m)}")
    Console.out.flush()
  }

  private def start(name: String): Unit = { println(s"CASE $name"); Console.out.flush() }

  private def seconds(since: Long): Double = (System.nanoTime() - since) / 1e9

  /** Runs fit, expecting it to fail; returns the message and the seconds it took. */
  private def failing(fit: => Any): (String, Double) = {
    val t = System.nanoTime()
    try {
      fit
      ("the fit succeeded", seconds(t))
    } catch { case NonFatal(e) => (s"${e.getClass.getSimpleName}: ${e.getMessage}", seconds(t)) }
  }

  def main(args: Array[String]): Unit = {
    val spark = SparkSession.builder().appName("gophas fault scenarios").getOrCreate()
    val sc = spark.sparkContext
    val failedTasks = new java.util.concurrent.atomic.AtomicInteger()
    sc.addSparkListener(new SparkListener {
      override def onTaskEnd(e: SparkListenerTaskEnd): Unit = if (!e.taskInfo.successful) failedTasks.incrementAndGet()
    })
    val data = Mnist.dir(None)
    val workers = sc.defaultParallelism
    val train = Mnist.frame(spark, Mnist.read(data, train = true), workers, 0, SparkModelScenarios.TrainRows).cache()
    val test = Mnist.frame(spark, Mnist.read(data, train = false), workers, 0, SparkModelScenarios.TestRows).cache()
    def model(frequency: String = SparkModel.Epoch) =
      SparkModel.fromSpec(SparkModelScenarios.mlpSpec(), seed = 5L, frequency = frequency, numWorkers = workers, batchSize = 64)
    args.toList match {
      case "executor-kill" :: Nil =>
        start("executor-kill")
        val m = model()
        val h = m.fit(train, epochs = 6, verbose = 1)
        emit("executor-kill", Map(
          "accuracy" -> m.evaluate(test)("accuracy"),
          "loss" -> h("loss").asJava,
          "failedTasks" -> failedTasks.get(),
          "registers" -> m.lastServerStats.get.workers.map(w => w.worker -> w.registers).toMap.asJava,
          "executors" -> (sc.getExecutorMemoryStatus.size - 1)))
        spark.stop()

      case "faults" :: rest =>
        // 500 idle connections to the parameter server (the test opens them
        // when it reads the server's address): the fit completes.
        start("idle-conns")
        val m = model()
        val h = m.fit(train, epochs = 4, verbose = 1)
        emit("idle-conns", Map("accuracy" -> m.evaluate(test)("accuracy"), "loss" -> h("loss").asJava))

        // One worker's data makes its weights overflow: its pushes hold NaN
        // or Inf and are refused; the fit fails naming them; the model's
        // weights are untouched.
        start("nan-worker")
        // Every pixel of partition 1 is 3e38, finite in float32: the first
        // layer's sums overflow to +Inf and -Inf, the next layer's to NaN.
        val huge = train.withColumn("features",
          when(spark_partition_id() === 1, array_to_vector(array_repeat(lit(3e38), Mnist.Width))).otherwise(col("features")))
        val nan = SparkModel.fromSpec(SparkModelScenarios.mlpSpec(), seed = 5L, batchSize = 64)
        val before = nan.masterNetwork
        val (nanError, _) = failing(nan.fit(huge, epochs = 2, verbose = 1))
        emit("nan-worker", Map("error" -> nanError, "unchanged" -> (nan.masterNetwork == before)))

        // The test kills the parameter server with SIGKILL when epoch 2
        // begins (epoch 1 is checkpointed by then): the fit fails at once,
        // naming it. The next fit with the same checkpoint directory
        // resumes after epoch 1 and completes.
        start("kill-ps")
        val ckpt = Files.createTempDirectory("gophas-kill-ps").resolve("ckpt").toString
        val signal = new Callback {
          override def onEpochBegin(epoch: Int, logs: scala.collection.mutable.Map[String, Double]): Unit =
            if (epoch == 1) { println("KILL-PS-NOW"); Console.out.flush(); Thread.sleep(500) }
        }
        spark.conf.set(GophasConf.CheckpointDir, ckpt)
        val (killError, killSeconds, resumed) = try {
          val (e, sec) = failing(model(SparkModel.Batch).fit(train, epochs = 4, verbose = 1, callbacks = Seq(signal)))
          val again = model(SparkModel.Batch)
          val h = again.fit(train, epochs = 4, verbose = 1)
          (e, sec, Map[String, Any]("resumedEpochs" -> h.epoch.asJava, "resumedLoss" -> h("loss").asJava,
            "resumedAccuracy" -> again.evaluate(test)("accuracy"),
            "checkpointRemoved" -> !Files.exists(Paths.get(ckpt))))
        } finally spark.conf.unset(GophasConf.CheckpointDir)
        emit("kill-ps", Map[String, Any]("error" -> killError, "seconds" -> killSeconds, "failedTasks" -> failedTasks.get()) ++ resumed)

        // The test stops the parameter server with SIGSTOP once epoch 1 is
        // done: the fit fails when the server has not answered for half
        // the I/O timeout.
        start("sigstop-ps")
        spark.conf.set(GophasConf.IoTimeout, "20s")
        val (stopError, stopSeconds) = try failing(model(SparkModel.Batch).fit(train, epochs = 30, verbose = 1))
          finally spark.conf.unset(GophasConf.IoTimeout)
        emit("sigstop-ps", Map("error" -> stopError, "seconds" -> stopSeconds))

        rest.headOption.foreach { dir => saveFull(dir, model(), train) }

        oomDispatcher(spark, train)
        lostScheduler(spark, train) // last: Spark runs no job after it

      case other =>
        throw new IllegalArgumentException(s"unknown scenario ${other.mkString(" ")}")
    }
  }

  /**
   * A save on a full disk: the first save fits, then the disk is filled so
   * that a second copy cannot; the second save fails, and the first is
   * still there, whole.
   */
  private def saveFull(dir: String, m: SparkModel, train: DataFrame): Unit = {
    start("save-full")
    val path = Paths.get(dir, "model")
    m.save(path.toString)
    val first = m.masterNetwork
    val store = Files.getFileStore(Paths.get(dir))
    val filler = Paths.get(dir, "filler")
    val out = Files.newOutputStream(filler)
    try {
      val chunk = new Array[Byte](4096)
      while (store.getUsableSpace > first.weights.length / 2) out.write(chunk)
    } catch { case NonFatal(_) => } finally try out.close() catch { case NonFatal(_) => }
    m.fit(train, epochs = 1)
    val (error, _) = failing(m.save(path.toString))
    val after = try Some(SparkModel.load(path.toString).masterNetwork) catch { case NonFatal(e) => None }
    val files = Files.list(path).iterator().asScala.map(_.getFileName.toString).toSeq.sorted
    Files.delete(filler)
    emit("save-full", Map("error" -> error, "intact" -> after.contains(first), "changed" -> (m.masterNetwork != first),
      "files" -> files.asJava))
  }

  /**
   * The driver runs out of memory while it serializes a task of epoch 2 (a
   * partition of the fit's data throws OutOfMemoryError when it is
   * serialized, as a task too large for the driver's heap does): the
   * thread that was launching the tasks dies, the stage would wait forever
   * with none running, and the fit fails instead, naming the error.
   */
  private def oomDispatcher(spark: SparkSession, train: DataFrame): Unit = {
    start("oom-dispatcher")
    val sc = spark.sparkContext
    val rows = new Boom(train.rdd)
    val df = spark.createDataFrame(rows, train.schema)
    val m = SparkModel.fromSpec(SparkModelScenarios.mlpSpec(), seed = 5L, batchSize = 64)
    var armedAt = 0L
    val listener = new SparkListener {
      override def onJobStart(e: SparkListenerJobStart): Unit =
        if (Option(e.properties).exists(_.getProperty("spark.job.description", "").startsWith("gophas fit epoch 2/")) && !Boom.armed.get) {
          armedAt = System.nanoTime()
          Boom.armed.set(true)
        }
    }
    // Armed at the start of epoch 2's job, before its tasks are launched.
    sc.addSparkListener(listener)
    val (error, _) = try failing(m.fit(df, epochs = 4, verbose = 1)) finally {
      sc.removeSparkListener(listener)
      Boom.armed.set(false)
    }
    emit("oom-dispatcher", Map("error" -> error, "secondsAfterOOM" -> (if (armedAt == 0) -1.0 else seconds(armedAt))))
  }

  /**
   * Spark's DAG scheduler thread dies during a fit (here of a
   * StackOverflowError while it looks for where the fit's first job should
   * run: a fatal error, which Spark lets kill that thread): no job can start
   * or end; the fit fails, naming it. The JVM then halts, since stopping the
   * SparkContext needs that thread.
   */
  private def lostScheduler(spark: SparkSession, train: DataFrame): Unit = {
    start("lost-scheduler")
    val df = spark.createDataFrame(new Boom(train.rdd), train.schema)
    val m = SparkModel.fromSpec(SparkModelScenarios.mlpSpec(), seed = 5L, batchSize = 64)
    Boom.schedulerArmed.set(true)
    val t = System.nanoTime()
    val (error, _) = failing(m.fit(df, epochs = 4, verbose = 1))
    val alive = Thread.getAllStackTraces.keySet.asScala.exists(_.getName == "dag-scheduler-event-loop")
    emit("lost-scheduler", Map("error" -> error, "seconds" -> seconds(t), "schedulerAlive" -> alive))
    Console.out.flush()
    Runtime.getRuntime.halt(0)
  }
}

/**
 * The rows of prev in partitions that throw OutOfMemoryError when serialized
 * once Boom.armed is set, and whose preferred locations throw
 * StackOverflowError once Boom.schedulerArmed is.
 */
final class Boom(prev: RDD[Row]) extends RDD[Row](prev) {
  override protected def getPartitions: Array[Partition] = prev.partitions.map(p => new BoomPartition(p): Partition)
  override protected def getPreferredLocations(split: Partition): Seq[String] =
    if (Boom.schedulerArmed.get) throw new StackOverflowError("simulated by the test in the scheduler thread")
    else prev.preferredLocations(split.asInstanceOf[BoomPartition].inner)
  override def compute(split: Partition, context: TaskContext): Iterator[Row] =
    prev.iterator(split.asInstanceOf[BoomPartition].inner, context)
}

final class BoomPartition(val inner: Partition) extends Partition {
  override def index: Int = inner.index
  private def writeObject(out: java.io.ObjectOutputStream): Unit = {
    if (Boom.armed.get) throw new OutOfMemoryError("Java heap space (simulated by the test while a task is serialized)")
    out.defaultWriteObject()
  }
}

object Boom {
  val armed = new AtomicBoolean(false)
  val schedulerArmed = new AtomicBoolean(false)
}
