package org.apache.spark.sql.gophas

import java.io.{InputStream, OutputStream}

import org.apache.spark.{SparkContext, TaskContext}
import org.apache.spark.ml.gophas.MLPersistence
import org.apache.spark.ml.param.Params
import org.apache.spark.rdd.RDD
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.types.StructType

import io.gophas.spark.SparkLine

/**
 * The shim's way into this Spark line's internals, compiled against the
 * line (LineInfo names it). It lives in Spark's package because what it
 * calls is `private[sql]` or `private[spark]`; the code under
 * scala-shim/spark/common is the same for every line, and the folders
 * scala-shim/spark/v<line> hold what differs. Loaded by [[SparkLine.get]].
 */
final class GophasSparkLine extends SparkLine {
  override def line: String = LineInfo.Line

  override def internalRows(df: DataFrame): RDD[InternalRow] = Internals.internalRows(df)

  override def createDataFrame(spark: SparkSession, rows: RDD[InternalRow], schema: StructType): DataFrame =
    Internals.createDataFrame(spark, rows, schema)

  override def writeArrow(rows: Iterator[InternalRow], schema: StructType, batchRows: Int, batchBytes: Long, out: OutputStream): Unit =
    ArrowBatches.write(rows, schema, batchRows, batchBytes, out)

  override def readArrow(in: InputStream, expected: StructType): Iterator[InternalRow] = ArrowBatches.read(in, expected)

  override def setTaskContext(context: TaskContext): Unit = TaskContext.setTaskContext(context)

  override def taskSlots(sc: SparkContext): Int =
    sc.maxNumConcurrentTasks(sc.resourceProfileManager.defaultResourceProfile)

  override def saveMetadata(instance: Params, path: String, spark: SparkSession): Unit =
    MLPersistence.saveMetadata(instance, path, spark)

  override def loadParams(instance: Params, path: String, spark: SparkSession, className: String): Unit =
    MLPersistence.loadParams(instance, path, spark, className)
}
