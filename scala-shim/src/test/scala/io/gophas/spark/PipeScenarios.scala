package io.gophas.spark

import java.nio.charset.StandardCharsets
import java.nio.file.{Files, Path, Paths}

import scala.jdk.CollectionConverters._

import org.apache.spark.ml.functions.vector_to_array
import org.apache.spark.ml.linalg.{Vector, Vectors}
import org.apache.spark.sql.{DataFrame, Row, SparkSession}
import org.apache.spark.sql.functions._
import org.apache.spark.sql.types._

/**
 * The pipe's end-to-end checks, written once and run two ways: by PipeSuite
 * on a local SparkSession, and by the Go integration tests through
 * spark-submit (PipeScenariosMain) on a multi-JVM local cluster with the
 * binary unpacked from the jar. Each check throws on failure.
 */
object PipeScenarios {

  /** Deterministic feature j of row id; values exact in float32 (multiples of 1/64 below 2^17). */
  def feature(id: Long, j: Int): Double = (((id * 31 + j * 7) % 1021) - 510) / 64.0

  /** rows × width vectors plus an integer label and the row id, in the given number of partitions. */
  def vectors(spark: SparkSession, rows: Long, width: Int, partitions: Int): DataFrame = {
    val w = width
    val make = udf((id: Long) => Vectors.dense(Array.tabulate(w)(j => feature(id, j))))
    spark.range(0, rows, 1, partitions)
      .select(col("id"), make(col("id")).as("features"), (col("id") % 10).cast(DoubleType).as("label"))
  }

  private def check(ok: Boolean, what: => String): Unit = if (!ok) throw new AssertionError(what)

  /** echo returns every row bit-for-bit, in order within each partition; returns the row count. */
  def echoRoundTrip(spark: SparkSession, rows: Long, width: Int, partitions: Int): Long = {
    val in = vectors(spark, rows, width, partitions)
    val out = Gophas.pipe(in, Protocol.ModeEcho)
    check(out.schema == in.schema, s"echo schema ${out.schema.simpleString}, want ${in.schema.simpleString}")
    val w = width
    // Per partition: ids ascend by one (order kept, nothing lost) and every value is exact.
    val bad = out.rdd.mapPartitions { it =>
      var prev = -1L
      var errors = List.empty[String]
      it.foreach { r =>
        val id = r.getLong(0)
        if (prev >= 0 && id != prev + 1 && errors.size < 5) errors ::= s"id $id follows $prev"
        prev = id
        val v = r.getAs[Vector](1).toArray
        if (v.length != w) errors ::= s"row $id has ${v.length} features"
        else {
          var j = 0
          while (j < w) {
            val want = feature(id, j)
            if (java.lang.Double.doubleToRawLongBits(v(j)) != java.lang.Double.doubleToRawLongBits(want) && errors.size < 5)
              errors ::= s"row $id feature $j: got ${v(j)}, want $want"
            j += 1
          }
        }
        if (r.getDouble(2) != (id % 10).toDouble && errors.size < 5) errors ::= s"row $id label ${r.getDouble(2)}"
      }
      errors.iterator
    }.collect()
    check(bad.isEmpty, s"echo changed rows: ${bad.take(5).mkString("; ")}")
    val n = out.count()
    check(n == rows, s"echo returned $n rows, want $rows")
    n
  }

