package io.gophas.spark

import java.nio.file.{Files, Path}


import org.apache.spark.sql.SparkSession
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

  private def withConf[T](kv: (String, String)*)(body: => T): T = PipeScenarios.withConf(spark, kv: _*)(body)

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
    crashShowsStderr(spark, real, dir)
  }

  test("a worker that stops reading hits the deadline instead of hanging") {
    stallHitsDeadline(spark, real, dir)
  }

  test("a stdin writer that dies fails the task at once and kills the worker") {
    val secs = writerDeathFailsAtOnce(spark, real)
    assert(secs < 60, s"the task took $secs s to fail")
  }

  test("a cancelled job leaves no gophas process behind") {
    cancelLeavesNoProcess(spark, real)
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
      assert(e.getMessage.contains(s"speaks protocol 0, this jar speaks ${Protocol.Version}"), e.getMessage)
    }
  }
}
