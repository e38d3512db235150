package io.gophas.spark

import java.lang.management.ManagementFactory

import scala.util.control.NonFatal

import org.apache.spark.sql.SparkSession

/**
 * Runs named PipeScenarios under spark-submit, for the Go integration tests
 * (integration/), which start it on a multi-JVM local cluster with the jar
 * as the only source of the gophas binary. Prints one line per scenario:
 * `SCENARIO <name> ok <detail>` or `SCENARIO <name> FAIL <message>`.
 */
object PipeScenariosMain {
  def main(args: Array[String]): Unit = {
    val spark = SparkSession.builder().appName("gophas pipe scenarios").getOrCreate()
    // The driver resolves the binary as the executors do (same machine, same unpack dir):
    // fake workers answer `version` through it.
    lazy val real = GophasBinary.get(spark.conf.getOption(GophasConf.Binary), spark.conf.getOption(GophasConf.UnpackDir))
    lazy val dir = java.nio.file.Files.createTempDirectory("gophas-scenarios")
    val scenarios: Map[String, () => String] = Map(
      "executors" -> (() => executors(spark)),
      "echo" -> (() => PipeScenarios.echoRoundTrip(spark, 200000, 784, 4).toString),
      "empty" -> (() => { PipeScenarios.echoEmptyPartitions(spark); "" }),
      "arrays" -> (() => { PipeScenarios.echoArrayEdgeCases(spark); "" }),
      "describe" -> (() => { PipeScenarios.describeMatchesSpark(spark); "" }),
      "null-row" -> (() => PipeScenarios.badRowIsNamed(spark, "null").linesIterator.next()),
      "ragged-row" -> (() => PipeScenarios.badRowIsNamed(spark, "ragged").linesIterator.next()),
      "crash" -> (() => PipeScenarios.crashShowsStderr(spark, real, dir).linesIterator.next()),
      "stall" -> (() => f"${PipeScenarios.stallHitsDeadline(spark, real, dir)}%.1f s"),
      "cancel" -> (() => { PipeScenarios.cancelLeavesNoProcess(spark, real); "" }))
    var failed = false
    for (name <- args) {
      val line = scenarios.get(name) match {
        case None => failed = true; s"SCENARIO $name FAIL unknown scenario; known: ${scenarios.keys.toSeq.sorted.mkString(" ")}"
        case Some(run) =>
          try s"SCENARIO $name ok ${run().replace('\n', ' ')}"
          catch { case NonFatal(e) => failed = true; s"SCENARIO $name FAIL ${String.valueOf(e.getMessage).replace('\n', ' ')}" }
      }
      println(line)
      System.out.flush()
    }
    spark.stop()
    if (failed) sys.exit(1)
  }

  /** How many distinct executor JVMs ran a task: `<n> <pid,pid,...>`. */
  private def executors(spark: SparkSession): String = {
    val pids = spark.sparkContext.parallelize(1 to 64, 16).map { _ =>
      Thread.sleep(50)
      ManagementFactory.getRuntimeMXBean.getName
    }.distinct().collect().sorted
    s"${pids.length} ${pids.mkString(",")}"
  }
}