  /**
   * echo round-trips the shapes the bulk array copies must get right: null
   * arrays, null elements, empty arrays, float and double, beside columns of
   * other types, across batch boundaries.
   */
  def echoArrayEdgeCases(spark: SparkSession): Unit = {
    val schema = StructType(Seq(
      StructField("name", StringType),
      StructField("f", ArrayType(FloatType, containsNull = true)),
      StructField("d", ArrayType(DoubleType, containsNull = true)),
      StructField("i", IntegerType),
      StructField("ints", ArrayType(IntegerType))))
    val rows = (0 until 300).map { k =>
      val f: Seq[Any] = k % 7 match {
        case 0 => null
        case 1 => Seq.empty[Float]
        case 2 => Seq(1.5f, null, -0.0f, Float.NaN)
        case _ => Seq.tabulate(k % 37)(j => (k * 0.25f + j))
      }
      val d: Seq[Any] = k % 5 match {
        case 0 => Seq(Double.MinPositiveValue, Double.MaxValue, -0.0)
        case 1 => null
        case 2 => Seq(null, 2.0)
        case _ => Seq.tabulate(k % 41)(j => k * 1e-3 + j)
      }
      Row(if (k % 11 == 0) null else s"row $k", f, d, if (k % 13 == 0) null else k, Seq(k, -k))
    }
    val df = spark.createDataFrame(spark.sparkContext.parallelize(rows, 3), schema)
    val got = Gophas.pipe(df, Protocol.ModeEcho).collect().toSeq
    val want = df.collect().toSeq
    check(got.length == want.length, s"echo gave ${got.length} rows, want ${want.length}")
    // Compare bits, so that NaN and -0.0 count.
    def bits(v: Any): Any = v match {
      case null => null
      case f: Float => java.lang.Float.floatToRawIntBits(f)
      case d: Double => java.lang.Double.doubleToRawLongBits(d)
      case s: scala.collection.Seq[_] => s.map(bits).toList
      case r: Row => r.toSeq.map(bits).toList
      case x => x
    }
    got.zip(want).zipWithIndex.foreach { case ((g, w), k) =>
      check(bits(g) == bits(w), s"row $k: echo gave $g, want $w")
    }
  }

  /** Empty partitions (more partitions than rows, and a DataFrame with none) go through echo. */
  def echoEmptyPartitions(spark: SparkSession): Unit = {
    val in = vectors(spark, 3, 4, 8)
    val got = Gophas.pipe(in, Protocol.ModeEcho).collect().map(_.getLong(0)).sorted.toSeq
    check(got == Seq(0L, 1L, 2L), s"echo over 8 partitions of 3 rows gave ids $got")
    val none = Gophas.pipe(in.filter(col("id") < 0), Protocol.ModeEcho).count()
    check(none == 0, s"echo of an empty DataFrame gave $none rows")
  }

  /** describe's per-partition summaries, combined, equal Spark's own aggregates. */
  def describeMatchesSpark(spark: SparkSession): Unit = {
    val in = vectors(spark, 5000, 12, 3)
    val d = Gophas.pipe(in, Protocol.ModeDescribe)
      .groupBy("name", "index")
      .agg(sum("count").as("count"), sum("sum").as("sum"), min("min").as("min"), max("max").as("max"))
      .collect().map(r => (r.getString(0), r.getInt(1)) -> r).toMap
    val exploded = in.select(posexplode(vector_to_array(col("features"))).as(Seq("index", "value")))
    val spark_ = exploded.groupBy("index").agg(count("value"), sum("value"), min("value"), max("value")).collect()
    check(spark_.length == 12, s"Spark found ${spark_.length} features")
    def same(name: String, index: Int, c: Long, s: Double, mn: Double, mx: Double): Unit = {
      val r = d.getOrElse((name, index), throw new AssertionError(s"describe has no row for $name[$index]; it has ${d.keys}"))
      val got = (r.getLong(2), r.getDouble(3), r.getDouble(4), r.getDouble(5))
      check(got._1 == c && math.abs(got._2 - s) <= 1e-9 * math.max(1, math.abs(s)) && got._3 == mn && got._4 == mx,
        s"describe $name[$index] = (count, sum, min, max) $got; Spark says ${(c, s, mn, mx)}")
    }
    spark_.foreach(r => same("features", r.getInt(0), r.getLong(1), r.getDouble(2), r.getDouble(3), r.getDouble(4)))
    val l = in.agg(count("label"), sum("label"), min("label"), max("label")).head()
    same("label", 0, l.getLong(0), l.getDouble(1), l.getDouble(2), l.getDouble(3))
    check(d.size == 13, s"describe gave ${d.size} summary rows, want 12 features + 1 label")
  }

