package io.gophas.spark

import scala.jdk.CollectionConverters._

import com.fasterxml.jackson.databind.ObjectMapper
import org.apache.spark.ml.functions.vector_to_array
import org.apache.spark.sql.SparkSession
import org.apache.spark.sql.functions.col

import io.gophas.spark.examples.Mnist

/**
 * SparkModel scenarios for spark-submit, run by the Go integration tests on
 * a multi-JVM local cluster with the binary unpacked from the jar. Each
 * prints `SCENARIO <name> <json>` lines for the test to check.
 *
 *   parity MODEL_DIR OUT_DIR   fit one epoch from MODEL_DIR, save the result
 *                              to OUT_DIR/model, write the test rows'
 *                              predictions to OUT_DIR/predictions (JSON
 *                              lines: id, prediction) and print evaluate's
 *                              result, for the test to compare with the Go
 *                              kernel run locally
 *   kill EPOCHS                an asynchronous fit the test kills a worker
 *                              of; prints the accuracy and the server's
 *                              per-worker registrations
 *   resume DIR EPOCHS          a synchronous fit checkpointing to DIR
 *                              (spark.gophas.checkpointDir), which the test
 *                              kills mid-epoch and starts again; prints
 *                              `EPOCH_BEGIN <epoch>` as each epoch starts
 *                              (from 0), then the history and the accuracy
 */
object SparkModelScenariosMain {
  private val json = new ObjectMapper()

  private def emit(name: String, fields: Map[String, Any]): Unit = {
    val m = new java.util.LinkedHashMap[String, Any]()
    fields.foreach { case (k, v) => m.put(k, v) }
    println(s"SCENARIO $name ${json.writeValueAsString(m)}")
    Console.out.flush()
  }

  def main(args: Array[String]): Unit = {
    val spark = SparkSession.builder().appName("gophas SparkModel scenarios").getOrCreate()
    try {
      val data = Mnist.dir(None)
      val workers = spark.sparkContext.defaultParallelism
      val train = Mnist.frame(spark, Mnist.read(data, train = true), workers, 0, SparkModelScenarios.TrainRows)
      val test = Mnist.frame(spark, Mnist.read(data, train = false), workers, 0, SparkModelScenarios.TestRows)
      args.toList match {
        case "parity" :: modelDir :: outDir :: Nil =>
          val m = SparkModel.load(modelDir, numWorkers = workers, batchSize = 64)
          val h = m.fit(train, epochs = 1, verbose = 1)
          m.save(s"$outDir/model")
          m.predict(test).select(col("id"), vector_to_array(col("prediction")).as("prediction"))
            .coalesce(1).write.json(s"$outDir/predictions")
          val scores = m.evaluate(test)
          val executors = spark.sparkContext.getExecutorMemoryStatus.size - 1
          emit("parity", Map[String, Any]("executors" -> executors, "loss" -> h("loss").head) ++ scores.map { case (k, v) => s"evaluate_$k" -> v })
        case "kill" :: epochs :: Nil =>
          val m = SparkModel.fromSpec(SparkModelScenarios.mlpSpec(), seed = 5L, frequency = SparkModel.Batch,
            numWorkers = workers, batchSize = 64)
          val failed = new java.util.concurrent.atomic.AtomicInteger()
          spark.sparkContext.addSparkListener(new org.apache.spark.scheduler.SparkListener {
            override def onTaskEnd(e: org.apache.spark.scheduler.SparkListenerTaskEnd): Unit =
              if (!e.taskInfo.successful) failed.incrementAndGet()
          })
          val h = m.fit(train, epochs = epochs.toInt, verbose = 1)
          val stats = m.lastServerStats.get
          emit("kill", Map(
            "accuracy" -> m.evaluate(test)("accuracy"),
            "loss" -> h("loss").asJava,
            "registers" -> stats.workers.map(w => w.worker -> w.registers).toMap.asJava,
            "duplicate" -> stats.workers.map(_.duplicate).sum,
            "failedTasks" -> failed.get()))
        case "resume" :: checkpointDir :: epochs :: Nil =>
          spark.conf.set(GophasConf.CheckpointDir, checkpointDir)
          val m = SparkModel.fromSpec(SparkModelScenarios.mlpSpec(), seed = 5L, mode = SparkModel.Synchronous,
            numWorkers = workers, batchSize = 64)
          val printer = new Callback {
            override def onEpochBegin(epoch: Int, logs: scala.collection.mutable.Map[String, Double]): Unit = {
              println(s"EPOCH_BEGIN $epoch")
              Console.out.flush()
            }
          }
          val h = m.fit(train, epochs = epochs.toInt, verbose = 1, callbacks = Seq(printer))
          emit("resume", Map(
            "accuracy" -> m.evaluate(test)("accuracy"),
            "epoch" -> h.epoch.asJava,
            "loss" -> h("loss").asJava,
            "steps" -> m.lastServerStats.get.steps,
            "checkpointLeft" -> new java.io.File(checkpointDir).exists()))
        case other =>
          throw new IllegalArgumentException(s"unknown scenario ${other.mkString(" ")}")
      }
    } finally spark.stop()
  }
}
