package io.gophas.spark

import java.io.{InputStream, OutputStream}

import org.apache.spark.{SparkContext, TaskContext}
import org.apache.spark.ml.param.Params
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.types.StructType

/**
 * SparkLine is what the shim needs from Spark beyond its public API: a
 * DataFrame's rows as Spark holds them and back, Spark's own Arrow
 * converters, the task context of the writer thread, the slots a barrier
 * stage may use, and Spark ML's metadata files. These change from one Spark
 * line to the next, so each line's jar carries its own implementation,
 * compiled against that line (scala-shim/spark/, as Iceberg and Delta keep
 * theirs); the rest of the shim is compiled once per Scala version.
 *
 * Not a public API: [[SparkLine.get]] is the only way in.
 */
trait SparkLine {

  /** The Spark line the implementation was compiled against, such as "4.3". */
  def line: String

  /** The rows of df as Spark holds them, without converting them to external Rows. */
  def internalRows(df: DataFrame): RDD[InternalRow]

  /** A DataFrame over internal rows that already match schema. */
  def createDataFrame(spark: SparkSession, rows: RDD[InternalRow], schema: StructType): DataFrame

  /**
   * Writes rows as one Arrow IPC stream to out: batches of at most
   * batchRows rows, cut early once a batch holds batchBytes.
   */
  def writeArrow(rows: Iterator[InternalRow], schema: StructType, batchRows: Int, batchBytes: Long, out: OutputStream): Unit

  /**
   * Reads one Arrow IPC stream whose schema must equal expected, as rows;
   * each row is valid until the next call to next().
   */
  def readArrow(in: InputStream, expected: StructType): Iterator[InternalRow]

  /**
   * Makes context the current thread's task, as Spark's PythonRunner does for
   * its writer thread: the cached blocks that thread reads are then locked
   * and released in the task's name, and its reads count in the task's metrics.
   */
  def setTaskContext(context: TaskContext): Unit

  /** How many tasks of the default resource profile the cluster can run at once now: the slots a barrier stage may use. */
  def taskSlots(sc: SparkContext): Int

  /** Writes instance's params as Spark ML's `metadata/` under path, as Pipeline.save does for built-in stages. */
  def saveMetadata(instance: Params, path: String, spark: SparkSession): Unit

  /** Reads the `metadata/` under path, checks that it belongs to className, and sets its params on instance. */
  def loadParams(instance: Params, path: String, spark: SparkSession, className: String): Unit
}

object SparkLine {

  /** The implementation every line's jar carries (scala-shim/spark/common). */
  private val Implementation = "org.apache.spark.sql.gophas.GophasSparkLine"

  @volatile private var current: SparkLine = _

  /**
   * This jar's implementation, loaded once per JVM after checking that it
   * was built for the running Spark: a jar of another line fails here, at
   * the first Gophas call, with a [[GophasException]] naming the jar to use
   * (instead of a NoSuchMethodError inside a task later).
   */
  def get: SparkLine = {
    val c = current
    if (c != null) c
    else synchronized {
      if (current == null) current = load()
      current
    }
  }

  private def load(): SparkLine = {
    val impl = try {
      Class.forName(Implementation, true, getClass.getClassLoader).getDeclaredConstructor().newInstance().asInstanceOf[SparkLine]
    } catch {
      case _: ClassNotFoundException =>
        throw new GophasException(s"gophas: this jar carries no Spark line ($Implementation is missing); " +
          s"use the jar for your Spark: ${BuildInfo.Lines.map { case (l, s) => jarName(l, s) }.mkString(", ")}")
    }
    mismatch(impl.line, org.apache.spark.SPARK_VERSION).foreach(m => throw new GophasException(m))
    impl
  }

  /** The file name of the jar for a line: gophas-spark-4.3_2.13-0.1.0.jar. */
  def jarName(line: String, scala: String): String = s"gophas-spark-${line}_$scala-${BuildInfo.Version}.jar"

  /** The supported lines as a sentence: "3.5 (Scala 2.12), 4.0, 4.1, 4.2 and 4.3 (Scala 2.13)". */
  private[spark] def supported: String = {
    val ls = BuildInfo.Lines
    val named = ls.zipWithIndex.map { case ((l, scala), i) =>
      if (i == ls.size - 1 || ls(i + 1)._2 != scala) s"$l (Scala $scala)" else l
    }
    if (named.size == 1) named.head else named.init.mkString(", ") + " and " + named.last
  }

  private val MajorMinor = """^(\d+)\.(\d+).*""".r

  /**
   * Why a jar built for line cannot run on the Spark whose version is
   * running ("4.2.1", "3.5.1-amzn-0"), or None when it can: same major and
   * minor version.
   */
  private[spark] def mismatch(line: String, running: String): Option[String] = {
    val runningLine = running match {
      case MajorMinor(major, minor) => s"$major.$minor"
      case _ => running
    }
    if (runningLine == line) None
    else {
      val mine = BuildInfo.Lines.find(_._1 == line).map { case (l, s) => jarName(l, s) }.getOrElse(s"the jar for Spark $line")
      val advice = BuildInfo.Lines.find(_._1 == runningLine) match {
        case Some((l, s)) => s"use ${jarName(l, s)} instead"
        case None => s"Gophas has no jar for Spark $runningLine; it supports Spark $supported"
      }
      Some(s"gophas: $mine is built for Spark $line, but this is Spark $running: $advice")
    }
  }
}