  /** A bad row sent to describe fails the job with a GophasException naming its column and row. */
  def badRowIsNamed(spark: SparkSession, kind: String): String = {
    val schema = StructType(Seq(StructField("features", ArrayType(DoubleType, containsNull = true)), StructField("label", DoubleType)))
    val rows = (0 until 40).map { i =>
      val f: Seq[Any] = if (i == 17) kind match {
        case "null" => null
        case "ragged" => Seq(1.0, 2.0)
        case "nan" => Seq(1.0, Double.NaN, 3.0)
      } else Seq(1.0 * i, 2.0, 3.0)
      Row(f, i.toDouble)
    }
    val df = spark.createDataFrame(spark.sparkContext.parallelize(rows, 1), schema)
    val e = expectGophasException(Gophas.pipe(df, Protocol.ModeDescribe).collect())
    check(e.getMessage.contains("features") && e.getMessage.contains("17"), s"the error does not name column features and row 17: ${e.getMessage}")
    e.getMessage
  }

  /** A worker that crashes mid-stream fails the job with its stderr text; returns the message. */
  def crashShowsStderr(spark: SparkSession, real: Path, dir: Path): String = withConf(spark,
      GophasConf.Binary -> fakeWorker(dir, real, """head -c 100000 >/dev/null; echo "gophas: simulated crash after 100000 bytes" >&2; exit 3""").toString) {
    val e = expectGophasException(Gophas.pipe(vectors(spark, 2000, 50, 1), Protocol.ModeEcho).count())
    check(e.getMessage.contains("simulated crash after 100000 bytes") && e.getMessage.contains("exit status 3"),
      s"the exception lacks the worker's stderr and exit status: ${e.getMessage}")
    e.getMessage
  }

  /** A worker that stops reading hits spark.gophas.ioTimeout, and is not left running; returns the seconds taken. */
  def stallHitsDeadline(spark: SparkSession, real: Path, dir: Path): Double = {
    val marker = s"${System.nanoTime() % 100000}.5"
    val secs = withConf(spark, GophasConf.Binary -> fakeWorker(dir, real, s"exec sleep $marker").toString, GophasConf.IoTimeout -> "2s") {
      val start = System.nanoTime()
      val e = expectGophasException(Gophas.pipe(vectors(spark, 50000, 100, 1), Protocol.ModeEcho).count())
      check(e.getMessage.contains("stopped reading its input"), s"not a stall error: ${e.getMessage}")
      (System.nanoTime() - start) / 1e9
    }
    check(secs < 60, s"the stall took $secs s to fail")
    check(awaitNoProcesses(s"sleep $marker", 10000).isEmpty, "the stalled worker was left running")
    secs
  }

  /** Cancelling a running pipe job leaves no worker process behind, and the next job works. */
  def cancelLeavesNoProcess(spark: SparkSession, real: Path): Unit = {
    import scala.concurrent.{Await, Future}
    import scala.concurrent.ExecutionContext.Implicits.global
    import scala.concurrent.duration._
    val slow = udf((id: Long) => { Thread.sleep(20); id })
    val df = vectors(spark, 100000, 8, 2).withColumn("id", slow(col("id")))
    val needle = s"$real worker"
    val job = Future {
      spark.sparkContext.setJobGroup("cancel-me", "a job to cancel", interruptOnCancel = true)
      Gophas.pipe(df, Protocol.ModeEcho).count()
    }
    val end = System.nanoTime() + 60L * 1000 * 1000 * 1000
    while (processes(needle).isEmpty && System.nanoTime() < end) Thread.sleep(50)
    check(processes(needle).nonEmpty, "no worker started within 60 s")
    spark.sparkContext.cancelJobGroup("cancel-me")
    val failed = try { Await.result(job, 60.seconds); false } catch { case _: Exception => true }
    check(failed, "the cancelled job succeeded")
    val left = awaitNoProcesses(needle, 20000)
    check(left.isEmpty, s"gophas workers still running after the cancel: $left")
    echoRoundTrip(spark, 1000, 3, 2)
  }

