package org.apache.spark.sql.gophas

import scala.jdk.CollectionConverters._

import org.apache.spark.rdd.RDD
import org.apache.spark.sql.{DataFrame, SparkSession}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.execution.arrow.ArrowWriter
import org.apache.spark.sql.types.StructType

/** Spark 3.5: one Dataset and SparkSession class (no Connect split), and an ArrowWriter that does not count its bytes. */
private[gophas] object Internals {
  def internalRows(df: DataFrame): RDD[InternalRow] = df.queryExecution.toRdd

  def createDataFrame(spark: SparkSession, rows: RDD[InternalRow], schema: StructType): DataFrame =
    spark.internalCreateDataFrame(rows, schema, isStreaming = false)

  /** The bytes an ArrowWriter holds since its last reset: its vectors' buffers. */
  def sizeInBytes(w: ArrowWriter): Long = w.root.getFieldVectors.asScala.foldLeft(0L)(_ + _.getBufferSize)
}

/** Spark 3.5's InternalRow declares no getters beyond those ForwardingRow forwards. */
private[gophas] abstract class LineGetters extends InternalRow {
  protected def inner: InternalRow
}
