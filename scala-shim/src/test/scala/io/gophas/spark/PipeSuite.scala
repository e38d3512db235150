package io.gophas.spark

import java.nio.file.{Files, Path}
import java.util.concurrent.TimeUnit

import scala.concurrent.{Await, Future}
import scala.concurrent.ExecutionContext.Implicits.global
import scala.concurrent.duration._

import org.apache.spark.sql.SparkSession
import org.apache.spark.sql.functions.{col, udf}
import org.scalatest.BeforeAndAfterAll
import org.scalatest.funsuite.AnyFunSuite

import PipeScenarios._

class PipeSuite extends AnyFunSuite with BeforeAndAfterAll {
  private var spark: SparkSession = _
  private var dir: Path = _
  private var real: Path = _

  override def beforeAll(): Unit = {
    dir = Files.createTempDirectory("gophas-pipe-suite")
    spark = SparkSession.builder()
      .master("local[2]")
      .appName("PipeSuite")
      .config("spark.ui.enabled", "false")
      .config("spark.sql.shuffle.partitions", "4")
      .config(GophasConf.UnpackDir, dir.toString)
      .getOrCreate()
    real = GophasBinary.get(None, Some(dir.toString))
  }

  override def afterAll(): Unit = if (spark != null) spark.stop()

  /** Runs body with spark.gophas.* settings, restoring the previous ones. */
  private def withConf[T](kv: (String, String)*)(body: => T): T = {
    val old = kv.map { case (k, _) => k -> spark.conf.getOption(k) }
    kv.foreach { case (k, v) => spark.conf.set(k, v) }
    try body finally old.foreach {
      case (k, Some(v)) => spark.conf.set(k, v)
      case (k, None) => spark.conf.unset(k)
    }
  }

  test("the embedded binary is unpacked under its hash and speaks our protocol") {
    assert(real.startsWith(dir), s"$real is not under $dir")
    assert(GophasBinary.checkVersion(real).isEmpty)
  }

  test("echo returns 200k rows of 784 features bit-for-bit, in partition order") {
    assert(echoRoundTrip(spark, 200000, 784, 4) == 200000)
  }

  test("echo keeps order across several batches of one partition") {
    withConf(GophasConf.BatchRows -> "7") {
      assert(echoRoundTrip(spark, 100, 5, 2) == 100)
    }
  }

  test("echo round-trips null, empty and NaN-holding float and double arrays beside other types") {
    echoArrayEdgeCases(spark)
    withConf(GophasConf.BatchRows -> "16") {
      echoArrayEdgeCases(spark)
    }
  }

  test("empty partitions and empty DataFrames go through echo") {
    echoEmptyPartitions(spark)
  }

  test("describe matches Spark's own aggregates") {
    describeMatchesSpark(spark)
  }

  for (kind <- Seq("null", "ragged", "nan")) test(s"a $kind features row is named by column and row") {
    badRowIsNamed(spark, kind)
  }

  test("a worker that crashes mid-stream gives its stderr in the exception") {
    val fake = fakeWorker(dir, real, """head -c 100000 >/dev/null; echo "gophas: simulated crash after 100000 bytes" >&2; exit 3""")
    withConf(GophasConf.Binary -> fake.toString) {
      val e = expectGophasException(Gophas.pipe(vectors(spark, 2000, 50, 1), "echo").count())
      assert(e.getMessage.contains("simulated crash after 100000 bytes"), e.getMessage)
      assert(e.getMessage.contains("exit status 3"), e.getMessage)
    }
  }

  test("a worker that stops reading hits the deadline instead of hanging") {
    val marker = s"${System.nanoTime() % 100000}.5"
    val fake = fakeWorker(dir, real, s"exec sleep $marker")
    withConf(GophasConf.Binary -> fake.toString, GophasConf.IoTimeout -> "2s") {
      val start = System.nanoTime()
      val e = expectGophasException(Gophas.pipe(vectors(spark, 50000, 100, 1), "echo").count())
      val secs = (System.nanoTime() - start) / 1e9
      assert(e.getMessage.contains("stopped reading its input"), e.getMessage)
      assert(secs < 60, s"took $secs s")
    }
    assert(awaitNoProcesses(s"sleep $marker", 10000).isEmpty, "the stalled worker was left running")
  }

  test("a cancelled job leaves no gophas process behind") {
    val slow = udf((id: Long) => { Thread.sleep(20); id })
    val df = vectors(spark, 100000, 8, 2).withColumn("id", slow(col("id")))
    val needle = s"$real worker"
    val job = Future {
      spark.sparkContext.setJobGroup("cancel-me", "a job to cancel", interruptOnCancel = true)
      Gophas.pipe(df, "echo").count()
    }
    val end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60)
    while (processes(needle).isEmpty && System.nanoTime() < end) Thread.sleep(50)
    assert(processes(needle).nonEmpty, "no worker started")
    spark.sparkContext.cancelJobGroup("cancel-me")
    intercept[Exception](Await.result(job, 60.seconds))
    val left = awaitNoProcesses(needle, 20000)
    assert(left.isEmpty, s"gophas workers still running: $left")
    // The next job works.
    assert(echoRoundTrip(spark, 1000, 3, 2) == 1000)
  }

  test("bad arguments fail on the driver with a clear message") {
    val df = vectors(spark, 10, 2, 1)
    val unknown = intercept[GophasException](Gophas.pipe(df, "train-me"))
    assert(unknown.getMessage.contains("unknown pipe mode 'train-me'"))
    val missing = intercept[GophasException](Gophas.pipe(df, "describe", "pixels", "label"))
    assert(missing.getMessage.contains("features column 'pixels' is not in the DataFrame"))
    withConf(GophasConf.BatchRows -> "0") {
      assert(intercept[GophasException](Gophas.pipe(df, "echo")).getMessage.contains("spark.gophas.batchRows must be positive"))
    }
  }

  test("a binary that is missing or speaks another protocol is refused with what was tried") {
    withConf(GophasConf.Binary -> dir.resolve("no-such-gophas").toString) {
      val e = expectGophasException(Gophas.pipe(vectors(spark, 10, 2, 1), "echo").count())
      assert(e.getMessage.contains("no usable gophas binary") && e.getMessage.contains("no-such-gophas"), e.getMessage)
    }
    val old = dir.resolve("old-gophas.sh")
    Files.write(old, "#!/bin/sh\necho '{\"version\":\"0.0.1\",\"protocol\":0}'\n".getBytes)
    old.toFile.setExecutable(true)
    withConf(GophasConf.Binary -> old.toString) {
      val e = expectGophasException(Gophas.pipe(vectors(spark, 10, 2, 1), "echo").count())
      assert(e.getMessage.contains("speaks protocol 0, this jar speaks 1"), e.getMessage)
    }
  }
}