  /**
   * A stdin writer that dies (here of a NoSuchMethodError, what a Spark
   * internal missing on the running Spark throws, and which NonFatal does
   * not catch) fails its task at once and kills its worker, instead of
   * leaving the worker waiting for input and the task waiting for its
   * output until spark.gophas.ioTimeout; returns the seconds taken.
   */
  def writerDeathFailsAtOnce(spark: SparkSession, real: Path): Double = {
    import scala.concurrent.{Await, Future, TimeoutException}
    import scala.concurrent.ExecutionContext.Implicits.global
    import scala.concurrent.duration._
    val binary = real.toString
    val header = Protocol.EchoHeader(Gophas.common(GophasConf.settings(spark)).copy(ioTimeoutMs = 600000L)).fields
    val schema = StructType(Seq(StructField("id", LongType)))
    val start = System.nanoTime()
    val job = Future {
      spark.sparkContext.setJobGroup("writer-dies", "a task whose stdin writer dies", interruptOnCancel = true)
      spark.sparkContext.parallelize(0 until 2, 2).mapPartitions { _ =>
        val h = new java.util.LinkedHashMap[String, Any]()
        header.foreach { case (k, v) => h.put(k, v) }
        new WorkerRunner(Paths.get(binary), h, 600000L, org.apache.spark.TaskContext.get()).run[Int](
          _ => throw new NoSuchMethodError("simulated: a Spark internal this Spark lacks"),
          in => SparkLine.get.readArrow(in, schema).map(_ => 1))
      }.collect()
    }
    val outcome = try { Await.result(job, 120.seconds); "the job succeeded" } catch {
      case _: TimeoutException =>
        spark.sparkContext.cancelJobGroup("writer-dies")
        "the job still hung after 120 s"
      case e: Exception => String.valueOf(e.getMessage)
    }
    val secs = (System.nanoTime() - start) / 1e9
    check(outcome.contains("stdin writer failed") && outcome.contains("NoSuchMethodError: simulated"),
      s"the task did not fail with the writer's error: $outcome")
    check(awaitNoProcesses(s"$binary worker", 10000).isEmpty, "the worker was left running")
    secs
  }

  /** Runs body with session settings, restoring the previous ones. */
  def withConf[T](spark: SparkSession, kv: (String, String)*)(body: => T): T = {
    val old = kv.map { case (k, _) => k -> spark.conf.getOption(k) }
    kv.foreach { case (k, v) => spark.conf.set(k, v) }
    try body finally old.foreach {
      case (k, Some(v)) => spark.conf.set(k, v)
      case (k, None) => spark.conf.unset(k)
    }
  }

  /** Runs body, which must fail with a GophasException somewhere in its causes; returns it. */
  def expectGophasException(body: => Any): GophasException = {
    val t = try { body; null } catch { case t: Throwable => t }
    check(t != null, "expected the job to fail, it succeeded")
    Iterator.iterate(t)(_.getCause).takeWhile(_ != null).collectFirst { case g: GophasException => g }
      .orElse(
        // A task failure reaches the driver as a SparkException carrying the executor's message.
        if (t.getMessage != null && t.getMessage.contains("GophasException")) Some(new GophasException(t.getMessage, t)) else None)
      .getOrElse(throw new AssertionError(s"expected a GophasException, got $t"))
  }

  /** A fake worker: answers `version` through the real binary, then runs script for the task. */
  def fakeWorker(dir: Path, real: Path, script: String): Path = {
    val p = dir.resolve(s"fake-${System.nanoTime()}.sh")
    Files.write(p, s"""#!/bin/sh
      |if [ "$$1" = version ]; then exec "$real" version; fi
      |$script
      |""".stripMargin.getBytes(StandardCharsets.UTF_8))
    p.toFile.setExecutable(true)
    p
  }

  /** The pids of live processes whose command line mentions needle. */
  def processes(needle: String): Seq[Int] = {
    val proc = Paths.get("/proc")
    Files.list(proc).iterator().asScala.flatMap { d =>
      val pid = d.getFileName.toString
      if (!pid.forall(_.isDigit)) None
      else try {
        val cmd = new String(Files.readAllBytes(d.resolve("cmdline")), StandardCharsets.UTF_8).replace('\u0000', ' ')
        val state = Files.readAllLines(d.resolve("status")).asScala.find(_.startsWith("State:")).getOrElse("")
        if (cmd.contains(needle) && !state.contains("zombie")) Some(pid.toInt) else None
      } catch { case _: java.io.IOException => None }
    }.toSeq
  }

  /** Waits up to timeoutMs for no process to mention needle; returns the ones left. */
  def awaitNoProcesses(needle: String, timeoutMs: Long): Seq[Int] = {
    val end = System.currentTimeMillis() + timeoutMs
    var left = processes(needle)
    while (left.nonEmpty && System.currentTimeMillis() < end) {
      Thread.sleep(100)
      left = processes(needle)
    }
    left
  }
}
