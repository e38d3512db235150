package org.apache.spark.sql.gophas

import org.apache.spark.rdd.RDD
import org.apache.spark.sql.{classic, DataFrame, Row, SparkSession}
import org.apache.spark.sql.catalyst.InternalRow
import org.apache.spark.sql.execution.arrow.ArrowWriter
import org.apache.spark.sql.types.StructType

/** What the 4.x lines share and 3.5 does otherwise: the classic (non-Connect) Dataset and SparkSession. */
private[gophas] object Internals {
  def internalRows(df: DataFrame): RDD[InternalRow] = df.asInstanceOf[classic.Dataset[Row]].queryExecution.toRdd

  def createDataFrame(spark: SparkSession, rows: RDD[InternalRow], schema: StructType): DataFrame =
    spark.asInstanceOf[classic.SparkSession].internalCreateDataFrame(rows, schema, isStreaming = false)

  /** The bytes an ArrowWriter holds since its last reset. */
  def sizeInBytes(w: ArrowWriter): Long = w.sizeInBytes()
}
